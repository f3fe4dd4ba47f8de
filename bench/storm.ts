/**
 * `npm run bench -- storm`: the retry storm of issue 20, a closed loop. 256 connections each send Monte
 * Carlo 64 rows × 1000 samples and resend as soon as they are answered (as wrk and many client pools
 * do), for 15 s, against the 8-connection capacity measured just before. Reports goodput (answers 200
 * per second) against that capacity, the refusals (503) per second, /health/ready and a 1-row predict
 * polled every 20 ms (p50 / p99), and what a refusal costs: the server's main-thread CPU during the
 * storm, less the main-thread CPU its 200s cost at capacity, per 503 (an estimate: the 200s dominate).
 *
 * Then a refusal against an echo request, like with like. A server whose Monte Carlo lane is full
 * (MAX_QUEUE=1) takes the storm's closed loop alone, every answer a 503; its pacing
 * (src/server/plugins/refusal-pacing.ts) then lets each connection send about once a second, the
 * retries of the connections resumed by one tick of its shared FIRST_HOLD_MS timer arriving together.
 * A bare Fastify echo (bench/echo-server.ts) under an unpaced closed loop answers thousands a second,
 * several per turn of the event loop, which no refusal gets; so the echo is measured under the paced
 * client of `pacedLoop`: the same 256 keep-alive connections and the same body, at the refusals' rate
 * (answers per second of the paced storm), the connections due sending together once per
 * FIRST_HOLD_MS. Both figures are the main thread's CPU (schedstat) per answer. The same paced client
 * is then sent to the full lane too (each connection waits about its Retry-After, so none is paused):
 * a refusal and an echo request under identical arrivals.
 */
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { FIRST_HOLD_MS } from '../src/server/plugins/refusal-pacing.js';
import { type ChildServer, freePort, load, loadTool, prober, record, startServer } from './lib.js';

const ROW = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87];
const HEAVY = { instances: Array(64).fill(ROW), samples: 1000 };
const STORM_CONNECTIONS = 256;
const STORM_SECONDS = 15;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * p))]! : Number.NaN;
};

/** CPU time (ms) of a thread of a process on a CPU (schedstat, ns). */
function threadCpuMs(pid: number, tid: number): number {
  return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
}

/** A closed loop of `connections` for `seconds`: requests answered, and of them non-2xx. */
async function closedLoop(
  url: string,
  body: unknown,
  connections: number,
  seconds: number,
): Promise<{ total: number; non2xx: number; socketErrors: number }> {
  if (loadTool === 'autocannon') {
    const r = await autocannon({
      url,
      connections,
      duration: seconds,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { total: r.requests.total, non2xx: r.non2xx, socketErrors: r.errors };
  }
  const script = join(mkdtempSync(join(tmpdir(), 'storm-')), 'post.lua');
  writeFileSync(
    script,
    `wrk.method = "POST"\nwrk.body = ${JSON.stringify(JSON.stringify(body))}\nwrk.headers["Content-Type"] = "application/json"\n`,
  );
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      'wrk',
      ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '-s', script, url],
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    ),
  );
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    total: Number(/(\d+) requests in/.exec(out)![1]),
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0),
    socketErrors: sock ? sock.slice(1).reduce((a, v) => a + Number(v), 0) : 0,
  };
}

/**
 * A paced closed loop: `connections` keep-alive connections send `body` at `perSecond` requests a
 * second in all, every FIRST_HOLD_MS the connections next in turn sending together (the arrival
 * pattern of the storm's paced refusals); a connection still waiting for its answer skips its turn.
 * Raw sockets and one prepared request, so that the client costs little on a shared machine.
 */
