/**
 * `npx tsx bench/worker-batch-cpu.ts [ROOT] [MODELS_DIR] [batches]`: the CPU time per request of what an MC
 * worker thread does for a coalesced batch (issue 20), in one process without HTTP: 8 one-row requests of
 * T=100 on the diabetes model, packed (wire.ts packBatch) → unpackBatch → Model.sampleBatch → packStats →
 * unpackStats, 7 rounds of `batches` batches after a warm-up; prints the median and every round (µs per
 * request, process.cpuUsage: onnxruntime's threads included). ROOT is a checkout (default: this one), so
 * that two builds can be timed one after the other on the same models:
 * `for r in ../main . ../main .; do npx tsx bench/worker-batch-cpu.ts $r models; done`.
 */
import { resolve } from 'node:path';

const [rootArg, modelsArg, batchesArg] = process.argv.slice(2);
const root = resolve(rootArg ?? '.');
const modelsDir = resolve(modelsArg ?? `${root}/models`);
const batches = Number(batchesArg ?? 1000);

const { loadModel } = await import(`${root}/src/model/formats.ts`);
const { runtimeOptions } = await import(`${root}/src/serving/repository.ts`);
const { loadConfig } = await import(`${root}/src/config.ts`);
const wire = await import(`${root}/src/serving/wire.ts`);
const recordWire = await import(`${root}/src/uncertainty/record-wire.ts`);

const model = await loadModel(
  { name: 'diabetes', file: `${modelsDir}/diabetes/model.onnx`, card: `${modelsDir}/diabetes/model.json` },
  runtimeOptions(loadConfig({})),
);
const ROW = Float32Array.from([59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87]);
const jobs = Array.from({ length: 8 }, (_, k) => ({
  x: ROW,
  rows: 1,
  opts: { samples: 100, interval: 0.9, seed: k + 1, returnSamples: false },
}));

async function batch(): Promise<unknown[]> {
  const { task } = wire.packBatch('diabetes', jobs, ROW.length);
  const results = await model.sampleBatch(wire.unpackBatch(task, ROW.length));
  return recordWire.unpackStats(recordWire.packStats(results));
}

for (let i = 0; i < 500; i++) await batch();
const rounds: number[] = [];
for (let r = 0; r < 7; r++) {
  const c0 = process.cpuUsage();
  for (let i = 0; i < batches; i++) await batch();
  const c = process.cpuUsage(c0);
  rounds.push((c.user + c.system) / batches / jobs.length);
}
const sorted = [...rounds].sort((a, b) => a - b);
process.stdout.write(
  `${root}: CPU per request ${sorted[3]!.toFixed(2)} µs (median of 7 rounds of ${batches} batches of 8; rounds ${rounds.map((v) => v.toFixed(2)).join(' ')})\n`,
);
await model.close();
