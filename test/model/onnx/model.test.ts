import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, InputError, ModelLoadError, NoDropoutError } from '../../../src/model/errors.js';
import type { ClassificationStats, RegressionStats } from '../../../src/uncertainty/record.js';
import { DEFAULT_RUNTIME_OPTIONS } from '../../../src/model/model.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import { toMatrix } from '../../../src/model/rows.js';
import { DataType } from '../../../src/onnx-proto/proto.js';
import { encodePredictions } from '../../../src/server/protocol/v1.js';
import { readCsvFile, toDataset } from '../../../src/train/data.js';
import { exportOnnx } from '../../../src/train/export-onnx.js';
import {
  DEFAULT_TRAIN_OPTIONS,
  mcRegression,
  standardise,
  train,
  type TrainedModel,
} from '../../../src/train/train.js';
import { closedFormOneDropout } from '../../helpers/closed-form.js';
import { f32, gemm, model, tinyDropoutNet, vi } from '../../helpers/onnx.js';

const dir = mkdtempSync(join(tmpdir(), 'ds-model-'));
const diabetes = toDataset(readCsvFile('data/diabetes.csv').table, { target: 'target' });
const opts = { ...DEFAULT_TRAIN_OPTIONS, epochs: 30, mcSamples: 20 };

async function loadTrained(name: string, m: TrainedModel): Promise<OnnxModel> {
  const p = join(dir, `${name}.onnx`);
  writeFileSync(p, exportOnnx(m, {}));
  return OnnxModel.load(name, p, null);
}
const row0 = Float32Array.from(diabetes.x.subarray(0, 10));

