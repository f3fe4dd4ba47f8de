/** Helpers for the benchmark suite: A/B timing, child servers, load, RSS, the result table. */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';

export interface Row {
  section: string;
  name: string;
  a: string;
  b: string;
  ratio: number | null;
  target: string;
  pass: boolean | null;
}

export const rows: Row[] = [];

export function record(row: Row): void {
  rows.push(row);
  const ratio = row.ratio === null ? '' : `${row.ratio.toFixed(2)}×`;
  const verdict = row.pass === null ? '' : row.pass ? 'ok' : 'MISS';
  process.stderr.write(`  ${row.name}: ${row.a} | ${row.b} | ${ratio} ${row.target} ${verdict}\n`);
}

const median = (xs: number[]): number => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;

/**
 * Per-operation time (µs) of a and b, measured alternately in `rounds` rounds of about `roundMs` each
 * (the machine is shared and noisy: interleaving keeps drift out of the ratio); medians of the rounds.
 */
export async function ab(
  a: () => Promise<unknown>,
  b: () => Promise<unknown>,
  rounds = 7,
  roundMs = 200,
): Promise<{ aUs: number; bUs: number }> {
  const calibrate = async (f: () => Promise<unknown>): Promise<number> => {
    for (let i = 0; i < 20; i++) await f(); // warm-up
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 50) {
      await f();
      n++;
    }
    return Math.max(1, Math.round((roundMs * n) / (performance.now() - t0)));
  };
  const na = await calibrate(a);
  const nb = await calibrate(b);
  const as: number[] = [];
  const bs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const [f, n, out] of [
      [a, na, as],
      [b, nb, bs],
    ] as const) {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await f();
      out.push(((performance.now() - t0) * 1000) / n);
    }
  }
  return { aUs: median(as), bUs: median(bs) };
}

export const fmtUs = (us: number): string => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(1)} µs`);

export interface ChildServer {
  url: string;
  pid: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Start a server script as a child process and wait until `readyPath` answers 200. The service runs
 * as `npm start` runs it (compiled dist/, same V8 flags); other scripts run through tsx.
 */
export async function startServer(
  script: string,
  env: Record<string, string>,
  port: number,
  readyPath = '/health/ready',
): Promise<ChildServer> {
  const args =
    script === 'src/server/server.ts'
      ? ['--max-semi-space-size=4', 'dist/server/server.js']
      : ['--import', 'tsx', script];
  const proc = spawn(process.execPath, args, {
    env: { ...process.env, LOG_LEVEL: 'warn', HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${script} exited with ${proc.exitCode}`);
    try {
      if ((await fetch(url + readyPath)).ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`${script} did not become ready`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: proc.pid!,
    proc,
    stop: () =>
      new Promise((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

/** A port no one listens on now: fixed ports collide when several people run benches on one machine. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Resident set size of a process, MB (Linux /proc). */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
  return kb / 1024;
}

/** wrk (C, one thread) when installed: a lighter client than autocannon, so the server is what is measured. */
export const loadTool: 'wrk' | 'autocannon' = spawnSync('wrk', ['--version']).error ? 'autocannon' : 'wrk';

export async function load(
  url: string,
  body: unknown,
  connections: number,
  seconds: number,
): Promise<{ rps: number; p99: number; errors: number }> {
  if (loadTool === 'wrk') return wrkLoad(url, body, connections, seconds);
  const r = await autocannon({
    url,
    connections,
    duration: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { rps: r.requests.average, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
}

async function wrkLoad(
  url: string,
  body: unknown,
  connections: number,
  seconds: number,
): Promise<{ rps: number; p99: number; errors: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'wrk-'));
  const script = join(dir, 'post.lua');
  writeFileSync(
    script,
    `wrk.method = "POST"\nwrk.body = ${JSON.stringify(JSON.stringify(body))}\nwrk.headers["Content-Type"] = "application/json"\n`,
  );
  const out = await new Promise<string>((resolve, reject) =>
    execFile('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, url], (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1]);
  const p99m = /\s99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const p99 = p99m ? Number(p99m[1]) * (p99m[2] === 'us' ? 0.001 : p99m[2] === 's' ? 1000 : 1) : Number.NaN;
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sock ? sock.slice(1).reduce((a, v) => a + Number(v), 0) : 0);
  return { rps, p99: Math.round(p99 * 10) / 10, errors };
}

/** GET or POST `url` every `everyMs` until stopped; the latencies (ms, Infinity for a non-200). */
export function prober(url: string, body?: unknown, everyMs = 20): { stop: () => Promise<number[]> } {
  const lat: number[] = [];
  let stop = false;
  const init =
    body === undefined
      ? {}
      : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
  const loop = (async () => {
    while (!stop) {
      const t0 = performance.now();
      const r = await fetch(url, init);
      await r.arrayBuffer();
      lat.push(r.ok ? performance.now() - t0 : Number.POSITIVE_INFINITY);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    stop: async () => {
      stop = true;
      await loop;
      return lat;
    },
  };
}
