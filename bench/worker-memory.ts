/**
 * `npx tsx bench/worker-memory.ts [workers]`: what one MC worker thread holds, stage by stage, with the
 * shipped models and the built code (`npm run build` first). For each stage a warm-up thread starts
 * (shared libraries mapped), then `workers` (default 2) more, each kept alive; the figure is the growth
 * of this process's anonymous memory (/proc/self/smaps_rollup) per further thread. Stages: an empty
 * thread; onnxruntime-node imported; the model code imported (src/model/formats.ts and what it
 * imports); the two models loaded as a worker loads them (from the bytes the repository read,
 * ModelSource.contents, with the main model's copyOptions: no self-check, the card not validated again); loaded as the main thread loads them (self-check); the worker's way, then 10 MC requests
 * of 20 rows × 2000 samples on each (4080-row runs). Each stage runs in a process of its own; the
 * environment passes through (MALLOC_*, …).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';

const dist = resolve('dist');
const threads = Number(process.argv[2] ?? 2);

const anonMb = (): number =>
  Number(/^Anonymous:\s+(\d+)/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))![1]) / 1024;

const load = (check: boolean) => `
const { readFileSync } = await import('node:fs');
const { loadModel } = await import('${dist}/model/formats.js');
const { DEFAULT_RUNTIME_OPTIONS } = await import('${dist}/model/model.js');
const models = [];
for (const [name, features] of [['diabetes', 10], ['wine', 13]]) {
  const file = 'models/' + name + '/model.onnx', card = 'models/' + name + '/model.json';
  // the bytes read once, as the repository passes them (ModelSource.contents): a worker's copy takes its card as validated
  const contents = { model: readFileSync(file), card: readFileSync(card, 'utf8') };
  const source = { name, file, card, contents };
  models.push([await loadModel(source, { ...DEFAULT_RUNTIME_OPTIONS, ${check ? '' : 'selfCheck: false'} }), features]);
}
globalThis.models = models;`;

const STAGES: [string, string][] = [
  ['an empty thread', ''],
  ['+ onnxruntime-node', `await import('onnxruntime-node');`],
  ['+ the model code', `await import('${dist}/model/formats.js');`],
  ['+ two models, as a worker loads them', load(false)],
  ['+ two models, with the self-check', load(true)],
  [
    '+ two models (worker), after 20 MC requests',
    `${load(false)}
for (let i = 0; i < 10; i++)
  for (const [m, f] of models) await m.sample(new Float32Array(20 * f).fill(1), 20, { samples: 2000, interval: 0.9, seed: i });`,
  ],
];

async function perThread(code: string): Promise<number> {
  const body = `${code}\nconst { parentPort } = await import('node:worker_threads');\nparentPort.postMessage(1);\nsetInterval(() => {}, 1e9);`;
  const started: Worker[] = [];
  let warm = 0;
  for (let i = 0; i <= threads; i++) {
    const w = new Worker(body, { eval: true, type: 'module', execArgv: [] } as ConstructorParameters<typeof Worker>[1]);
    started.push(w);
    await new Promise((ok, fail) => {
      w.once('message', ok);
      w.once('error', fail);
    });
    if (i === 0) warm = anonMb();
  }
  await new Promise((r) => setTimeout(r, 1000));
  const mb = (anonMb() - warm) / threads;
  await Promise.all(started.map((w) => w.terminate()));
  return mb;
}

const stage = process.argv[3];
if (stage !== undefined) process.stdout.write((await perThread(STAGES[Number(stage)]![1])).toFixed(1));
else
  for (const [i, [label]] of STAGES.entries()) {
    const args = ['--import', 'tsx', process.argv[1]!, String(threads), String(i)];
    const mb = execFileSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    process.stdout.write(`${label.padEnd(46)} ${mb} MB per thread\n`);
  }
