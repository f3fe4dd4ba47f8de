/**
 * `npx tsx bench/idle-memory.ts [DIR] [workers…]`: the idle memory of the built server (DIR, default `.`,
 * with `npm run build` done and its models/) at each MC_WORKERS (default 0 1 2 4). For each: start
 * `node dist/server/server.js` (`NODE_ARGS`, e.g. `--max-semi-space-size=4` as `npm start` adds it;
 * other variables pass through, e.g. the image's MALLOC_*), wait for ready, read RSS 3 s, 30 s and 60 s
 * after it (idle); send a short Monte Carlo load large enough to run on the workers (both shipped
 * models, 20 rows × 2000 samples, 4 at a time for 3 s); read RSS 3 s, 30 s and 60 s after the load's
 * end. Prints RSS and /proc/PID/smaps_rollup's anonymous and file-backed parts, the difference per
 * extra worker, the growth (each reading after the load − the idle reading just before it, at 60 s) and
 * the verdicts against issue 20's targets: ≤ 150 MB idle with one worker, ≤ 25 MB more per extra
 * worker, no growth after load (≤ GROWTH_MB, the noise of one run, at each of the three readings).
 * Linux only.
 *
 * Why three readings: V8's memory reducer shrinks an isolate that went quiet (its young generation back
 * to one page, a collection of the old one) some 8–25 s after its last collection, a worker idle for
 * RENEW_AFTER_MS (10 s) after Monte Carlo work is replaced by a fresh one (src/serving/pool.ts), and the
 * idle collector runs at the first quiet second (src/server/plugins/idle-gc.ts): the 3 s reading is
 * the server before any of these, the 60 s one the server left alone.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

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

/** When RSS is read, in ms after ready (idle) and after the load's end (after): 3 s, 30 s and 60 s. */
const READ_AT = [3000, 30_000, 60_000] as const;
type Memory = ReturnType<typeof memory>;

/** RSS at READ_AT after ready, a short MC load, and RSS at READ_AT after its end. */
async function measure(server: { url: string; pid: number }) {
  const readings = async (): Promise<Memory[]> => {
    const out: Memory[] = [];
    const t0 = Date.now();
    for (const at of READ_AT) {
      await sleep(t0 + at - Date.now());
      out.push(memory(server.pid));
    }
    return out;
  };
  const idle = await readings();
  const sent = await mcLoad(server.url, 3);
  return { idle, sent, after: await readings() };
}

/** Issue 20's targets, MB. */
const TARGET = { oneWorker: 150, perWorker: 25 };
/** What counts as no growth: one run's noise (a GC cycle, a page of code touched), MB. */
const GROWTH_MB = 5;

interface Result {
  workers: number;
  idle: number[];
  after: number[];
}

const secs = (ms: number) => `${ms / 1000} s`;
const runs: Result[] = [];
let port = 18_400;
for (const n of workers) {
  const server = await start(n, port++);
  const m = await measure(server).finally(server.stop);
  runs.push({ workers: n, idle: m.idle.map((r) => r.rss), after: m.after.map((r) => r.rss) });
  const before = m.idle.at(-1)!.rss;
  const idleText = m.idle.map((r, i) => `${secs(READ_AT[i]!)} ${fmt(r)}`).join(', ');
  const afterText = m.after
    .map((r, i) => `${secs(READ_AT[i]!)} ${fmt(r)} (${r.rss - before >= 0 ? '+' : ''}${(r.rss - before).toFixed(1)})`)
    .join(', ');
  process.stdout.write(
    `MC_WORKERS=${n}: idle after ready ${idleText}; ${m.sent} MC requests; after the load ${afterText}\n`,
  );
}

const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
const say = (line: string) => process.stdout.write(`${line}\n`);
const list = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(' / ');

const one = runs.find((r) => r.workers === 1);
if (one)
  say(
    `one worker idle at ${READ_AT.map(secs).join(' / ')} after ready: ${list(one.idle)} MB (target ≤ ${TARGET.oneWorker}): ${verdict(Math.max(...one.idle) <= TARGET.oneWorker)}`,
  );
const base = one ?? runs[0]!;
for (const r of runs)
  if (r.workers > base.workers) {
    const per = (a: number[], b: number[]) => a.map((x, i) => (x - b[i]!) / (r.workers - base.workers));
    const idle = per(r.idle, base.idle);
    const after = per(r.after, base.after);
    say(
      `MC_WORKERS=${r.workers}: per worker over MC_WORKERS=${base.workers} idle +${list(idle)} MB, after the load +${list(after)} MB (target ≤ ${TARGET.perWorker}): ${verdict(Math.max(...idle, ...after) <= TARGET.perWorker)}`,
    );
  }
for (const r of runs) {
  const growth = r.after.map((x) => x - r.idle.at(-1)!);
  say(
    `MC_WORKERS=${r.workers}: growth after the load at ${READ_AT.map(secs).join(' / ')} over idle before it: ${growth.map((g) => `${g >= 0 ? '+' : ''}${g.toFixed(1)}`).join(' / ')} MB (target ≤ ${GROWTH_MB} at each): ${verdict(growth.every((g) => g <= GROWTH_MB))}`,
  );
}
