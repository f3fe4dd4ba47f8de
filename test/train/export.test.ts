import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { readCsvFile, toDataset } from '../../src/train/data.js';
import { exportOnnx } from '../../src/train/export-onnx.js';
import { decodeModel } from '../../src/onnx-proto/proto.js';
import { DEFAULT_TRAIN_OPTIONS, evalForward, standardise, train, type TrainedModel } from '../../src/train/train.js';
import { Rng } from '../../src/util/rng.js';
import { closedFormOneDropout } from '../helpers/closed-form.js';

const diabetes = toDataset(readCsvFile('data/diabetes.csv').table, { target: 'target' });
const wine = toDataset(readCsvFile('data/wine.csv').table, { target: 'class' });

// onnxruntime's EliminateDropout rule deletes Dropout nodes even with training_mode=true; keep every
// other optimisation on.
const KEEP_DROPOUT = {
  graphOptimizationLevel: 'all',
  extra: { optimization: { disable_specified_optimizers: 'EliminateDropout' } },
} as ort.InferenceSession.SessionOptions;

async function run(
  session: ort.InferenceSession,
  x: Float32Array,
  rows: number,
  f: number,
  training: boolean,
  output: string,
): Promise<Float32Array> {
  const res = await session.run({
    input: new ort.Tensor('float32', x, [rows, f]),
    training_mode: new ort.Tensor('bool', [training], []),
  });
  return res[output]!.data as Float32Array;
}

function randomRows(n: number, f: number, ds: { x: Float64Array; n: number }, seed: number): Float32Array {
  // rows drawn around the data: a real row plus noise, so activations are in the trained range
  const rng = new Rng(seed);
  const out = new Float32Array(n * f);
  for (let i = 0; i < n; i++) {
    const r = rng.int(ds.n);
    for (let j = 0; j < f; j++) out[i * f + j] = ds.x[r * f + j]! * (1 + 0.2 * rng.normal());
  }
  return out;
}

const small = (over: Partial<typeof DEFAULT_TRAIN_OPTIONS>) => ({
  ...DEFAULT_TRAIN_OPTIONS,
  epochs: 20,
  mcSamples: 20,
  ...over,
});

describe('ONNX export', () => {
  const cases: [string, () => TrainedModel, string][] = [
    ['regression relu 10→50→1', () => train(diabetes, small({})), 'prediction'],
    [
      'regression gelu 10→16→8→1',
      () => train(diabetes, small({ hidden: [16, 8], activation: 'gelu', dropout: [0.2, 0.4] })),
      'prediction',
    ],
    [
      'classification tanh 13→32→32→3',
      () => train(wine, small({ hidden: [32, 32], activation: 'tanh', dropout: [0.5] })),
      'logits',
    ],
  ];
  for (const [title, make, output] of cases) {
    it(`${title}: eval-mode onnxruntime equals the TypeScript forward within 1e-5`, async () => {
      const m = make();
      const bytes = exportOnnx(m, {});
      const session = await ort.InferenceSession.create(bytes, KEEP_DROPOUT);
      const f = m.spec.inputs;
      const ds = m.task === 'regression' ? diabetes : wine;
      const rows = 64;
      const x = randomRows(rows, f, ds, 5);
      const got = await run(session, x, rows, f, false, output);
      const ts = evalForward(m.net, standardise(Float64Array.from(x), rows, f, m.xMean, m.xStd), rows);
      const want = m.task === 'regression' ? ts.map((v) => v * m.yStd + m.yMean) : ts;
      let worst = 0;
      for (let i = 0; i < want.length; i++)
        worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!)));
      expect(worst).toBeLessThan(1e-5);
      // with dropout on, outputs vary between runs
      const a = await run(session, x, rows, f, true, output);
      const b = await run(session, x, rows, f, true, output);
      expect(a.some((v, i) => v !== b[i])).toBe(true);
      await session.release();
    });
  }

  it('every dropout is a Dropout op fed by the training_mode input, opset ≥ 13', () => {
    const m = train(diabetes, small({ hidden: [8, 8, 8], dropout: [0.1, 0.2, 0.3] }));
    const model = decodeModel(exportOnnx(m, { k: 'v' }));
    const drops = model.graph!.node.filter((n) => n.op_type === 'Dropout');
    expect(drops).toHaveLength(3);
    for (const d of drops) expect(d.input[2]).toBe('training_mode');
    expect(model.graph!.input.map((i) => i.name)).toEqual(['input', 'training_mode']);
    expect(Number(model.opset_import![0]!.version)).toBeGreaterThanOrEqual(13);
    expect(model.metadata_props).toEqual([{ key: 'k', value: 'v' }]);
  });

  it('MC with dropout on matches the closed form for one dropout before the last linear layer', async () => {
    const m = train(diabetes, small({ epochs: 30 }));
    const session = await ort.InferenceSession.create(exportOnnx(m, {}), KEEP_DROPOUT);
    const f = m.spec.inputs;
    const x1 = Float32Array.from(diabetes.x.subarray(0, f));
    const T = 4000;
    // tile the row T times: one run gives T independent dropout samples
    const tiled = new Float32Array(T * f);
    for (let t = 0; t < T; t++) tiled.set(x1, t * f);
    const samples = await run(session, tiled, T, f, true, 'prediction');
    let mean = 0;
    for (const v of samples) mean += v;
    mean /= T;
    let variance = 0;
    for (const v of samples) variance += (v - mean) ** 2;
    variance /= T - 1;
    // closed form: E = eval output, Var = Σ_j w_j² h_j² p/(1−p) (test/helpers/closed-form.ts)
    const { mean: wantMean, std: wantStd } = closedFormOneDropout(m, x1);
    expect(wantStd).toBeGreaterThan(1);
    expect(Math.abs(mean - wantMean)).toBeLessThan((4 * wantStd) / Math.sqrt(T));
    expect(Math.abs(Math.sqrt(variance) / wantStd - 1)).toBeLessThan(0.05);

    // the trap this guards against: with default optimisations the Dropout nodes are deleted
    const naive = await ort.InferenceSession.create(exportOnnx(m, {}), { graphOptimizationLevel: 'all' });
    const flat = await run(naive, tiled, T, f, true, 'prediction');
    expect(new Set(flat).size).toBe(1);
    await session.release();
    await naive.release();
  });

  it('same data, options and seed give a byte-identical model; another seed does not', () => {
    const a = exportOnnx(train(diabetes, small({ seed: 3 })), { card: '{}' });
    const b = exportOnnx(train(diabetes, small({ seed: 3 })), { card: '{}' });
    const c = exportOnnx(train(diabetes, small({ seed: 4 })), { card: '{}' });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(c))).toBe(false);
  });
});
