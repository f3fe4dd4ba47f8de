/**
 * CONNECTION_TIMEOUT_MS by one sweep (plugins/idle-connections.ts): a connection whose bytes have not
 * moved for the timeout is destroyed, one that keeps talking is not, and a request is never timed by
 * a per-socket timer.
 */
import { EventEmitter } from 'node:events';
import { type Socket, connect } from 'node:net';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { IdleConnections, idleConnections, sweepIntervalMs } from '../../src/server/plugins/idle-connections.js';

/** A socket's counts and destroy(), as the sweep sees them. */
class FakeSocket extends EventEmitter {
  bytesRead = 0;
  bytesWritten = 0;
  destroyed = false;
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

describe('the idle-connection sweep', () => {
  it('destroys a connection silent for the timeout, keeps one whose bytes move', () => {
    const idle = new IdleConnections(1000);
    const silent = new FakeSocket();
    const talking = new FakeSocket();
    idle.add(silent as unknown as Socket, 0);
    idle.add(talking as unknown as Socket, 0);
    for (let t = 250; t < 1000; t += 250) {
      talking.bytesRead += 10;
      expect(idle.sweep(t)).toBe(0);
    }
    talking.bytesWritten += 5;
    expect(idle.sweep(1000)).toBe(1); // silent since it connected at 0
    expect([silent.destroyed, talking.destroyed, idle.size]).toEqual([true, false, 1]);
    expect(idle.sweep(1999)).toBe(0); // talking last moved at 1000
    expect(idle.sweep(2000)).toBe(1);
    expect([talking.destroyed, idle.size]).toEqual([true, 0]);
  });

  it('forgets a connection that closed', () => {
    const idle = new IdleConnections(1000);
    const s = new FakeSocket();
    idle.add(s as unknown as Socket, 0);
    s.emit('close');
    expect(idle.size).toBe(0);
    expect(idle.sweep(5000)).toBe(0);
    expect(s.destroyed).toBe(false);
  });

  it('sweeps every second, or four times per timeout when that is shorter', () => {
    expect([sweepIntervalMs(60_000), sweepIntervalMs(2000), sweepIntervalMs(200), sweepIntervalMs(1)]).toEqual([
      1000, 500, 50, 1,
    ]);
  });

  it('closes a real silent connection after the timeout, not a keep-alive one that keeps asking', async () => {
    const app = Fastify();
    await app.register(idleConnections, { timeoutMs: 300 });
    app.get('/', async () => 'ok');
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as { port: number }).port;
    const closedAfter = (s: Socket, started: number) =>
      new Promise<number>((r) => s.once('close', () => r(performance.now() - started)));
    try {
      const started = performance.now();
      const silent = connect(port, '127.0.0.1');
      const talking = connect(port, '127.0.0.1');
      const silentClosed = closedAfter(silent, started);
      let talkingClosed = false;
      talking.on('close', () => (talkingClosed = true));
      talking.on('data', () => undefined);
      const ask = setInterval(() => talking.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'), 50);
      const ms = await silentClosed;
      await new Promise((r) => setTimeout(r, 300));
      clearInterval(ask);
      expect(ms).toBeGreaterThanOrEqual(290);
      expect(ms).toBeLessThan(300 + sweepIntervalMs(300) + 200);
      expect(talkingClosed).toBe(false);
      talking.destroy();
    } finally {
      await app.close();
    }
  });
});
