/**
 * `npm run soak -- reload`: runtime model management under load. The real server (dist/, as npm start
 * runs it, with ADMIN_API_KEY, MODELS_WATCH=true, MODELS_POLL_MS=500) serves diabetes and wine from a
 * temporary folder while autocannon sends predict, MC and V2 MC-on-a-worker traffic to diabetes on
 * loopback, and a probe sends one predict at a time to time the switches. Meanwhile:
 *   1. api: ten reloads — diabetes/model.onnx + model.json rewritten (two trained versions alternate:
 *      the shipped network and one trained by the CLI with --hidden 64,64 --seed 1), then
 *      POST /v2/repository/models/diabetes/load;
 *   2. watch: ten new version folders diabetes/2 … /11 (the same two networks alternate), each renamed
 *      into place and picked up by the hot reload (latest:1: the previous version is unloaded);
 *   3. corrupt: a version folder 12 with a broken model.onnx (hot reload fails, then the load route
 *      answers 400), version 11 must keep serving; the folder is then removed;
 *   4. wine: three unload/load cycles through the management routes.
 * Every answer is checked against the two networks' answers computed in-process (same rows, same seeds):
 * an error, a non-2xx or an answer of neither network is a failed request. RSS is the mean of the 10 s
 * of load before the first reload and of the 10 s after the last change. Prints a table; exits 1 unless
 * there are 0 failed requests, no answer of the old version after a reload answered, every switch
 * within a second of the swap (api) and RSS after ≤ 1.1 × before.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon, { type Result } from 'autocannon';
import { OnnxModel } from '../src/model/onnx/model.js';
import type { RegressionStats } from '../src/uncertainty/record.js';
import { rssMb, startServer } from '../bench/lib.js';

const ADMIN = 'soak-admin-key-0123456789';
const POLL_MS = 500;
const ROW = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();

execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });

// the two networks: A = the shipped diabetes model, B = trained now with another architecture and seed
const work = mkdtempSync(join(tmpdir(), 'soak-reload-'));
const nets = { A: join(work, 'A', 'diabetes'), B: join(work, 'B', 'diabetes') };
cpSync('models/diabetes', nets.A, { recursive: true });
execFileSync(
  process.execPath,
  [
    '--import',
    'tsx',
    'src/train/cli.ts',
    '--data',
    'data/diabetes.csv',
    '--target',
    'target',
    '--name',
    'diabetes',
    '--hidden',
    '64,64',
    '--seed',
    '1',
    '--out',
    join(work, 'B'),
  ],
  { stdio: 'ignore' },
);

// what each network answers to the traffic's requests (the server must give exactly one of these)
const tile = (n: number) => Float32Array.from(Array.from({ length: n }, () => ROW).flat());
const expected: Record<'A' | 'B', { predict: number; mc: number; worker: number }> = {
  A: { predict: 0, mc: 0, worker: 0 },
  B: { predict: 0, mc: 0, worker: 0 },
};
for (const net of ['A', 'B'] as const) {
  const m = await OnnxModel.load('diabetes', join(nets[net], 'model.onnx'), join(nets[net], 'model.json'));
  expected[net].predict = (await m.predict(tile(1), 1))[0]!;
  expected[net].mc = ((await m.sample(tile(4), 4, { samples: 100, interval: 0.9, seed: 1 })).stats as RegressionStats)
    .mean[0]!;
  expected[net].worker = Math.fround(
    ((await m.sample(tile(2), 2, { samples: 1000, interval: 0.9, seed: 2 })).stats as RegressionStats).mean[0]!,
  );
  await m.close();
}
const which = (value: number, kind: 'predict' | 'mc' | 'worker'): 'A' | 'B' | null => {
  const near = (x: number) => Math.abs(value - x) <= 1e-3 * Math.max(1, Math.abs(x));
  return near(expected.A[kind]) ? 'A' : near(expected.B[kind]) ? 'B' : null;
};

const dir = join(work, 'models');
mkdirSync(dir);
cpSync(nets.A, join(dir, 'diabetes'), { recursive: true });
cpSync('models/wine', join(dir, 'wine'), { recursive: true });
/** Put a network's files in place, each through a temporary name and a rename. */
function putFlat(net: 'A' | 'B'): void {
  for (const f of ['model.json', 'model.onnx']) {
    writeFileSync(join(dir, 'diabetes', `.${f}.tmp`), readFileSync(join(nets[net], f)));
    renameSync(join(dir, 'diabetes', `.${f}.tmp`), join(dir, 'diabetes', f));
  }
}
/** A version folder, written aside and renamed into place at once. */
function putVersion(version: number, files: Record<string, Uint8Array | string>): void {
  const tmp = join(dir, 'diabetes', `.v${version}.tmp`);
  mkdirSync(tmp);
  for (const [f, bytes] of Object.entries(files)) writeFileSync(join(tmp, f), bytes);
  renameSync(tmp, join(dir, 'diabetes', String(version)));
}
const netFiles = (net: 'A' | 'B') => ({
  'model.onnx': readFileSync(join(nets[net], 'model.onnx')),
  'model.json': readFileSync(join(nets[net], 'model.json')),
});

