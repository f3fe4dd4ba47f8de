/**
 * `npx tsx bench/idle-memory.ts [DIR] [workers…]`: the idle memory of the built server (DIR, default `.`,
 * with `npm run build` done and its models/) at each MC_WORKERS (default 0 1 2 4). For each: start
 * `node dist/server/server.js` (`NODE_ARGS`, e.g. `--max-semi-space-size=4` as `npm start` adds it;
 * other variables pass through, e.g. the image's MALLOC_*), wait for ready and 3 s more, read RSS (idle),
 * and again QUIET_MS after ready (idle, quiet); send a short Monte Carlo load large enough to run on the
 * workers (both shipped models, 20 rows × 2000 samples, 4 at a time for 3 s); read RSS 3 s later (after
 * load), once the workers have renewed their model copies (RENEW_AFTER_MS and 3 s more: settled) and
 * QUIET_MS after that (settled, quiet). Prints RSS and /proc/PID/smaps_rollup's anonymous and file-backed
 * parts, the difference per extra worker, the growth (settled − idle) and the verdict against issue 20's
 * targets: ≤ 150 MB idle with one worker, ≤ 25 MB more per extra worker, no growth after load
 * (≤ GROWTH_MB, the noise of one run), on the 3 s readings and on the quiet ones. Linux only.
 *
 * Why two readings: V8's memory reducer shrinks an isolate that went quiet (its young generation back
 * to one page, a collection of the old one) about 20 s after its last activity, and a fresh worker, at
 * start and after a renewal, is such an isolate: a worker thread's heap 17.1 → 8.6 MB, RSS −8.5 MB per
 * worker between 15 and 25 s. The 3 s readings are the server just after a start or a renewal, the quiet
 * ones the server left alone.
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

/** How long after its last activity an idle server is read again (the memory reducer has run; see above). */
const QUIET_MS = 30_000;

/** RSS idle (3 s and QUIET_MS after ready), 3 s after a short MC load, once the workers were renewed, and QUIET_MS later. */
async function measure(server: { url: string; pid: number }) {
  await sleep(3000);
  const idle = memory(server.pid);
  await sleep(QUIET_MS - 3000);
  const idleQuiet = memory(server.pid);
  const sent = await mcLoad(server.url, 3);
  await sleep(3000);
  const after = memory(server.pid);
  await sleep(RENEW_AFTER_MS);
  const settled = memory(server.pid);
  await sleep(QUIET_MS);
  return { idle, idleQuiet, sent, after, settled, settledQuiet: memory(server.pid) };
}

/** Issue 20's targets, MB. */
const TARGET = { oneWorker: 150, perWorker: 25 };
/** What counts as no growth: one run's noise (a GC cycle, a page of code touched), MB. */
const GROWTH_MB = 5;

type Reading = 'idle' | 'settled';
interface Result {
  workers: number;
  idle: number;
  settled: number;
}

const runs: { at3s: Result; quiet: Result }[] = [];
let port = 18_400;
for (const n of workers) {
  const server = await start(n, port++);
  const m = await measure(server).finally(server.stop);
  runs.push({
    at3s: { workers: n, idle: m.idle.rss, settled: m.settled.rss },
    quiet: { workers: n, idle: m.idleQuiet.rss, settled: m.settledQuiet.rss },
  });
  process.stdout.write(
    `MC_WORKERS=${n}: idle ${fmt(m.idle)}, quiet ${fmt(m.idleQuiet)}; ${m.sent} MC requests; 3 s after ${fmt(m.after)}; settled ${fmt(m.settled)}, quiet ${fmt(m.settledQuiet)}; growth ${(m.settled.rss - m.idle.rss).toFixed(1)} MB, quiet ${(m.settledQuiet.rss - m.idleQuiet.rss).toFixed(1)} MB\n`,
  );
}

const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');

/** The three targets on one set of readings. */
function verdicts(label: string, results: Result[]): void {
  const say = (line: string) => process.stdout.write(`${label}: ${line}\n`);
  const one = results.find((r) => r.workers === 1);
  if (one)
    say(
      `one worker: idle ${one.idle.toFixed(1)} MB, settled ${one.settled.toFixed(1)} MB (target ≤ ${TARGET.oneWorker}): ${verdict(Math.max(one.idle, one.settled) <= TARGET.oneWorker)}`,
    );
  const base = one ?? results[0]!;
  for (const r of results)
    if (r.workers > base.workers) {
      const per = (m: Reading) => (r[m] - base[m]) / (r.workers - base.workers);
      say(
        `MC_WORKERS=${r.workers}: per worker over MC_WORKERS=${base.workers} idle +${per('idle').toFixed(1)} MB, settled +${per('settled').toFixed(1)} MB (target ≤ ${TARGET.perWorker}): ${verdict(Math.max(per('idle'), per('settled')) <= TARGET.perWorker)}`,
      );
    }
  const grown = results.filter((r) => r.settled - r.idle > GROWTH_MB);
  say(
    `growth after load (settled − idle ≤ ${GROWTH_MB} MB): ${verdict(grown.length === 0)}${grown.length ? ` (MC_WORKERS=${grown.map((r) => r.workers).join(', ')})` : ''}`,
  );
}

verdicts(
  '3 s readings',
  runs.map((r) => r.at3s),
);
verdicts(
  `quiet readings (${QUIET_MS / 1000} s)`,
  runs.map((r) => r.quiet),
);
