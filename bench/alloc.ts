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
import { Agent, request } from 'node:http';
import { resolve } from 'node:path';
import { freePort } from './lib.js';

const dir = resolve(process.argv[2] ?? '');
const warmup = Number(process.argv[3] ?? 5000);
const count = Number(process.argv[4] ?? 40000);
const connections = Number(process.argv[5] ?? 8);
if (!process.argv[2]) {
  process.stderr.write('usage: npx tsx bench/alloc.ts DIR [warmup] [requests] [connections]\n');
  process.exit(2);
}
const ROW = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87];
const ALL_CASES: [string, string, unknown][] = [
  ['predict', '/v1/models/diabetes/predict', { instances: [ROW] }],
  ['MC T=100 (/v1)', '/v1/models/diabetes/uncertainty', { instances: [ROW], samples: 100 }],
  [
    'MC T=100 (V2)',
    '/v2/models/diabetes/infer',
    { inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', data: ROW }], parameters: { mc_samples: 100 } },
  ],
];
const CASES = process.env.AL_CASES ? process.env.AL_CASES.split(',').map((i) => ALL_CASES[Number(i)]!) : ALL_CASES;
const extraEnv = JSON.parse(process.env.AL_ENV ?? '{}') as Record<string, string>;

function post(agent: Agent, port: number, path: string, body: string): Promise<void> {
  return new Promise((res, rej) => {
    const req = request(
      { agent, host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/json' } },
      (r) => {
        r.resume();
        r.on('end', () => (r.statusCode === 200 ? res() : rej(new Error(`${path}: status ${r.statusCode}`))));
      },
    );
    req.on('error', rej);
    req.end(body);
  });
}

async function load(port: number, path: string, body: string, n: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  let left = n;
  const lane = async (): Promise<void> => {
    while (left-- > 0) await post(agent, port, path, body);
  };
  await Promise.all(Array.from({ length: connections }, lane));
  agent.destroy();
}

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
    await load(port, path, text, warmup);
    gcLines = [];
    await load(port, path, text, count);
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