const server = await startServer(
  'src/server/server.ts',
  {
    MODELS_DIR: dir,
    ADMIN_API_KEY: ADMIN,
    MODELS_WATCH: 'true',
    MODELS_POLL_MS: String(POLL_MS),
    MC_WORKER_MIN_WORK: '2000',
    MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? '1048576',
    MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2',
  },
  18991,
);
const rss: { t: number; mb: number }[] = [];
const sampler = setInterval(() => rss.push({ t: now(), mb: rssMb(server.pid) }), 500);
const meanRss = (from: number, to: number) => {
  const xs = rss.filter((s) => s.t >= from && s.t < to).map((s) => s.mb);
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
};

// background load, every answer checked
const json = { 'content-type': 'application/json' };
const wrong: string[] = [];
// biome-ignore lint/suspicious/noExplicitAny: each `pick` reads its own answer's JSON shape
const check = (kind: 'predict' | 'mc' | 'worker', pick: (body: any) => number) => (status: number, body: string) => {
  if (status !== 200) wrong.push(`${kind}: ${status} ${body.slice(0, 200)}`);
  else if (which(pick(JSON.parse(body)), kind) === null)
    wrong.push(`${kind}: an answer of neither network: ${body.slice(0, 200)}`);
};
const loads = [
  {
    name: 'predict (v1, 1 row)',
    connections: 16,
    requests: [
      {
        method: 'POST',
        path: '/v1/models/diabetes/predict',
        headers: json,
        body: JSON.stringify({ instances: [ROW] }),
        onResponse: check('predict', (b) => b.predictions[0]),
      },
    ],
  },
  {
    name: 'MC inline/coalesced (v1, 4 rows × T=100)',
    connections: 8,
    requests: [
      {
        method: 'POST',
        path: '/v1/models/diabetes/uncertainty',
        headers: json,
        body: JSON.stringify({ instances: [ROW, ROW, ROW, ROW], samples: 100, seed: 1 }),
        onResponse: check('mc', (b) => b.predictions[0].mean),
      },
    ],
  },
  {
    name: 'MC on the worker (v2, 2 rows × T=1000)',
    connections: 4,
    requests: [
      {
        method: 'POST',
        path: '/v2/models/diabetes/infer',
        headers: json,
        body: JSON.stringify({
          inputs: [{ name: 'input', shape: [2, 10], datatype: 'FP32', data: [...ROW, ...ROW] }],
          parameters: { mc_samples: 1000, seed: 2 },
        }),
        onResponse: check('worker', (b) => b.outputs[0].data[0]),
      },
    ],
  },
];
const runs = loads.map((l) => {
  let instance!: { stop(): void };
  const result = new Promise<Result>((resolve, reject) => {
    instance = autocannon(
      { url: server.url, connections: l.connections, duration: 3600, requests: l.requests },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
  });
  return { stop: () => instance.stop(), result };
});

// the probe: one predict at a time, each answer with its start and end
const probes: { started: number; finished: number; net: 'A' | 'B' | null; status: number }[] = [];
let probing = true;
const probe = (async () => {
  while (probing) {
    const started = now();
    try {
      const r = await fetch(`${server.url}/v1/models/diabetes/predict`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ instances: [ROW] }),
      });
      const body = (await r.json()) as { predictions: number[] };
      probes.push({
        started,
        finished: now(),
        status: r.status,
        net: r.ok ? which(body.predictions[0]!, 'predict') : null,
      });
    } catch {
      probes.push({ started, finished: now(), status: 0, net: null });
    }
    await sleep(2);
  }
})();
const management = async (path: string) => {
  const r = await fetch(`${server.url}/v2/repository${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}` },
  });
  return { status: r.status, body: (await r.json()) as { error?: string } };
};
/** When the probe first answered with `net` after `since` (ms after `since`), or null. */
const firstAnswer = (net: 'A' | 'B', since: number) => {
  const p = probes.find((x) => x.started >= since && x.net === net);
  return p ? p.finished - since : null;
};
const waitFor = async (net: 'A' | 'B', since: number, limitMs: number) => {
  while (now() - since < limitMs && firstAnswer(net, since) === null) await sleep(10);
  return firstAnswer(net, since);
};

