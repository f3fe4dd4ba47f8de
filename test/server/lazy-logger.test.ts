import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/server/app.js';
import { lazyChildLogger } from '../../src/server/lazy-logger.js';
import { testModelsDir } from '../helpers/app.js';

function capture(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n'))
        if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, stream };
}

describe('request loggers made when first used (lazy-logger.ts)', () => {
  it('no child logger for calls below the level; the first enabled call makes one, with the bindings, and keeps it', async () => {
    const { lines, stream } = capture();
    const parent = pino({ level: 'warn' }, stream);
    const child = vi.spyOn(parent, 'child');
    const log = lazyChildLogger.call(undefined as never, parent, { reqId: 'r-1' }, {}, undefined as never);
    log.info('below the level');
    log.debug({ a: 1 }, 'below too');
    expect([child.mock.calls.length, log.level]).toEqual([0, 'warn']);
    log.warn({ a: 2 }, 'written');
    log.error('again');
    await new Promise((r) => setImmediate(r));
    expect(child).toHaveBeenCalledTimes(1);
    expect(lines.map((l) => [l.reqId, l.msg, l.a])).toEqual([
      ['r-1', 'written', 2],
      ['r-1', 'again', undefined],
    ]);
    // route options (a logLevel) make the child at once
    lazyChildLogger.call(undefined as never, parent, { reqId: 'r-2' }, { level: 'info' }, undefined as never);
    expect(child).toHaveBeenCalledTimes(2);
  });

  it("over HTTP: a request's lines carry its request id", async () => {
    const { lines, stream } = capture();
    const app = await buildApp({
      config: loadConfig({ MODELS_DIR: testModelsDir(), MC_WORKERS: '0' }),
      logger: { level: 'info', stream },
    });
    try {
      await app.loadModels();
      const bad = await app.inject({
        method: 'POST',
        url: '/v1/models/diabetes/predict',
        headers: { 'content-type': 'application/json', 'x-request-id': 'lazy-1' },
        payload: '{"instances": 1}',
      });
      expect(bad.statusCode).toBe(400);
      await new Promise((r) => setImmediate(r));
      const mine = lines.filter((l) => l.reqId === 'lazy-1').map((l) => l.msg);
      expect(mine).toContain('client error');
    } finally {
      await app.close();
    }
  });
});