describe('Monte Carlo dropout statistics', () => {
  let single: TrainedModel;
  let loaded: OnnxModel;
  beforeAll(async () => {
    single = train(diabetes, opts);
    loaded = await loadTrained('single', single);
  });
  afterAll(() => loaded.close());

  it.each([
    ['seed 11', 11],
    ['no seed', undefined],
  ])(
    'one dropout before the last linear layer, %s: mean and epistemic std match the closed form (T = 4000)',
    async (_kind, seed) => {
      const T = 4000;
      const { stats } = await loaded.sample(row0, 1, { samples: T, interval: 0.9, seed });
      const s = stats as RegressionStats;
      // closed form from the weights: E = eval output, Var = Σ_j w_j² h_j² p/(1−p)
      const { mean: wantMean, std: wantStd } = closedFormOneDropout(single, row0);
      expect(wantStd).toBeGreaterThan(1);
      expect(Math.abs(s.mean[0]! - wantMean)).toBeLessThan((4 * wantStd) / Math.sqrt(T));
      expect(Math.abs(s.epistemicStd[0]! / wantStd - 1)).toBeLessThan(0.05);
      // the eval prediction is the same number
      expect((await loaded.predict(row0, 1))[0]).toBeCloseTo(wantMean, 3);
    },
  );

  it('the same seed gives the same answer; another seed or none gives another', async () => {
    const a = await loaded.sample(row0, 1, { samples: 50, interval: 0.9, seed: 5 });
    const b = await loaded.sample(row0, 1, { samples: 50, interval: 0.9, seed: 5 });
    const c = await loaded.sample(row0, 1, { samples: 50, interval: 0.9, seed: 6 });
    const d = await loaded.sample(row0, 1, { samples: 50, interval: 0.9 });
    const e = await loaded.sample(row0, 1, { samples: 50, interval: 0.9 });
    const mean = (r: { stats: unknown }) => (r.stats as RegressionStats).mean[0];
    expect(mean(a)).toBe(mean(b));
    expect(mean(a)).not.toBe(mean(c));
    expect(mean(d)).not.toBe(mean(e));
    expect(a.seed).toBe(5);
    expect(Number.isInteger(d.seed)).toBe(true); // the fresh seed is returned, so the answer can be reproduced
    // a seed survives a restart: a fresh load of the same file answers the same
    const again = await OnnxModel.load('single', join(dir, 'single.onnx'), null);
    expect(mean(await again.sample(row0, 1, { samples: 50, interval: 0.9, seed: 5 }))).toBe(mean(a));
    await again.close();
  });

  it('rows are independent of their batch neighbours and of chunking', async () => {
    const rows = Float32Array.from(diabetes.x.subarray(0, 30));
    const { stats } = await loaded.sample(rows, 3, { samples: 3000, interval: 0.9, seed: 1 });
    const one = (await loaded.sample(row0, 1, { samples: 3000, interval: 0.9, seed: 2 })).stats as RegressionStats;
    const s = stats as RegressionStats;
    expect(Math.abs(s.mean[0]! - one.mean[0]!)).toBeLessThan((5 * one.epistemicStd[0]!) / Math.sqrt(3000));
    expect(Math.abs(s.epistemicStd[0]! / one.epistemicStd[0]! - 1)).toBeLessThan(0.08);
    // a small maxRunRows splits T into many runs: same distribution
    const chunked = await OnnxModel.load('chunked', join(dir, 'single.onnx'), null, {
      ...DEFAULT_RUNTIME_OPTIONS,
      maxRunRows: 7,
    });
    const c = (await chunked.sample(row0, 1, { samples: 3000, interval: 0.9, seed: 3 })).stats as RegressionStats;
    expect(Math.abs(c.epistemicStd[0]! / one.epistemicStd[0]! - 1)).toBeLessThan(0.08);
    await chunked.close();
  });

  it('intervals: total std combines epistemic and aleatoric parts; interval is mean ± z·std', async () => {
    const p = join(dir, 'alea.onnx');
    writeFileSync(p, exportOnnx(single, {}));
    writeFileSync(join(dir, 'alea.json'), JSON.stringify({ task: 'regression', aleatoric_std: 30 }));
    const m = await OnnxModel.load('alea', p, join(dir, 'alea.json'));
    const s = (await m.sample(row0, 1, { samples: 200, interval: 0.8, seed: 1 })).stats as RegressionStats;
    expect(s.std[0]).toBeCloseTo(Math.sqrt(s.epistemicStd[0]! ** 2 + 900), 9);
    expect(s.upper[0]! - s.mean[0]!).toBeCloseTo(1.2815515655446004 * s.std[0]!, 9);
    expect(s.mean[0]! - s.lower[0]!).toBeCloseTo(1.2815515655446004 * s.std[0]!, 9);
    await m.close();
  });

  it('two dropout layers: statistics match an independent TypeScript simulation of the same weights', async () => {
    const two = train(diabetes, { ...opts, hidden: [24, 16], dropout: [0.5, 0.2], activation: 'tanh' });
    const m = await loadTrained('two', two);
    const T = 6000;
    const ts = mcRegression(two, standardise(Float64Array.from(row0), 1, 10, two.xMean, two.xStd), 1, T, 4242);
    for (const seed of [9, undefined]) {
      const ort = (await m.sample(row0, 1, { samples: T, interval: 0.9, seed })).stats as RegressionStats;
      expect(Math.abs(ort.mean[0]! - ts.mean[0]!)).toBeLessThan((5 * ts.std[0]!) / Math.sqrt(T));
      expect(Math.abs(ort.epistemicStd[0]! / ts.std[0]! - 1)).toBeLessThan(0.05);
    }
    // only the first dropout live: a clearly smaller spread, so a dropped layer would be caught
    const firstOnly = { ...two, spec: { ...two.spec, dropout: [0.5, 0] } };
    const partial = mcRegression(
      { ...firstOnly, net: { ...two.net, spec: firstOnly.spec } },
      standardise(Float64Array.from(row0), 1, 10, two.xMean, two.xStd),
      1,
      T,
      1,
    );
    expect(Math.abs(partial.std[0]! / ts.std[0]! - 1)).toBeGreaterThan(0.1);
    await m.close();
  });
});

