/**
 * `npx tsx bench/callgrind.ts DIR [warmup] [requests] [connections]`: instructions per request of one
 * build's server, counted by valgrind's callgrind: a figure that does not move with the load of a
 * shared machine, unlike CPU time. A total still differs between starts of one build (up to a fifth: the
 * state V8's JIT settles into, docs/benchmarks.md); each function's own count is stable, so compare those,
 * or the least of several starts.
 * The server (DIR/dist/server/server.js, as `npm start` runs it) starts under callgrind without
 * instrumentation; after `warmup` requests of a case (default 3000, enough for V8 to optimise the hot
 * path) instrumentation goes on, the counters are zeroed, `requests` more are sent (default 2000, over
 * `connections` keep-alive connections, default 8) and the counters dumped, per thread. Prints per case
 * instructions per request of the main thread (the event loop) and of all threads (the MC worker's
 * too), and leaves the main thread's dump (callgrind.out.*) in a kept directory for `callgrind_annotate`
 * (a copy, `*.named`, names JIT-compiled JavaScript from V8's perf map; V8's builtins and C++ are named
 * anyway). `CG_ENV` (a JSON object)
 * adds environment variables to the server; `CG_CASES` (comma list from 0: predict, MC /v1, MC V2) runs
 * only those. Each case runs on a fresh server. Not a timing: it needs no quiet machine, and it runs
 * niced (it is paused while others time, and it does not disturb them).
 * Needs valgrind; Node's JIT needs `--smc-check=all-non-file`.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { closedLoop, selectCases } from './http-cases.js';
import { freePort } from './lib.js';

const dir = resolve(process.argv[2] ?? '');
const warmup = Number(process.argv[3] ?? 3000);
const count = Number(process.argv[4] ?? 2000);
const connections = Number(process.argv[5] ?? 8);
if (!process.argv[2]) {
  process.stderr.write('usage: npx tsx bench/callgrind.ts DIR [warmup] [requests] [connections]\n');
  process.exit(2);
}

const CASES = selectCases(process.env.CG_CASES);
const extraEnv = JSON.parse(process.env.CG_ENV ?? '{}') as Record<string, string>;

async function ready(proc: ChildProcess, port: number): Promise<void> {
  for (const deadline = Date.now() + 1_800_000; ; ) {
    if (proc.exitCode !== null) throw new Error(`the server exited with ${proc.exitCode}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health/ready`)).ok) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error('the server did not become ready');
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Instructions of each thread in the dump files of `pid` (`summary:` or `totals:` line). */
function dumped(out: string, pid: number): Map<number, number> {
  const byThread = new Map<number, number>();
  for (const f of readdirSync(out)) {
    const m = new RegExp(`^cg\\.${pid}\\.\\d+-(\\d+)$`).exec(f);
    if (!m) continue;
    const text = readFileSync(join(out, f), 'utf8');
    const total = /^(?:summary|totals): (\d+)/m.exec(text);
    if (total) byThread.set(Number(m[1]), (byThread.get(Number(m[1])) ?? 0) + Number(total[1]));
  }
  return byThread;
}

/**
 * The main thread's dump with each JIT-compiled function (callgrind's `0x…` names) named from V8's
 * perf map (`--perf-basic-prof`: start, size, name per line), written next to it as `*.named`.
 */
