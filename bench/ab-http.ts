/**
 * `npx tsx bench/ab-http.ts DIR_A DIR_B [rounds] [seconds]`: a paired HTTP comparison of two builds of
 * this project (two checkouts with `npm run build` done, e.g. main in a `git worktree` and a branch),
 * for a change that must not cost throughput. Both servers run from their dist/ as `npm start` runs
 * them, with their own models/, one after the other under the same load (wrk, c=32, one row: predict,
 * MC T=100 on /v1 and on V2), in alternated rounds after a warm-up. Prints per case B/A of req/s (median
 * and best of the rounds, and every round) and of the server's CPU time per request (/proc, worker
 * threads included), which is less sensitive to other load on a shared machine, and of its main thread
 * alone (the event loop: HTTP, codecs, the data plane; /proc/PID/task/PID). Needs wrk and Linux.
 * `A_ENV` / `B_ENV` (JSON objects) add environment variables to one side: the same build under two
 * settings, e.g. `B_ENV='{"MALLOC_MMAP_THRESHOLD_":"131072"}' npx tsx bench/ab-http.ts . .`. `AB_CASES` (a comma
 * list of case numbers from 0: predict, MC /v1, MC V2) runs only those; `A_SERVER` / `B_SERVER` the server
 * script of a side (default dist/server/server.js), e.g. predict against a bare Fastify echo of the same
 * body: `A_SERVER=bench/echo-server.ts AB_CASES=0 npx tsx bench/ab-http.ts . . 5 3`.
 * `AB_RESTART=1` starts both servers afresh (and warms them up) for every round: a server keeps for its
 * lifetime the speed it settled into at start (two instances of one build differed by a quarter in main-
 * thread CPU per MC request, docs/benchmarks.md), so without it a run compares instances, not builds.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { selectCases } from './http-cases.js';
import { freePort } from './lib.js';

const [dirA, dirB] = process.argv.slice(2, 4).map((d) => resolve(d ?? ''));
const rounds = Number(process.argv[4] ?? 9);
const seconds = Number(process.argv[5] ?? 4);
if (!dirA || !dirB || process.argv.length < 4) {
  process.stderr.write('usage: npx tsx bench/ab-http.ts DIR_A DIR_B [rounds] [seconds]\n');
  process.exit(2);
}

const CASES = selectCases(process.env.AB_CASES);
const tmp = mkdtempSync(join(tmpdir(), 'ab-http-'));

/** utime + stime of a process (or, `main`, of its main thread alone), in clock ticks (100 per second). */
const ticks = (pid: number, main = false): number => {
  const fields = readFileSync(main ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8')
    .split(') ')[1]!
    .split(' ');
  return Number(fields[11]) + Number(fields[12]);
};

async function start(
  dir: string,
  port: number,
  extraEnv: Record<string, string>,
  script = 'dist/server/server.js',
): Promise<ChildProcess> {
  // a .ts script (bench/echo-server.ts: predict against a bare Fastify echo) runs through tsx
  const loader = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const proc = spawn(process.execPath, ['--max-semi-space-size=4', ...loader, script], {
    cwd: dir,
    env: { ...process.env, LOG_LEVEL: 'warn', HOST: '127.0.0.1', PORT: String(port), ...extraEnv },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (const deadline = Date.now() + 30_000; ; ) {
    if (proc.exitCode !== null) throw new Error(`${dir}: the server exited with ${proc.exitCode}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health/ready`)).ok) return proc;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`${dir}: the server did not become ready`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function wrk(
  port: number,
  path: string,
  body: unknown,
  pid: number,
  secs: number,
): { rps: number; cpuUs: number; mainUs: number } {
  const script = join(tmp, 'post.lua');
  writeFileSync(
    script,
    `wrk.method = "POST"\nwrk.body = ${JSON.stringify(JSON.stringify(body))}\nwrk.headers["Content-Type"] = "application/json"\n`,
  );
  const t0 = ticks(pid);
  const m0 = ticks(pid, true);
  const out = execFileSync('wrk', [
    '-t1',
    '-c32',
    `-d${secs}s`,
    '-s',
    script,
    `http://127.0.0.1:${port}${path}`,
  ]).toString();
  if (/Non-2xx|Socket errors/.test(out)) throw new Error(`errors under load:\n${out}`);
  const requests = Number(/(\d+) requests in/.exec(out)![1]);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1]),
    cpuUs: ((ticks(pid) - t0) * 10_000) / requests,
    mainUs: ((ticks(pid, true) - m0) * 10_000) / requests,
  };
}