describe('classification statistics', () => {
  it('probabilities sum to 1; entropy and mutual information are consistent', async () => {
    const wine = toDataset(readCsvFile('data/wine.csv').table, { target: 'class' });
    const t = train(wine, { ...opts, hidden: [16], dropout: [0.5] });
    const p = join(dir, 'wine.onnx');
    writeFileSync(p, exportOnnx(t, {}));
    writeFileSync(
      join(dir, 'wine.json'),
      JSON.stringify({ task: 'classification', labels: wine.labels, output: 'logits', output_kind: 'logits' }),
    );
    const m = await OnnxModel.load('wine', p, join(dir, 'wine.json'));
    const rows = Float32Array.from(wine.x.subarray(0, 13 * 5));
    const s = (await m.sample(rows, 5, { samples: 500, interval: 0.9, seed: 1, returnSamples: true }))
      .stats as ClassificationStats;
    for (let i = 0; i < 5; i++) {
      const probs = Array.from(s.probabilities.subarray(i * 3, i * 3 + 3));
      expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
      const h = -probs.reduce((a, q) => a + (q > 0 ? q * Math.log(q) : 0), 0);
      expect(s.entropy[i]).toBeCloseTo(h, 9);
      // mutual information = H(mean) − mean H(p_t), recomputed from the raw samples
      let meanH = 0;
      for (let k = 0; k < 500; k++) {
        const q = Array.from(s.raw!.subarray((k * 5 + i) * 3, (k * 5 + i) * 3 + 3));
        meanH -= q.reduce((a, v) => a + (v > 0 ? v * Math.log(v) : 0), 0) / 500;
      }
      expect(s.mutualInformation[i]).toBeCloseTo(Math.max(0, h - meanH), 5);
      expect(s.mutualInformation[i]).toBeGreaterThanOrEqual(0);
      expect(s.variationRatio[i]).toBeGreaterThanOrEqual(0);
      expect(s.variationRatio[i]).toBeLessThan(1);
    }
    const [first] = encodePredictions(m, await m.predict(Float32Array.from(wine.x.subarray(0, 13)), 1), 1) as {
      label: string;
    }[];
    expect(first!.label).toBe('class_0');
    await m.close();
  });
});

describe('PyTorch-exported fixtures (test/fixtures/torch, made by make_fixtures.py)', () => {
  const fx = 'test/fixtures/torch';
  const expected = JSON.parse(readFileSync(join(fx, 'expected.json'), 'utf8')) as {
    inputs: number[][];
    outputs: Record<string, number[][]>;
    dropout: Record<string, number[]>;
    bn_mc_row0: { mean: number; std: number };
    net_mc_row0: { mean: number[]; std: number[] };
  };
  for (const file of Object.keys(expected.outputs)) {
    it(`${file}: eval output equals torch's model.eval() within 1e-4`, async () => {
      const m = await OnnxModel.load(file, join(fx, file), null);
      expect(m.dropoutRates).toEqual(expected.dropout[file]);
      const inputs = toMatrix(expected.inputs, m.features);
      const preds = encodePredictions(m, await m.predict(inputs.data, inputs.rows), inputs.rows) as (
        | number
        | number[]
      )[];
      const want = expected.outputs[file]!;
      preds.forEach((p, i) => {
        const got = Array.isArray(p) ? p : [p];
        got.forEach((v, k) => {
          expect(Math.abs(v - want[i]![k]!)).toBeLessThan(1e-4);
        });
      });
      if (expected.dropout[file]!.length === 0) {
        expect(m.mcAvailable).toBe(false);
        await expect(m.sample(inputs.data, inputs.rows, { samples: 10, interval: 0.9 })).rejects.toThrow(
          NoDropoutError,
        );
      } else {
        const x = Float32Array.from(expected.inputs[0]!);
        const ref = file.includes('bn')
          ? { mean: [expected.bn_mc_row0.mean], std: [expected.bn_mc_row0.std] }
          : expected.net_mc_row0;
        for (const seed of [3, undefined]) {
          const s = (await m.sample(x, 1, { samples: 20000, interval: 0.9, seed })).stats as RegressionStats;
          for (let k = 0; k < s.outputs; k++) {
            // torch's own MC estimate (20000 samples, dropout only in training mode) vs ours
            expect(s.epistemicStd[k]).toBeGreaterThan(0.01);
            expect(Math.abs(s.mean[k]! - ref.mean[k]!)).toBeLessThan((6 * ref.std[k]!) / Math.sqrt(20000));
            expect(Math.abs(s.epistemicStd[k]! / ref.std[k]! - 1)).toBeLessThan(0.04);
          }
        }
      }
      await m.close();
    });
  }
});