const t0 = now();
// RSS under this load alone levels off after about 30 s (V8 heaps and onnxruntime arenas grow to it)
process.stderr.write('soak reload: warm-up 30 s, then 10 s of load before the first reload\n');
await sleep(40_000);
const before = meanRss(t0 + 30_000, now());

// 1. ten reloads through the management route
const api: { loadMs: number; switchMs: number | null; stale: number; status: number }[] = [];
for (let i = 0; i < 10; i++) {
  const net = i % 2 === 0 ? 'B' : 'A';
  const old = net === 'A' ? 'B' : 'A';
  putFlat(net);
  const asked = now();
  const r = await management('/models/diabetes/load');
  const answered = now();
  const switchMs = await waitFor(net, answered, 5000);
  await sleep(1500);
  const stale = probes.filter((p) => p.started >= answered && p.started < now() && p.net === old).length;
  api.push({ loadMs: answered - asked, switchMs, stale, status: r.status });
}

// RSS after the first ten reloads (then ten more, a failed load and three unload/load cycles follow)
const afterApiFrom = now();
await sleep(5000);
const afterApi = meanRss(afterApiFrom, now());

// 2. ten new version folders picked up by the hot reload
const watch: { ms: number | null }[] = [];
for (let v = 2; v <= 11; v++) {
  const net = v % 2 === 0 ? 'B' : 'A';
  const written = now();
  putVersion(v, netFiles(net));
  watch.push({ ms: await waitFor(net, written, 10_000) });
  await sleep(1000);
}
const servedNet = 'A'; // version 11

// 3. a broken version 12: the hot reload fails, the load route answers 400, version 11 keeps serving
const corruptAt = now();
putVersion(12, { 'model.onnx': 'half a file, not a protobuf', 'model.json': readFileSync(join(nets.A, 'model.json')) });
await sleep(POLL_MS * 4);
const corruptLoad = await management('/models/diabetes/load');
await sleep(1000);
const afterCorrupt = probes.filter((p) => p.started >= corruptAt);
const corruptKept = afterCorrupt.length > 0 && afterCorrupt.every((p) => p.net === servedNet);
rmSync(join(dir, 'diabetes', '12'), { recursive: true });
await sleep(POLL_MS * 3);

// 4. wine: three unload/load cycles
const cycles: number[] = [];
for (let i = 0; i < 3; i++) {
  cycles.push((await management('/models/wine/unload')).status, (await management('/models/wine/load')).status);
  await sleep(500);
}

const t1 = now();
process.stderr.write('soak reload: 10 s of load after the last change\n');
await sleep(10_000);
const after = meanRss(t1, now());
probing = false;
await probe;
for (const r of runs) r.stop();
const results = await Promise.all(runs.map((r) => r.result));
clearInterval(sampler);
const metrics = await (await fetch(`${server.url}/metrics`)).text();
const index = await management('/index');
await server.stop();
rmSync(work, { recursive: true, force: true });

const metric = (series: string) =>
  Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