const SIDES = [
  ['A', dirA, process.env.A_ENV, process.env.A_SERVER],
  ['B', dirB, process.env.B_ENV, process.env.B_SERVER],
] as const;
/** AB_RESTART=1: fresh servers (started and warmed up again) for every round. */
const restart = process.env.AB_RESTART === '1';
let sides: { name: string; port: number; proc: ChildProcess }[] = [];

/**
 * Both servers started and warmed up (2 s of each case), the previous ones stopped; B first when
 * `bFirst` (AB_RESTART alternates it by round, so that neither side is always the one started and
 * warmed up first). A/A runs of one build (predict, AB_RESTART=1, 5–7 rounds of 3 s) gave medians of
 * B/A server CPU per request from 0.93 to 1.05: a difference under about 5% is not a finding.
 */
async function startSides(bFirst = false): Promise<void> {
  await Promise.all(
    sides.map((s) => new Promise((r) => (s.proc.exitCode !== null ? r(null) : s.proc.once('exit', r).kill('SIGTERM')))),
  );
  const order = bFirst ? [1, 0] : [0, 1];
  const started: (typeof sides)[number][] = [];
  for (const k of order) {
    const [name, dir, env, script] = SIDES[k]!;
    const port = await freePort();
    const extraEnv = JSON.parse(env ?? '{}') as Record<string, string>;
    started[k] = { name, port, proc: await start(dir, port, extraEnv, script) };
  }
  sides = started;
  for (const [, path, body] of CASES) for (const k of order) wrk(sides[k]!.port, path, body, sides[k]!.proc.pid!, 2);
}

try {
  await startSides();
  const median = (xs: number[]): number => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
  const lines: string[] = [
    `A = ${dirA}`,
    `B = ${dirB}`,
    `${rounds} alternated rounds of ${seconds} s, wrk -t1 -c32${restart ? ', fresh servers each round' : ''}`,
    '',
  ];
  const results = CASES.map(() => ({
    rps: [[], []] as number[][],
    cpu: [[], []] as number[][],
    main: [[], []] as number[][],
  }));
  for (let r = 0; r < rounds; r++) {
    if (restart && r > 0) await startSides(r % 2 === 1);
    CASES.forEach(([name, path, body], c) => {
      const order = r % 2 === 0 ? [0, 1] : [1, 0];
      for (const k of order) {
        const m = wrk(sides[k]!.port, path, body, sides[k]!.proc.pid!, seconds);
        results[c]!.rps[k]!.push(m.rps);
        results[c]!.cpu[k]!.push(m.cpuUs);
        results[c]!.main[k]!.push(m.mainUs);
      }
      const x = results[c]!;
      process.stderr.write(
        `round ${r} ${name}: A ${x.rps[0]!.at(-1)!.toFixed(0)} B ${x.rps[1]!.at(-1)!.toFixed(0)} req/s\n`,
      );
    });
  }
  CASES.forEach(([name], c) => {
    const { rps, cpu, main } = results[c]!;
    const ratios = rps[0]!.map((a, i) => rps[1]![i]! / a);
    const cpuRatios = cpu[0]!.map((a, i) => cpu[1]![i]! / a);
    const mainRatios = main[0]!.map((a, i) => main[1]![i]! / a);
    lines.push(
      `${name}: req/s B/A median ${(median(rps[1]!) / median(rps[0]!)).toFixed(3)}, best ${(Math.max(...rps[1]!) / Math.max(...rps[0]!)).toFixed(3)} (A median ${median(rps[0]!).toFixed(0)}, B ${median(rps[1]!).toFixed(0)}); rounds ${ratios.map((v) => v.toFixed(2)).join(' ')}`,
      `  server CPU per request B/A median ${median(cpuRatios).toFixed(3)} (A ${median(cpu[0]!).toFixed(1)} µs, B ${median(cpu[1]!).toFixed(1)} µs); rounds ${cpuRatios.map((v) => v.toFixed(2)).join(' ')}`,
      `  main thread's CPU per request B/A median ${median(mainRatios).toFixed(3)} (A ${median(main[0]!).toFixed(1)} µs, B ${median(main[1]!).toFixed(1)} µs); rounds ${mainRatios.map((v) => v.toFixed(2)).join(' ')}`,
    );
  });
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  for (const s of sides) s.proc.kill('SIGTERM');
}
