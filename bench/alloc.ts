/**
 * `npx tsx bench/alloc.ts DIR [warmup] [requests] [connections]`: bytes the main thread's heap allocates
 * per request, and scavenges per 1000 requests, of one build's server (DIR/dist/server/server.js), from
 * V8's `--trace-gc-nvp` lines (`allocated=` since the previous collection) over `requests` requests
 * (default 40000) after `warmup` (default 5000), on `connections` keep-alive connections (default 8).
 * Allocation drives the young-generation collections, a cost that is spread over every function in a
 * profile; it does not move with the machine's load (not a timing: no quiet machine needed). `AL_ENV`
 * (a JSON object) adds environment variables; `AL_CASES` (from 0: predict, MC /v1, MC V2) selects cases.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { closedLoop, selectCases } from './http-cases.js';
import { freePort } from './lib.js';

const dir = resolve(process.argv[2] ?? '');
const warmup = Number(process.argv[3] ?? 5000);
const count = Number(process.argv[4] ?? 40000);
const connections = Number(process.argv[5] ?? 8);
if (!process.argv[2]) {
  process.stderr.write('usage: npx tsx bench/alloc.ts DIR [warmup] [requests] [connections]\n');
  process.exit(2);
}
const CASES = selectCases(process.env.AL_CASES);
const extraEnv = JSON.parse(process.env.AL_ENV ?? '{}') as Record<string, string>;

const field = (line: string, name: string): number => Number(new RegExp(`\\b${name}=([\\d.]+)`).exec(line)?.[1] ?? 0);

const lines = [
  `${dir}${process.env.AL_ENV ? ` ${process.env.AL_ENV}` : ''}: ${count} requests after ${warmup}, ${connections} connections`,
];
for (const [name, path, body] of CASES) {
  const port = await freePort();
  const proc = spawn(process.execPath, ['--max-semi-space-size=4', '--trace-gc-nvp', 'dist/server/server.js'], {
    cwd: dir,
    env: { ...process.env, LOG_LEVEL: 'warn', HOST: '127.0.0.1', PORT: String(port), ...extraEnv },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let gcLines: string[] = [];
  let partial = '';
  proc.stdout!.on('data', (d: Buffer) => {
    const text = partial + d.toString();
    const parts = text.split('\n');
    partial = parts.pop()!;
    for (const l of parts) if (l.includes(' gc=')) gcLines.push(l);
  });
  try {
    for (const deadline = Date.now() + 60_000; ; ) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/health/ready`)).ok) break;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline) throw new Error('the server did not become ready');
      await new Promise((r) => setTimeout(r, 100));
    }
    const text = JSON.stringify(body);
    await closedLoop(port, path, text, warmup, connections);
    gcLines = [];
    await closedLoop(port, path, text, count, connections);
    await new Promise((r) => setTimeout(r, 200));
    // the first collection's `allocated` counts from before the mark: left out with its share of requests
    const after = gcLines.slice(1);
    const scav = after.filter((l) => l.includes(' gc=s '));
    const allocated = after.reduce((s, l) => s + field(l, 'allocated'), 0);
    const survived = scav.reduce((s, l) => s + field(l, 'new_space_survived'), 0);
    const promoted = scav.reduce((s, l) => s + field(l, 'promoted'), 0);
    const share = count * (after.length / Math.max(1, gcLines.length));
    lines.push(
      `${name}: ${(allocated / share).toFixed(0)} bytes allocated per request; per 1000 requests ${((1000 * scav.length) / count).toFixed(2)} scavenges, ${((1000 * (gcLines.length - 0) - 1000 * scav.length) / count).toFixed(2)} other collections; survived ${(survived / share).toFixed(0)} B/request, promoted ${(promoted / share).toFixed(0)} B/request`,
    );
    process.stderr.write(`${lines.at(-1)}\n`);
    if (process.env.AL_VERBOSE)
      for (const l of after.filter((x) => !x.includes(' gc=s ')))
        process.stderr.write(
          `  ${/ gc=\S+/.exec(l)?.[0]} ${/reduce_memory=\S+/.exec(l)?.[0]} at ${/(\d+) ms:/.exec(l)?.[1]} ms\n`,
        );
  } finally {
    await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r).kill('SIGKILL')));
  }
}
process.stdout.write(`${lines.join('\n')}\n`);