describe('rows', () => {
  let m: OnnxModel;
  beforeAll(async () => {
    writeFileSync(join(dir, 'tiny.onnx'), tinyDropoutNet());
    writeFileSync(join(dir, 'tiny.json'), JSON.stringify({ features: ['a', 'b', 'c'] }));
    m = await OnnxModel.load('tiny', join(dir, 'tiny.onnx'), join(dir, 'tiny.json'));
  });
  afterAll(() => m.close());
  const bad = (instances: unknown) => {
    try {
      toMatrix(instances, m.features);
    } catch (err) {
      expect(err).toBeInstanceOf(InputError);
      return (err as Error).message;
    }
    throw new Error('expected an InputError');
  };
  it('accepts arrays and objects keyed by feature name', () => {
    const { data, rows } = toMatrix([[1, 2, 3], { c: 6, a: 4, b: 5 }], m.features);
    expect(rows).toBe(2);
    expect(Array.from(data)).toEqual([1, 2, 3, 4, 5, 6]);
  });
  it('names the row and column of every problem', () => {
    expect(bad('x')).toMatchInlineSnapshot(`"instances: expected an array of rows, got the string "x""`);
    expect(bad([])).toMatchInlineSnapshot(`"instances: expected at least one row, got an empty array"`);
    expect(
      bad([
        [1, 2, 3],
        [1, 2],
      ]),
    ).toMatchInlineSnapshot(`"instances[1]: expected 3 values (a, b, c), got 2"`);
    expect(bad([[1, 'x', 3]])).toMatchInlineSnapshot(`"instances[0][1]: expected a finite number, got the string "x""`);
    expect(bad([[1, null, 3]])).toMatchInlineSnapshot(`"instances[0][1]: expected a finite number, got null"`);
    expect(bad([[1, 2, 1e39]])).toMatchInlineSnapshot(`"instances[0][2]: 1e+39 is outside the float32 range"`);
    expect(bad([{ a: 1, b: 2 }])).toMatchInlineSnapshot(`"instances[0]: missing feature(s) "c""`);
    expect(bad([{ a: 1, b: 2, c: 3, d: 4 }])).toMatchInlineSnapshot(
      `"instances[0]: unknown feature(s) "d" (expected a, b, c)"`,
    );
    expect(bad([true])).toMatchInlineSnapshot(
      `"instances[0]: expected an array of 3 numbers or an object keyed by feature name, got boolean"`,
    );
  });
  it('rejects an interval outside (0, 1)', async () => {
    await expect(m.sample(new Float32Array(3), 1, { samples: 5, interval: 1 })).rejects.toThrow(
      'interval: expected a number strictly between 0 and 1, got 1',
    );
  });
});

