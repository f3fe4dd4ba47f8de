/**
 * `npx tsx bench/ab-rate.ts DIR_A DIR_B [rounds] [seconds] [rate]`: bench/ab-http.ts at a fixed request
 * rate instead of a closed loop (bench/open-loop.ts, raw sockets): neither server is saturated, so the
 * CPU per request compares the work each does per request rather than how each copes with a full core
 * (under wrk, a slower main thread also gets smaller batches and fewer requests per event-loop turn,
 * which multiplies a difference). Prints per case (AB_CASES as ab-http's: 1 MC /v1, 2 MC V2) the
 * server's and its main thread's CPU per answered request, B/A median of alternated rounds.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { freePort } from './lib.js';

const [dirA, dirB] = process.argv.slice(2, 4).map((d) => resolve(d ?? ''));
const rounds = Number(process.argv[4] ?? 7);
const seconds = Number(process.argv[5] ?? 3);
const rate = Number(process.argv[6] ?? 4000);
const ROW = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87];
const ALL: [string, string, unknown][] = [
  ['predict', '/v1/models/diabetes/predict', { instances: [ROW] }],
  ['MC T=100 (/v1)', '/v1/models/diabetes/uncertainty', { instances: [ROW], samples: 100 }],
  [
    'MC T=100 (V2)',
    '/v2/models/diabetes/infer',
    { inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', data: ROW }], parameters: { mc_samples: 100 } },
  ],
];
const CASES = (process.env.AB_CASES ?? '1,2').split(',').map((i) => ALL[Number(i)]!);

const ticks = (pid: number, main: boolean): number => {
  const f = readFileSync(main ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8')
    .split(') ')[1]!
    .split(' ');
  return Number(f[11]) + Number(f[12]);
};

async function start(dir: string, port: number): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ['--max-semi-space-size=4', 'dist/server/server.js'], {
    cwd: dir,
    env: { ...process.env, LOG_LEVEL: 'warn', HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health/ready`)).ok) return proc;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${dir}: the server did not become ready`);
}

function load(port: number, path: string, body: unknown, pid: number, secs: number) {
  const t0 = ticks(pid, false);
  const m0 = ticks(pid, true);
  const arg = JSON.stringify({ url: `http://127.0.0.1:${port}${path}`, body, rate, seconds: secs });
  const out = JSON.parse(
    execFileSync(process.execPath, ['--import', 'tsx', 'bench/open-loop.ts', arg], { cwd: import.meta.dirname + '/..' })
      .toString()
      .trim()
      .split('\n')
      .at(-1)!,
  ) as { statuses: Record<string, number> };
  const ok = out.statuses['200'] ?? 0;
  return { ok, cpu: ((ticks(pid, false) - t0) * 10_000) / ok, main: ((ticks(pid, true) - m0) * 10_000) / ok };
}

const sides: { port: number; proc: ChildProcess }[] = [];
for (const dir of [dirA, dirB]) {
  const port = await freePort();
  sides.push({ port, proc: await start(dir!, port) });
}
try {
  for (const [, path, body] of CASES) for (const s of sides) load(s.port, path, body, s.proc.pid!, 2);
  const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
  for (const [name, path, body] of CASES) {
    const cpu: number[][] = [[], []];
    const main: number[][] = [[], []];
    const ok: number[][] = [[], []];
    for (let r = 0; r < rounds; r++) {
      for (const k of r % 2 === 0 ? [0, 1] : [1, 0]) {
        const m = load(sides[k]!.port, path, body, sides[k]!.proc.pid!, seconds);
        cpu[k]!.push(m.cpu);
        main[k]!.push(m.main);
        ok[k]!.push(m.ok);
      }
    }
    const ratio = (x: number[][]) => x[0]!.map((a, i) => x[1]![i]! / a);
    process.stdout.write(
      `${name} at ${rate} req/s (answered A ${median(ok[0]!)}, B ${median(ok[1]!)} per round)\n` +
        `  server CPU per request B/A median ${median(ratio(cpu)).toFixed(3)} (A ${median(cpu[0]!).toFixed(1)} µs, B ${median(cpu[1]!).toFixed(1)} µs); rounds ${ratio(cpu).map((v) => v.toFixed(2)).join(' ')}\n` +
        `  main thread B/A median ${median(ratio(main)).toFixed(3)} (A ${median(main[0]!).toFixed(1)} µs, B ${median(main[1]!).toFixed(1)} µs); rounds ${ratio(main).map((v) => v.toFixed(2)).join(' ')}\n`,
    );
  }
} finally {
  for (const s of sides) s.proc.kill('SIGTERM');
}
