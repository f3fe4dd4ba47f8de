/**
 * `npm run bench -- storm`: the retry storm of issue 20, a closed loop. 256 connections each send Monte
 * Carlo 64 rows × 1000 samples and resend as soon as they are answered (as wrk and many client pools
 * do), for 15 s, against the 8-connection capacity measured just before. Reports goodput (answers 200
 * per second) against that capacity, the refusals (503) per second, /health/ready and a 1-row predict
 * polled every 20 ms (p50 / p99), and what a refusal costs: the server's main-thread CPU during the
 * storm, less the main-thread CPU its 200s cost at capacity, per 503 (an estimate: the 200s dominate);
 * then, measured alone, the main-thread CPU per 503 of a server whose Monte Carlo lane is full under
 * the same closed loop, next to the CPU per request of a bare Fastify echo (bench/echo-server.ts)
 * receiving the same body under that loop.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
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

/** CPU time (ms) of a process's main thread, or of all its threads, on a CPU (schedstat, ns). */
function threadCpuMs(pid: number, tid: number): number {
  return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
}
function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
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

/** The echo's CPU per request (µs) for the heavy body under the storm's closed loop. */
async function echoCpuUs(): Promise<number> {
  const port = await freePort();
  const echo: ChildServer = await startServer('bench/echo-server.ts', { PORT: String(port) }, port);
  try {
    const url = `${echo.url}/v1/models/diabetes/predict`;
    await closedLoop(url, HEAVY, STORM_CONNECTIONS, 2); // warm-up
    const cpu0 = processCpuMs(echo.pid);
    const r = await closedLoop(url, HEAVY, STORM_CONNECTIONS, 5);
    return ((processCpuMs(echo.pid) - cpu0) * 1000) / r.total;
  } finally {
    await echo.stop();
  }
}

/**
 * Main-thread CPU per refusal (µs) with nothing else to do: a server whose Monte Carlo lane is full
 * (MAX_QUEUE=1: two long requests on the worker, one waiting) under the storm's closed loop, every
 * answer a 503. Also the share of answers that were 503.
 */
async function refusalCpuUs(): Promise<{ us: number; refusedShare: number; perSecond: number }> {
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
    const main0 = threadCpuMs(server.pid, server.pid);
    const r = await closedLoop(mcUrl, HEAVY, STORM_CONNECTIONS, 5);
    const mainMs = threadCpuMs(server.pid, server.pid) - main0;
    return { us: (mainMs * 1000) / r.total, refusedShare: r.non2xx / r.total, perSecond: r.total / 5 };
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
    const echoUs = await echoCpuUs();
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
    record({
      section: 'storm',
      name: `a refusal alone: main-thread CPU per 503 (lane full, the storm's closed loop, ${refusal.perSecond.toFixed(0)} answers/s, ${(100 * refusal.refusedShare).toFixed(0)}% 503) vs a bare Fastify echo of the same body, CPU per request (µs)`,
      a: refusal.us.toFixed(0),
      b: echoUs.toFixed(0),
      ratio: refusal.us / echoUs,
      target: '≤ 1.0×',
      pass: refusal.us <= echoUs,
    });
  } finally {
    await server.stop();
  }
}