function nameJit(dump: string, pid: number): void {
  const map = `/tmp/perf-${pid}.map`;
  if (!existsSync(dump) || !existsSync(map)) return;
  const code = readFileSync(map, 'utf8')
    .split('\n')
    .map((l) => /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(l))
    .filter((m) => m !== null)
    .map((m) => ({
      start: Number.parseInt(m[1]!, 16),
      end: Number.parseInt(m[1]!, 16) + Number.parseInt(m[2]!, 16),
      name: m[3]!,
    }))
    .sort((a, b) => a.start - b.start);
  const find = (addr: number): string | null => {
    let lo = 0;
    let hi = code.length - 1;
    let hit: (typeof code)[number] | null = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (code[mid]!.start <= addr) {
        hit = code[mid]!;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    // the last code object that starts at or before addr (a later map line for the same start wins)
    return hit && addr < hit.end ? hit.name : null;
  };
  // a name is `0x…`, or with --separate-callers a chain of names joined by `'`
  const text = readFileSync(dump, 'utf8').replace(/^(c?fn=\(\d+\)) (.+)$/gm, (_line, head: string, names: string) => {
    const named = names.replace(/0x([0-9a-f]{8,16})/g, (hex: string, digits: string) => {
      const name = find(Number.parseInt(digits, 16));
      return name === null ? hex : `${name.replace(/[\s']+/g, '_')}@${digits}`;
    });
    return `${head} ${named}`;
  });
  writeFileSync(`${dump}.named`, text);
}

const out = mkdtempSync(join(tmpdir(), 'callgrind-'));
const lines = [
  `${dir}${process.env.CG_ENV ? ` ${process.env.CG_ENV}` : ''}: ${count} requests after ${warmup}, ${connections} connections; dumps in ${out}`,
];
/** One case on a fresh server under callgrind: instructions per request of the main thread and of all. */
async function measure(
  path: string,
  body: unknown,
): Promise<{ main: number; all: number; threads: number; pid: number }> {
  const port = await freePort();
  const proc = spawn(
    'nice',
    [
      '-n',
      '10',
      'valgrind',
      '--tool=callgrind',
      '--smc-check=all-non-file',
      '--separate-threads=yes',
      '--instr-atstart=no',
      // e.g. CG_VALGRIND='--separate-callers8=*MigrateToMap*': who calls a costly runtime function
      ...(process.env.CG_VALGRIND ? process.env.CG_VALGRIND.split(' ') : []),
      `--callgrind-out-file=${join(out, 'cg.%p')}`,
      process.execPath,
      '--max-semi-space-size=4',
      // the young generation held at the size a loaded server reaches (natively both builds run at 4 MB
      // under wrk): under valgrind a server allocates ~50× slower per ms, which V8 takes for an idle
      // program, so each full collection (the idle collector's, V8's memory reducer) shrank it and
      // scavenges came 2–4× as often as natively (bench/alloc.ts), a cost of the slowness, not the code
      '--min-semi-space-size=4',
      // JIT code's names (/tmp/perf-PID.map) for the main thread's dump (callgrind names it by address)
      '--perf-basic-prof',
      'dist/server/server.js',
    ],
    {
      cwd: dir,
      env: { ...process.env, LOG_LEVEL: 'warn', HOST: '127.0.0.1', PORT: String(port), ...extraEnv },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  try {
    await ready(proc, port);
    const text = JSON.stringify(body);
    await closedLoop(port, path, text, warmup, connections);
    // valgrind's own pid is the server's (nice execs it); vgdb names its pipes after HOST, which the
    // server's environment sets
    const pid = proc.pid!;
    const control = (arg: string): void => {
      execFileSync('callgrind_control', [arg, String(pid)], {
        stdio: 'ignore',
        env: { ...process.env, HOST: '127.0.0.1' },
      });
    };
    control('--instr=on');
    control('--zero');
    await closedLoop(port, path, text, count, connections);
    control('--dump');
    const threads = dumped(out, pid);
    nameJit(join(out, `cg.${pid}.1-01`), pid);
    const all = [...threads.values()].reduce((a, b) => a + b, 0);
    return { main: (threads.get(1) ?? Number.NaN) / count, all: all / count, threads: threads.size, pid };
  } catch (err) {
    process.stderr.write(stderr.slice(-2000));
    throw err;
  } finally {
    await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r).kill('SIGKILL')));
  }
}

for (const [name, path, body] of CASES) {
  // a server paused (SIGSTOP: others' timings) while it starts can miss Fastify's plugin timeout: again
  let m: Awaited<ReturnType<typeof measure>> | undefined;
  for (let attempt = 1; m === undefined; attempt++) {
    try {
      m = await measure(path, body);
    } catch (err) {
      if (attempt === 3) throw err;
      process.stderr.write(`${name}: ${(err as Error).message}; again\n`);
    }
  }
  lines.push(
    `${name}: main thread ${m.main.toFixed(0)} instructions per request, all threads ${m.all.toFixed(0)} (${m.threads} threads; pid ${m.pid})`,
  );
  process.stderr.write(`${lines.at(-1)}\n`);
}
process.stdout.write(`${lines.join('\n')}\n`);