describe('bad model files fail at load with the file and the problem', () => {
  const loadBytes = async (bytes: Uint8Array | string, card?: unknown): Promise<string> => {
    const p = join(dir, 'bad.onnx');
    writeFileSync(p, bytes);
    const c = join(dir, 'bad.json');
    writeFileSync(c, card === undefined ? '' : typeof card === 'string' ? card : JSON.stringify(card));
    try {
      await OnnxModel.load('bad', p, card === undefined ? null : c);
    } catch (err) {
      expect(err).toBeInstanceOf(ModelLoadError);
      return (err as Error).message.replaceAll(dir, '<dir>');
    }
    throw new Error('expected a ModelLoadError');
  };
  it('unreadable, empty, truncated, not ONNX', async () => {
    await expect(OnnxModel.load('x', join(dir, 'missing.onnx'), null)).rejects.toThrow(
      `${join(dir, 'missing.onnx')}: cannot read the file (ENOENT)`,
    );
    expect(await loadBytes(new Uint8Array())).toMatchInlineSnapshot(`"<dir>/bad.onnx: file is empty"`);
    const good = tinyDropoutNet();
    expect(await loadBytes(good.subarray(0, good.length - 40))).toMatch(
      /^<dir>\/bad.onnx: not an ONNX model \(protobuf decode failed: /,
    );
    expect(await loadBytes('hello, I am a text file')).toMatch(/^<dir>\/bad.onnx: not an ONNX model/);
  });
  it('several inputs, a non-float input, an unsupported opset', async () => {
    const two = model({
      nodes: [{ op_type: 'Add', input: ['x', 'z'], output: ['y'] }],
      inits: [],
      inputs: [vi('x', DataType.FLOAT, ['batch', 2]), vi('z', DataType.FLOAT, ['batch', 2])],
      outputs: [vi('y', DataType.FLOAT, ['batch', 2])],
    });
    expect(await loadBytes(two)).toMatchInlineSnapshot(
      `"<dir>/bad.onnx: the model has 2 data inputs (x, z); exactly one float tensor [batch, features] is supported"`,
    );
    const ints = model({
      nodes: [{ op_type: 'Identity', input: ['x'], output: ['y'] }],
      inits: [],
      inputs: [vi('x', DataType.INT64, ['batch', 2])],
      outputs: [vi('y', DataType.INT64, ['batch', 2])],
    });
    expect(await loadBytes(ints)).toMatchInlineSnapshot(
      `"<dir>/bad.onnx: input "x" is int64; a float32 input is required"`,
    );
    expect(await loadBytes(tinyDropoutNet(3, 4, 0.5, 99))).toMatchInlineSnapshot(
      `"<dir>/bad.onnx: unsupported opset 99 (supported: 7–22)"`,
    );
  });
  it('a card that contradicts the graph, or is not valid', async () => {
    expect(await loadBytes(tinyDropoutNet(), { features: ['a', 'b'] })).toMatchInlineSnapshot(
      `"<dir>/bad.onnx: the card lists 2 features but the graph input "x" has 3 (card: <dir>/bad.json)"`,
    );
    expect(await loadBytes(tinyDropoutNet(), { dropout: [0.1] })).toMatchInlineSnapshot(
      `"<dir>/bad.onnx: the card's dropout rates [0.1] do not match the graph's Dropout nodes [0.5] (card: <dir>/bad.json)"`,
    );
    expect(await loadBytes(tinyDropoutNet(), { task: 'classification', labels: ['a', 'b'] })).toMatchInlineSnapshot(
      `"<dir>/bad.onnx: a classifier needs an output with at least 2 classes; "y" has 1 (card: <dir>/bad.json)"`,
    );
    expect(await loadBytes(tinyDropoutNet(), '{oops')).toMatch(/^<dir>\/bad.json: the card is not valid JSON/);
    expect(await loadBytes(tinyDropoutNet(), { aleatoric_std: -1 })).toMatchInlineSnapshot(
      `"<dir>/bad.json: card field "aleatoric_std": Too small: expected number to be >=0"`,
    );
    const stats = { rows: 10, min: [0, 0, 0], max: [1, 1, 1], mean: [0.5, 0.5, 0.5], std: [0.3, 0.3, 0.3] };
    expect(await loadBytes(tinyDropoutNet(), { feature_stats: { ...stats, std: [1, 2] } })).toMatchInlineSnapshot(
      `"<dir>/bad.onnx: feature_stats.std has 2 values for 3 features (card: <dir>/bad.json)"`,
    );
    expect(await loadBytes(tinyDropoutNet(), { feature_stats: { ...stats, min: [0, 2, 0] } })).toMatchInlineSnapshot(
      `"<dir>/bad.onnx: feature_stats: a min is above its max (card: <dir>/bad.json)"`,
    );
    expect(await loadBytes(tinyDropoutNet(), { feature_stats: { ...stats, std: [1, -1, 1] } })).toMatchInlineSnapshot(
      `"<dir>/bad.json: card field "feature_stats.std.1": Too small: expected number to be >=0"`,
    );
  });
  it('a graph onnxruntime cannot run', async () => {
    const broken = model({
      nodes: [gemm('x', 'W', 'b', 'y')],
      inits: [f32('W', [2, 5], Array(10).fill(1)), f32('b', [2], [0, 0])],
      inputs: [vi('x', DataType.FLOAT, ['batch', 3])],
      outputs: [vi('y', DataType.FLOAT, ['batch', 2])],
    });
    expect(await loadBytes(broken)).toMatch(
      /^<dir>\/bad.onnx: (onnxruntime cannot load|a test run with 3 features failed)/,
    );
  });
});

describe('a run stops between chunks once its signal is set', () => {
  let m: OnnxModel;
  beforeAll(async () => {
    const p = join(dir, 'chunks.onnx');
    writeFileSync(p, tinyDropoutNet());
    // 3 features; 64 tiled rows per run: 1 row × 640 samples is 10 chunks of 64 samples
    m = await OnnxModel.load('chunks', p, null, { ...DEFAULT_RUNTIME_OPTIONS, maxRunRows: 64 });
  });
  afterAll(() => m.close());
  const x = Float32Array.from([0.1, 0.2, 0.3]);

  it('reads the signal once before each chunk and stops after the chunks run so far', async () => {
    for (const stopAfter of [0, 1, 4]) {
      let reads = 0;
      const signal = {
        get aborted() {
          return ++reads > stopAfter;
        },
      };
      const err = await m.sample(x, 1, { samples: 640, interval: 0.9, seed: 1, signal }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CancelledError);
      expect([(err as CancelledError).samplesDone, (err as CancelledError).samples, reads]).toEqual([
        stopAfter * 64,
        640,
        stopAfter + 1,
      ]);
      expect((err as CancelledError).kind).toBe('cancelled');
    }
  });

  it('a signal never set changes nothing: 10 reads, the same answer as without one', async () => {
    let reads = 0;
    const signal = {
      get aborted() {
        reads++;
        return false;
      },
    };
    const a = await m.sample(x, 1, { samples: 640, interval: 0.9, seed: 5, signal });
    const b = await m.sample(x, 1, { samples: 640, interval: 0.9, seed: 5 });
    expect(reads).toBe(10);
    expect(a.stats).toEqual(b.stats);
  });

  it("the card's feature_stats reach the model", async () => {
    const p = join(dir, 'stats.onnx');
    const c = join(dir, 'stats.json');
    writeFileSync(p, tinyDropoutNet());
    const featureStats = { rows: 10, min: [0, -1, 2], max: [1, 1, 3], mean: [0.5, 0, 2.5], std: [0.3, 0.5, 0.2] };
    writeFileSync(c, JSON.stringify({ feature_stats: featureStats }));
    const withStats = await OnnxModel.load('stats', p, c);
    expect(withStats.featureStats).toEqual(featureStats);
    expect(m.featureStats).toBeNull();
    await withStats.close();
  });
});