async function pacedLoop(
  url: string,
  body: unknown,
  connections: number,
  perSecond: number,
  seconds: number,
): Promise<{ total: number; refused: number }> {
  const { hostname, port, pathname } = new URL(url);
  const json = JSON.stringify(body);
  const request = Buffer.from(
    `POST ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`,
  );
  let total = 0;
  let refused = 0;
  const sockets = await Promise.all(
    Array.from({ length: connections }, () => {
      const socket = connect(Number(port), hostname);
      const c = { socket, busy: false, tail: '' };
      socket.setNoDelay(true);
      socket.on('data', (chunk: Buffer) => {
        // answers are counted by their status lines; one request is in flight per connection
        const text = c.tail + chunk.toString('latin1');
        const answers = text.split('HTTP/1.1 ').length - 1;
        refused += text.split('HTTP/1.1 503').length - 1;
        c.tail = text.slice(-12);
        if (answers > 0) {
          total += answers;
          c.busy = false;
          c.tail = '';
        }
      });
      socket.on('error', () => undefined);
      return new Promise<typeof c>((resolve) => socket.once('connect', () => resolve(c)));
    }),
  );
  let next = 0;
  let due = 0;
  const perTick = (perSecond * FIRST_HOLD_MS) / 1000;
  const timer = setInterval(() => {
    for (due += perTick; due >= 1; due--) {
      const c = sockets[next]!;
      next = (next + 1) % sockets.length;
      if (c.busy || c.socket.destroyed) continue;
      c.busy = true;
      c.socket.write(request);
    }
  }, FIRST_HOLD_MS);
  await sleep(seconds * 1000);
  clearInterval(timer);
  await sleep(200); // the last answers
  for (const c of sockets) c.socket.destroy();
  return { total, refused };
}

/** Main-thread CPU per answer (µs) of `pid` while `run` runs, and what `run` returned. */
async function mainCpuUsPer<R extends { total: number }>(pid: number, run: () => Promise<R>): Promise<[number, R]> {
  const cpu0 = threadCpuMs(pid, pid);
  const r = await run();
  return [((threadCpuMs(pid, pid) - cpu0) * 1000) / Math.max(1, r.total), r];
}

/**
 * The echo's main-thread CPU per request (µs) for the heavy body under the paced loop at `perSecond`,
 * and the answers per second it got.
 */
async function echoCpuUs(perSecond: number): Promise<{ us: number; perSecond: number }> {
  const port = await freePort();
  const echo: ChildServer = await startServer('bench/echo-server.ts', { PORT: String(port) }, port);
  try {
    const url = `${echo.url}/v1/models/diabetes/predict`;
    await pacedLoop(url, HEAVY, STORM_CONNECTIONS, perSecond, 2); // warm-up
    const [us, r] = await mainCpuUsPer(echo.pid, () => pacedLoop(url, HEAVY, STORM_CONNECTIONS, perSecond, 5));
    return { us, perSecond: r.total / 5 };
  } finally {
    await echo.stop();
  }
}

/**
 * Main-thread CPU per refusal (µs) with nothing else to do: a server whose Monte Carlo lane is full
 * (MAX_QUEUE=1: two long requests on the worker, one waiting), every answer a 503: under the storm's
 * closed loop (paced by the server; its answers per second and the share of 503s), then under the paced
 * client at that rate (`paced`: the echo's arrivals).
 */
async function refusalCpuUs(): Promise<{ us: number; refusedShare: number; perSecond: number; paced: number }> {
  const port = await freePort();
  const server = await startServer(
    'src/server/server.ts',
    { MC_MAX_SAMPLES: '1000000', MC_MAX_WORK: '100000000', MAX_QUEUE: '1', MC_WORKERS: '1' },
    port,
  );
  const stop = new AbortController();
  try {
    const mcUrl = `${server.url}/v1/models/diabetes/uncertainty`;
    const long = JSON.stringify({ instances: Array(100).fill(ROW), samples: 1_000_000 });
    for (let i = 0; i < 3; i++)
      fetch(mcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: long,
        signal: stop.signal,
      }).catch(() => undefined);
    for (const end = Date.now() + 10_000; Date.now() < end; await sleep(50)) {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      if (/^queue_depth\{lane="mc"\} 1$/m.test(text)) break;
    }
    const [us, r] = await mainCpuUsPer(server.pid, () => closedLoop(mcUrl, HEAVY, STORM_CONNECTIONS, 5));
    const perSecond = r.total / 5;
    await sleep(1100); // the paused connections are gone; the paced client's are polite
    const [paced, p] = await mainCpuUsPer(server.pid, () => pacedLoop(mcUrl, HEAVY, STORM_CONNECTIONS, perSecond, 5));
    if (p.refused < p.total)
      throw new Error(`the lane was not full: ${p.total - p.refused} of ${p.total} answers not 503`);
    return { us, refusedShare: r.non2xx / r.total, perSecond, paced };
  } finally {
    stop.abort();
    await server.stop();
  }
}