const probeFailures = probes.filter((p) => p.status !== 200 || p.net === null).length;
const failed = wrong.length + probeFailures + results.reduce((a, r) => a + r.errors + r.timeouts + r.non2xx, 0);
const max = (xs: (number | null)[]) => (xs.some((x) => x === null) ? Infinity : Math.max(...(xs as number[])));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const stale = api.reduce((a, r) => a + r.stale, 0);
const apiSwitch = max(api.map((r) => r.switchMs));
const watchSwitch = max(watch.map((r) => r.ms));
const growth = after / before - 1;
const lines = [
  `soak reload: ${((t1 - t0) / 1000 + 10).toFixed(0)} s on loopback, autocannon ${loads.map((l) => l.connections).join(' + ')} connections + a probe; MODELS_POLL_MS=${POLL_MS}`,
  '',
  '| load | connections | requests | req/s | p99 ms | errors | non-2xx | wrong answers |',
  '|---|---:|---:|---:|---:|---:|---:|---:|',
  ...loads.map((l, i) => {
    const r = results[i]!;
    return `| ${l.name} | ${l.connections} | ${r.requests.total} | ${r.requests.average.toFixed(0)} | ${r.latency.p99} | ${r.errors + r.timeouts} | ${r.non2xx} | ${wrong.filter((w) => w.startsWith(['predict', 'mc', 'worker'][i]!)).length} |`;
  }),
  `| probe (v1 predict, one at a time) | 1 | ${probes.length} | | | ${probes.filter((p) => p.status === 0).length} | ${probes.filter((p) => p.status !== 200 && p.status !== 0).length} | ${probes.filter((p) => p.status === 200 && p.net === null).length} |`,
  '',
  '| step | figure |',
  '|---|---|',
  `| api: 10 reloads (POST …/diabetes/load), status | ${api.map((r) => r.status).join(' ')} |`,
  `| api: load duration, median / max | ${median(api.map((r) => r.loadMs)).toFixed(0)} / ${Math.max(...api.map((r) => r.loadMs)).toFixed(0)} ms |`,
  `| api: load answered → first answer of the new network, max | ${apiSwitch.toFixed(0)} ms |`,
  `| api: answers of the old network to requests sent after the load answered | ${stale} |`,
  `| watch: 10 new version folders, written → first answer of the new version, median / max | ${median(watch.map((r) => r.ms ?? Infinity)).toFixed(0)} / ${watchSwitch.toFixed(0)} ms (two polls of ${POLL_MS} ms + load) |`,
  `| corrupt version 12: load route status; version 11 kept serving (${afterCorrupt.length} probe answers) | ${corruptLoad.status} (${(corruptLoad.body.error ?? '').slice(0, 90)}…); ${corruptKept ? 'yes' : 'NO'} |`,
  `| wine: 3 × unload, load | ${cycles.join(' ')} |`,
  `| model_loads_total diabetes / wine; model_load_failures_total diabetes; model_unloads_total diabetes replaced / unloaded | ${metric('model_loads_total{model="diabetes"}')} / ${metric('model_loads_total{model="wine"}')}; ${metric('model_load_failures_total{model="diabetes"}')}; ${metric('model_unloads_total{model="diabetes",reason="replaced"}')} / ${metric('model_unloads_total{model="diabetes",reason="unloaded"}')} |`,
  `| index at the end | ${JSON.stringify(index.body)} |`,
  `| RSS under load: 10 s before the first reload → 10 s after the last change | ${before.toFixed(1)} → ${after.toFixed(1)} MB (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)}%, limit +10%) |`,
  `| RSS under load: 5 s after the first 10 reloads → 10 s after the last change (10 more reloads, a failed load, 3 unload/load cycles) | ${afterApi.toFixed(1)} → ${after.toFixed(1)} MB (${after >= afterApi ? '+' : ''}${((after / afterApi - 1) * 100).toFixed(1)}%) |`,
  `| failed requests (errors, non-2xx, answers of neither network) | ${failed} |`,
];
if (wrong.length) lines.push('', 'first wrong answers:', ...wrong.slice(0, 5));
const ok =
  failed === 0 &&
  stale === 0 &&
  apiSwitch <= 1000 &&
  watchSwitch < Infinity &&
  api.every((r) => r.status === 200) &&
  corruptLoad.status === 400 &&
  corruptKept &&
  cycles.every((s) => s === 200) &&
  growth <= 0.1;
process.stdout.write(`${lines.join('\n')}\n${ok ? 'PASS' : 'FAIL'}\n`);
process.exit(ok ? 0 : 1);
