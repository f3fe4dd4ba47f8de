/**
 * Times of the tensor sampler on the fixtures (issue 19's performance targets), one onnxruntime thread:
 * mobilenet 1 image T = 100 MC against its eval predict; the transformer batch 8 T = 100; the UNet 1 image
 * T = 50. Eval and MC runs alternate (so both see the same machine load), 3 warm-up pairs (the
 * accumulators need the JIT), then 21 pairs: the minimum (the uncontended cost) and the median.
 *   npx tsx test/model/onnx/tensor-mc-timing.mts
 */
import { createSession } from '../../../src/model/onnx/ort.js';
import { evalGraph } from '../../../src/model/onnx/rewrite.js';
import { feedsOf, firstRows } from '../../../src/model/onnx/tensor-mc-shapes.js';
import { inputsOf, samplerInit, samplerOf } from './tensor-mc-fixtures.js';

interface Timing {
  min: number;
  median: number;
}

async function pairs(a: () => Promise<unknown>, b: () => Promise<unknown>, runs = 21): Promise<[Timing, Timing]> {
  const ta: number[] = [];
  const tb: number[] = [];
  const time = async (f: () => Promise<unknown>, into: number[]) => {
    const t0 = performance.now();
    await f();
    into.push(performance.now() - t0);
  };
  for (let i = 0; i < runs + 3; i++) {
    await time(a, ta);
    await time(b, tb);
  }
  const stat = (v: number[]): Timing => {
    const s = v.slice(3).sort((x, y) => x - y);
    return { min: s[0]!, median: s[Math.floor(s.length / 2)]! };
  };
  return [stat(ta), stat(tb)];
}

async function evalVsMc(name: string, rows: number, T: number, sharedPrefix = true): Promise<[Timing, Timing]> {
  const init = samplerInit(name);
  const session = await createSession(evalGraph(init.model, { dropouts: [...init.dropouts], controlInputs: [] }), {
    intraOpThreads: 1,
  });
  const inputs = inputsOf(name);
  const feeds = feedsOf(
    inputs.map((t) => firstRows(t, rows)),
    init.inputs,
  );
  const sampler = await samplerOf(name, { sharedPrefix });
  try {
    return await pairs(
      () => session.runTyped(feeds, [init.outputName]),
      () => sampler.sample(inputs, rows, { samples: T, interval: 0.9, seed: 1 }),
    );
  } finally {
    await Promise.all([session.release(), sampler.close()]);
  }
}

const fmt = (t: Timing): string => `${t.min.toFixed(2)} ms (median ${t.median.toFixed(2)})`;
const runs: [string, number, number, boolean][] = [
  ['mobilenet', 1, 100, true],
  ['mobilenet', 1, 100, false],
  ['text_classifier', 8, 100, true],
  ['text_classifier_nomask', 8, 100, true],
  ['unet', 1, 50, true],
];
for (const [name, rows, T, shared] of runs) {
  const [ev, mc] = await evalVsMc(name, rows, T, shared);
  const ratio = (mc.min / ev.min).toFixed(2);
  const prefix = shared ? '' : ', without the shared prefix';
  console.log(`${name} ${rows} row(s)${prefix}: eval ${fmt(ev)}, MC T=${T} ${fmt(mc)}: ${ratio}× eval (minimums)`);
}