export async function storm(): Promise<void> {
  const load1 = (): string => loadavg()[0]!.toFixed(1);
  process.stderr.write(`storm (closed loop, ${STORM_CONNECTIONS} connections of MC 64 rows × 1000 samples)\n`);
  const server = await startServer(
    'src/server/server.ts',
    { MC_MAX_SAMPLES: '1000000', MC_MAX_WORK: '100000000' },
    await freePort(),
  );
  try {
    const mcUrl = `${server.url}/v1/models/diabetes/uncertainty`;
    await load(mcUrl, HEAVY, 8, 3); // warm-up
    let main0 = threadCpuMs(server.pid, server.pid);
    const capacityRun = await closedLoop(mcUrl, HEAVY, 8, 10);
    const mainPer200 = (threadCpuMs(server.pid, server.pid) - main0) / Math.max(1, capacityRun.total);
    const capacity = capacityRun.total / 10;
    await sleep(1000);
    const health = prober(`${server.url}/health/ready`);
    const predict = prober(`${server.url}/v1/models/diabetes/predict`, { instances: [ROW] });
    main0 = threadCpuMs(server.pid, server.pid);
    const s = await closedLoop(mcUrl, HEAVY, STORM_CONNECTIONS, STORM_SECONDS);
    const mainMs = threadCpuMs(server.pid, server.pid) - main0;
    const [hl, pl] = [await health.stop(), await predict.stop()];
    const ok = s.total - s.non2xx;
    const goodput = ok / STORM_SECONDS;
    const per503Us = s.non2xx > 0 ? ((mainMs - ok * mainPer200) * 1000) / s.non2xx : Number.NaN;
    record({
      section: 'storm',
      name: `goodput under the storm vs capacity at 8 connections (req/s answered 200, ${STORM_SECONDS} s; load average ${load1()})`,
      a: goodput.toFixed(1),
      b: capacity.toFixed(1),
      ratio: goodput / capacity,
      target: '≥ 0.8×',
      pass: goodput / capacity >= 0.8,
    });
    record({
      section: 'storm',
      name: 'answers per second: 503 / all (socket errors)',
      a: (s.non2xx / STORM_SECONDS).toFixed(0),
      b: `${(s.total / STORM_SECONDS).toFixed(0)} (${s.socketErrors})`,
      ratio: null,
      target: 'info',
      pass: null,
    });
    record({
      section: 'storm',
      name: `/health/ready every 20 ms during the storm: p50 / p99 (ms, ${hl.length} probes)`,
      a: `${pct(hl, 0.5).toFixed(1)} / ${pct(hl, 0.99).toFixed(1)}`,
      b: '',
      ratio: null,
      target: 'p99 < 100 ms',
      pass: pct(hl, 0.99) < 100,
    });
    record({
      section: 'storm',
      name: `predict 1 row every 20 ms during the storm: p50 / p99 (ms, ${pl.length} probes)`,
      a: `${pct(pl, 0.5).toFixed(1)} / ${pct(pl, 0.99).toFixed(1)}`,
      b: '',
      ratio: null,
      target: 'info',
      pass: null,
    });
    record({
      section: 'storm',
      name: `main-thread CPU per 503 during the storm (the main thread, probes included, less ${mainPer200.toFixed(2)} ms per 200), µs`,
      a: per503Us.toFixed(0),
      b: '',
      ratio: null,
      target: 'info',
      pass: null,
    });
    const refusal = await refusalCpuUs();
    const echo = await echoCpuUs(refusal.perSecond);
    const echoUs = echo.us;
    record({
      section: 'storm',
      name: `a refusal alone: main-thread CPU per 503 (lane full, the storm's closed loop paced by the server, ${refusal.perSecond.toFixed(0)} answers/s, ${(100 * refusal.refusedShare).toFixed(0)}% 503) vs a bare Fastify echo of the same body at that rate (${echo.perSecond.toFixed(0)} answers/s), the connections due sending every ${FIRST_HOLD_MS} ms (µs)`,
      a: refusal.us.toFixed(0),
      b: echoUs.toFixed(0),
      ratio: refusal.us / echoUs,
      target: '≤ 1.0×',
      pass: refusal.us <= echoUs,
    });
    record({
      section: 'storm',
      name: "a refusal under the echo's paced client (same connections, rate and body; none paused) vs the echo (µs)",
      a: refusal.paced.toFixed(0),
      b: echoUs.toFixed(0),
      ratio: refusal.paced / echoUs,
      target: '≤ 1.0×',
      pass: refusal.paced <= echoUs,
    });
  } finally {
    await server.stop();
  }
}
