/**
 * Times of the tensor sampler on the fixtures (issue 19's performance targets), one onnxruntime thread:
 * mobilenet 1 image T = 100 MC against its eval predict; the transformer batch 8 T = 100; the UNet 1 image
 * T = 50. Each figure is the median of 11 runs after 3 warm-up runs (the accumulators need the JIT).
 *   npx tsx test/model/onnx/tensor-mc-timing.mts
 */
import { createSession } from '../../../src/model/onnx/ort.js';
import { evalGraph } from '../../../src/model/onnx/rewrite.js';
import { feedsOf, firstRows } from '../../../src/model/onnx/tensor-mc-shapes.js';
import { inputsOf, samplerInit, samplerOf } from './tensor-mc-fixtures.js';

async function median(f: () => Promise<unknown>, runs = 11): Promise<number> {
  for (let i = 0; i < 3; i++) await f();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await f();
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
}

async function evalMs(name: string, rows: number): Promise<number> {
  const init = samplerInit(name);
  const session = await createSession(evalGraph(init.model, { dropouts: [...init.dropouts], controlInputs: [] }), {
    intraOpThreads: 1,
  });
  const feeds = feedsOf(
    inputsOf(name).map((t) => firstRows(t, rows)),
    init.inputs,
  );
  const ms = await median(() => session.runTyped(feeds, [init.outputName]));
  await session.release();
  return ms;
}

async function mcMs(name: string, rows: number, T: number, sharedPrefix = true): Promise<number> {
  const s = await samplerOf(name, { sharedPrefix });
  const inputs = inputsOf(name);
  const ms = await median(() => s.sample(inputs, rows, { samples: T, interval: 0.9, seed: 1 }));
  await s.close();
  return ms;
}

const fmt = (ms: number): string => `${ms.toFixed(1)} ms`;
const mobEval = await evalMs('mobilenet', 1);
const mobMc = await mcMs('mobilenet', 1, 100);
const mobPlain = await mcMs('mobilenet', 1, 100, false);
console.log(
  `mobilenet 1 image: eval ${fmt(mobEval)}, MC T=100 ${fmt(mobMc)} (${(mobMc / mobEval).toFixed(2)}× eval); without the shared prefix ${fmt(mobPlain)}`,
);
for (const name of ['text_classifier', 'text_classifier_nomask']) {
  console.log(`${name} batch 8: eval ${fmt(await evalMs(name, 8))}, MC T=100 ${fmt(await mcMs(name, 8, 100))}`);
}
console.log(`unet 1 image: eval ${fmt(await evalMs('unet', 1))}, MC T=50 ${fmt(await mcMs('unet', 1, 50))}`);
