/**
 * `npx tsx bench/idle-memory.ts [DIR] [workers…]`: the idle memory of the built server (DIR, default `.`,
 * with `npm run build` done and its models/) at each MC_WORKERS (default 0 1 2 4). For each: start
 * `node dist/server/server.js` (`NODE_ARGS`, e.g. `--max-semi-space-size=4` as `npm start` adds it;
 * other variables pass through, e.g. the image's MALLOC_*), wait for ready and 3 s more, read RSS (idle);
 * send a short Monte Carlo load large enough to run on the workers (both shipped models, 20 rows × 2000
 * samples, 4 at a time for 3 s); read RSS 3 s later (after load) and once the workers have renewed their
 * model copies (RENEW_AFTER_MS and 3 s more: settled). Prints RSS and /proc/PID/smaps_rollup's anonymous
 * and file-backed parts, the difference per extra worker, the growth (settled − idle) and the verdict
 * against issue 20's targets: ≤ 150 MB idle with one worker, ≤ 25 MB more per extra worker, no growth
 * after load (≤ GROWTH_MB, the noise of one run). Linux only.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { RENEW_AFTER_MS } from '../src/serving/pool.js';

const dir = resolve(process.argv[2] ?? '.');
const counts = process.argv.slice(3).map(Number);
const workers = counts.length > 0 ? counts : [0, 1, 2, 4];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** RSS, anonymous and file-backed resident memory, MB (smaps_rollup). */
function memory(pid: number): { rss: number; anon: number; file: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0) / 1024;
  return { rss: kb('Rss'), anon: kb('Anonymous'), file: kb('Rss') - kb('Anonymous') };
}

const MODELS: [string, number][] = [
  ['diabetes', 10],
  ['wine', 13],
];

/** Four clients per model, each sending MC requests one after another for `seconds`. */
async function mcLoad(url: string, seconds: number): Promise<number> {
  const until = Date.now() + seconds * 1000;
  let sent = 0;
  const client = async (name: string, features: number) => {
    const instances = Array.from({ length: 20 }, (_, r) => Array.from({ length: features }, (_, c) => (r + c) % 7));
    const body = JSON.stringify({ instances, samples: 2000, seed: 1 });
    while (Date.now() < until) {
      const res = await fetch(`${url}/v1/models/${name}/uncertainty`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      // a busy machine may refuse (503, the admission limit): wait and send again
      if (res.status === 503) {
        await res.arrayBuffer();
        await sleep(100);
        continue;
      }
      if (!res.ok) throw new Error(`${name}: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
      sent++;
    }
  };
  await Promise.all(MODELS.flatMap(([name, f]) => Array.from({ length: 2 }, () => client(name, f))));
  return sent;
}

const fmt = (m: { rss: number; anon: number; file: number }) =>
  `RSS ${m.rss.toFixed(1)} MB (anon ${m.anon.toFixed(1)}, file ${m.file.toFixed(1)})`;

/** The built server with `MC_WORKERS=workers`, once it answers ready. */
async function start(workers: number, port: number) {
  const args = [...(process.env.NODE_ARGS?.split(' ').filter(Boolean) ?? []), 'dist/server/server.js'];
  const env = { ...process.env, LOG_LEVEL: 'warn', HOST: '127.0.0.1', PORT: String(port), MC_WORKERS: String(workers) };
  const proc = spawn(process.execPath, args, { cwd: dir, env, stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 60_000; ; await sleep(100)) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`the server did not become ready`);
    const ready = await fetch(`${url}/health/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
  }
  const stop = () =>
    new Promise<void>((done) => {
      proc.once('exit', () => done());
      proc.kill('SIGTERM');
    });
  return { url, pid: proc.pid!, stop };
}

/** RSS idle, 3 s after a short MC load and once the workers were renewed. */
async function measure(server: { url: string; pid: number }) {
  await sleep(3000);
  const idle = memory(server.pid);
  const sent = await mcLoad(server.url, 3);
  await sleep(3000);
  const after = memory(server.pid);
  await sleep(RENEW_AFTER_MS);
  return { idle, sent, after, settled: memory(server.pid) };
}

/** Issue 20's targets, MB. */
const TARGET = { oneWorker: 150, perWorker: 25 };
/** What counts as no growth: one run's noise (a GC cycle, a page of code touched), MB. */
const GROWTH_MB = 5;

const results: { workers: number; idle: number; after: number; settled: number }[] = [];
let port = 18_400;
for (const n of workers) {
  const server = await start(n, port++);
  const measured = await measure(server).finally(server.stop);
  const { idle, sent, after, settled } = measured;
  results.push({ workers: n, idle: idle.rss, after: after.rss, settled: settled.rss });
  process.stdout.write(
    `MC_WORKERS=${n}: idle ${fmt(idle)}; ${sent} MC requests; 3 s after ${fmt(after)}; settled ${fmt(settled)}; growth ${(settled.rss - idle.rss).toFixed(1)} MB\n`,
  );
}
const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
const one = results.find((r) => r.workers === 1);
if (one)
  process.stdout.write(
    `one worker: idle ${one.idle.toFixed(1)} MB, settled ${one.settled.toFixed(1)} MB (target ≤ ${TARGET.oneWorker}): ${verdict(Math.max(one.idle, one.settled) <= TARGET.oneWorker)}\n`,
  );
const base = one ?? results[0]!;
for (const r of results)
  if (r.workers > base.workers) {
    const per = (m: 'idle' | 'settled') => (r[m] - base[m]) / (r.workers - base.workers);
    process.stdout.write(
      `MC_WORKERS=${r.workers}: per worker over MC_WORKERS=${base.workers} idle +${per('idle').toFixed(1)} MB, settled +${per('settled').toFixed(1)} MB (target ≤ ${TARGET.perWorker}): ${verdict(Math.max(per('idle'), per('settled')) <= TARGET.perWorker)}\n`,
    );
  }
const grown = results.filter((r) => r.settled - r.idle > GROWTH_MB);
process.stdout.write(
  `growth after load (settled − idle ≤ ${GROWTH_MB} MB): ${verdict(grown.length === 0)}${grown.length ? ` (MC_WORKERS=${grown.map((r) => r.workers).join(', ')})` : ''}\n`,
);
