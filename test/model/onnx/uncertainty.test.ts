/**
 * The served predictive distribution (issue 11): heteroscedastic MC against independent simulations and
 * a closed form, epistemic_scale, classifier temperature, conformal intervals and the card's checks.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, type RequestError } from '../../../src/model/errors.js';
import { MAX_LOG_VARIANCE } from '../../../src/uncertainty/moments.js';
import { classProbabilities } from '../../../src/model/model.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import type { ClassificationStats, RegressionStats } from '../../../src/uncertainty/record.js';
import { joinRows } from '../../helpers/records.js';
import { rowSeed } from '../../../src/model/onnx/masks.js';
import {
  DEFAULT_UNCERTAINTY,
  IntervalUnavailableError,
  conformalRowsNeeded,
  resolveInterval,
} from '../../../src/model/uncertainty.js';
import { DataType } from '../../../src/onnx-proto/proto.js';
import { packBatch, unpackBatch } from '../../../src/serving/wire.js';
import { exportOnnx } from '../../../src/train/export-onnx.js';
import { mcPredictive, standardise } from '../../../src/train/train.js';
import { entropy } from '../../../src/uncertainty/probabilities.js';
import { normalQuantile } from '../../../src/util/special-functions.js';
import { heteroNet } from '../../helpers/hetero.js';
import { tiledTrainRuns } from '../../helpers/ort-tiled.js';
import { f32, gemm, model, tinyDropoutNet, vi } from '../../helpers/onnx.js';

const dir = mkdtempSync(join(tmpdir(), 'ds-uncertainty-'));
let files = 0;
/** Write a graph and its card (null: none) and load them. */
async function load(bytes: Uint8Array, card: Record<string, unknown> | null): Promise<OnnxModel> {
  const k = files++;
  const file = join(dir, `m${k}.onnx`);
  writeFileSync(file, bytes);
  const cardPath = join(dir, `m${k}.json`);
  if (card) writeFileSync(cardPath, JSON.stringify(card));
  return OnnxModel.load(`m${k}`, file, card ? cardPath : null);
}

const HETERO_CARD = {
  task: 'regression',
  features: ['a', 'b'],
  output: 'prediction',
  noise: 'heteroscedastic',
  output_roles: { mean: 'prediction', log_variance: 'log_variance' },
  aleatoric_std: 0.4,
};
const ROWS = [
  [1.2, -0.3],
  [-2, 0.8],
  [0.1, -1.4],
];

describe('heteroscedastic MC: the served std against independent simulations', () => {
  const m = heteroNet();
  const bytes = exportOnnx(m, {});
  let served: OnnxModel;
  beforeAll(async () => {
    served = await load(bytes, { ...HETERO_CARD, epistemic_scale: 1.5 });
  });
  afterAll(() => served.close());

  it('the card and graph give a heteroscedastic model', () => {
    expect(served.uncertainty.noise).toBe('heteroscedastic');
    expect(served.uncertainty.epistemicScale).toBe(1.5);
  });

  it('samples "auto": each row stops on its own with its predicted variance, the one-row answer of its row seed', async () => {
    const x = Float32Array.from(ROWS.flat());
    const opts = { samples: 2000, interval: 0.9, seed: 11, tolerance: 0.02 };
    const auto = (await served.sample(x, 3, opts)).stats as RegressionStats;
    const alone = [];
    for (let i = 0; i < 3; i++)
      alone.push((await served.sample(x.slice(2 * i, 2 * i + 2), 1, { ...opts, seed: rowSeed(11, i) })).stats);
    expect(auto).toEqual(joinRows(alone));
    expect(new Set(alone.map((a) => a.samples)).size).toBeGreaterThan(1); // rows stopped apart
    expect((await served.sample(x, 3, opts)).stats).toEqual(auto);
  });

  it("mean, epistemic and aleatoric std agree with the trainer's mcPredictive and with onnxruntime's own Dropout (T = 4000, within MC error)", async () => {
    const T = 4000;
    const s = 1.5;
    const sigma = 0.4;
    const x = Float32Array.from(ROWS.flat());
    const { stats } = await served.sample(x, 3, { samples: T, interval: 0.9, seed: 3 });
    const r = stats as RegressionStats;
    // 1. the trainer's predictive on the same network, its own mask generator
    const p = mcPredictive(m, standardise(Float64Array.from(ROWS.flat()), 3, 2, m.xMean, m.xStd), 3, T, 77);
    // 2. onnxruntime's Dropout kernel in train mode on T tiled copies of each row (a third sampler)
    const ortRuns = await tiledTrainRuns(bytes);
    for (let i = 0; i < 3; i++) {
      const out = await ortRuns.run(ROWS[i]!, T);
      const mu = out.prediction!;
      const lv = out.log_variance!;
      let mean = 0;
      let alea = 0;
      for (let t = 0; t < T; t++) {
        mean += mu[t]!;
        alea += Math.exp(lv[t]!);
      }
      mean /= T;
      alea /= T;
      let epi = 0;
      for (let t = 0; t < T; t++) epi += (mu[t]! - mean) ** 2;
      epi /= T - 1;
      expect(epi).toBeGreaterThan(0.01);
      for (const [what, wantMean, wantEpiVar, wantAleaVar] of [
        ['trainer', p.mean[i]!, p.epistemicVar[i]!, p.aleatoricVar![i]!],
        ['onnxruntime', mean, epi, alea],
      ] as const) {
        const tol = 4 * Math.sqrt(wantEpiVar / T) * Math.SQRT2;
        expect(Math.abs(r.mean[i]! - wantMean), `${what} mean, row ${i}`).toBeLessThan(tol);
        expect(
          Math.abs(r.epistemicStd[i]! / (s * Math.sqrt(wantEpiVar)) - 1),
          `${what} epistemic, row ${i}`,
        ).toBeLessThan(0.06);
        const served2 = r.aleatoricStd[i]! ** 2 - sigma * sigma;
        expect(Math.abs(served2 / wantAleaVar - 1), `${what} aleatoric, row ${i}`).toBeLessThan(0.06);
        const wantStd = Math.sqrt(s * s * wantEpiVar + wantAleaVar + sigma * sigma);
        expect(Math.abs(r.std[i]! / wantStd - 1), `${what} total, row ${i}`).toBeLessThan(0.05);
      }
      // the parts add up exactly, and the interval is mean ± z·std (the card has no conformal scores)
      expect(r.std[i]).toBeCloseTo(Math.sqrt(r.epistemicStd[i]! ** 2 + r.aleatoricStd[i]! ** 2), 12);
      expect(r.upper[i]! - r.mean[i]!).toBeCloseTo(normalQuantile(0.95) * r.std[i]!, 9);
    }
    // the rows get their own aleatoric std
    expect(new Set(Array.from(r.aleatoricStd, (v) => v.toFixed(6))).size).toBe(3);
    expect(r.intervalMethod).toBe('gaussian');
    await ortRuns.release();
  });

  it('predict serves the mean output; a coalesced batch gives each request its sample() answer', async () => {
    const x = Float32Array.from(ROWS.flat());
    const eval0 = await served.predict(x, 3);
    expect(eval0.length).toBe(3);
    const one = await served.sample(x.subarray(0, 2), 1, { samples: 64, interval: 0.8, seed: 9 });
    const [a, b] = await served.sampleBatch([
      { x: x.subarray(0, 2), rows: 1, opts: { samples: 64, interval: 0.8, seed: 9 } },
      { x: x.subarray(2), rows: 2, opts: { samples: 64, interval: 0.9, seed: 10 } },
    ]);
    expect(a!.stats).toEqual(one.stats);
    expect((b!.stats as RegressionStats).aleatoricStd.length).toBe(2);
  });
});

/**
 * x → Gemm(W) → Relu → Dropout(0.5) → Gemm(V) → Mul(y_std) → Add(y_mean) → prediction, and
 * x → Gemm(U) → log_variance, a log-variance that no mask touches: its MC mean is exp(U·x + c) exactly.
 */
function exactHetero(yStd: number): Uint8Array {
  return model({
    nodes: [
      gemm('x', 'W', 'b', 'h'),
      { op_type: 'Relu', input: ['h'], output: ['a'] },
      { op_type: 'Dropout', input: ['a', 'ratio', 'tm'], output: ['d'] },
      gemm('d', 'V', 'c', 'z'),
      { op_type: 'Mul', input: ['z', 'y_std'], output: ['zs'] },
      { op_type: 'Add', input: ['zs', 'y_mean'], output: ['prediction'] },
      gemm('x', 'U', 'u0', 'log_variance'),
    ],
    inits: [
      f32('W', [3, 2], [0.5, -0.2, 0.3, 0.8, -0.6, 0.1]),
      f32('b', [3], [0.1, 0.2, 0.3]),
      f32('V', [1, 3], [1, -0.5, 0.7]),
      f32('c', [1], [0.2]),
      f32('ratio', [], [0.5]),
      f32('y_std', [1], [yStd]),
      f32('y_mean', [1], [5]),
      f32('U', [1, 2], [1, 0]),
      f32('u0', [1], [0]),
      { name: 'tm', dims: [], data_type: DataType.BOOL, raw_data: new Uint8Array([1]) },
    ],
    inputs: [vi('x', DataType.FLOAT, ['batch', 2])],
    outputs: [vi('prediction', DataType.FLOAT, ['batch', 1]), vi('log_variance', DataType.FLOAT, ['batch', 1])],
  });
}

describe('heteroscedastic MC: closed form and clamp', () => {
  it('aleatoric_std = √(exp(log_variance) + σ²) per row; log-variances beyond ±20 + 2·log(y_std) are clamped', async () => {
    const yStd = 4;
    const m = await load(exactHetero(yStd), {
      features: ['a', 'b'],
      noise: 'heteroscedastic',
      output_roles: { mean: 'prediction', log_variance: 'log_variance' },
      aleatoric_std: 0.5,
      epistemic_scale: 2,
    });
    // log_variance = x₀: −3, 0.7, 30 (beyond 20 + 2·ln 4 = 22.77) and −30 (below −20 + 2·ln 4 = −17.23)
    const x0 = [-3, 0.7, 30, -30];
    const x = Float32Array.from(x0.flatMap((v) => [v, 0.4]));
    const { stats } = await m.sample(x, 4, { samples: 200, interval: 0.9, seed: 1, returnSamples: true });
    const r = stats as RegressionStats;
    const hi = MAX_LOG_VARIANCE + 2 * Math.log(yStd);
    const lo = -MAX_LOG_VARIANCE + 2 * Math.log(yStd);
    x0.forEach((lv, i) => {
      const clamped = Math.min(hi, Math.max(lo, lv));
      expect(r.aleatoricStd[i]! / Math.sqrt(Math.exp(clamped) + 0.25) - 1).toBeCloseTo(0, 6);
      // epistemic: 2 × the std of the returned mean samples, exactly
      let mean = 0;
      for (let t = 0; t < 200; t++) mean += r.raw![t * 4 + i]!;
      mean /= 200;
      let v = 0;
      for (let t = 0; t < 200; t++) v += (r.raw![t * 4 + i]! - mean) ** 2;
      v /= 199;
      expect(r.epistemicStd[i]).toBeCloseTo(2 * Math.sqrt(v), 4);
      expect(r.std[i]! ** 2 / (4 * v + Math.exp(clamped) + 0.25) - 1).toBeCloseTo(0, 5);
    });
    await m.close();
  });
});

describe('epistemic_scale (homoscedastic)', () => {
  it('std² = s²·v + σ² and epistemic_std = s·√v, v the sample variance of the returned samples', async () => {
    const m = await load(tinyDropoutNet(), { epistemic_scale: 2.5, aleatoric_std: 0.3 });
    const { stats } = await m.sample(Float32Array.from([0.4, -1, 2]), 1, {
      samples: 300,
      interval: 0.8,
      seed: 4,
      returnSamples: true,
    });
    const r = stats as RegressionStats;
    const raw = Array.from(r.raw!);
    const mean = raw.reduce((a, b) => a + b, 0) / raw.length;
    const v = raw.reduce((a, b) => a + (b - mean) ** 2, 0) / (raw.length - 1);
    expect(v).toBeGreaterThan(1e-3);
    expect(r.epistemicStd[0]).toBeCloseTo(2.5 * Math.sqrt(v), 5);
    expect(r.std[0]! ** 2).toBeCloseTo(6.25 * v + 0.09, 5);
    expect(r.aleatoricStd[0]).toBe(0.3);
    expect(r.upper[0]! - r.mean[0]!).toBeCloseTo(normalQuantile(0.9) * r.std[0]!, 9);
    // absent: 1
    const plain = await load(tinyDropoutNet(), { aleatoric_std: 0.3 });
    const q = (await plain.sample(Float32Array.from([0.4, -1, 2]), 1, { samples: 300, interval: 0.8, seed: 4 }))
      .stats as RegressionStats;
    expect(q.epistemicStd[0]).toBeCloseTo(Math.sqrt(v), 5);
    await Promise.all([m.close(), plain.close()]);
  });
});

/** x[batch,2] → Gemm → Relu → Dropout(0.4) → Gemm → logits[batch,3] → Softmax → probabilities. */
function tinyClassifier(): Uint8Array {
  return model({
    nodes: [
      gemm('x', 'W', 'b', 'h'),
      { op_type: 'Relu', input: ['h'], output: ['a'] },
      { op_type: 'Dropout', input: ['a', 'ratio', 'tm'], output: ['d'] },
      gemm('d', 'V', 'c', 'logits'),
      {
        op_type: 'Softmax',
        input: ['logits'],
        output: ['probabilities'],
        attribute: [{ name: 'axis', type: 2, i: -1 }],
      },
    ],
    inits: [
      f32('W', [4, 2], [0.9, -0.4, 0.3, 1.1, -0.7, 0.5, 0.2, -0.9]),
      f32('b', [4], [0.3, 0.1, 0.4, 0.2]),
      f32('V', [3, 4], [1.5, -1, 0.5, 2, -0.5, 1.2, -1.4, 0.3, 0.8, 0.4, 1.1, -1.6]),
      f32('c', [3], [0.1, -0.2, 0.05]),
      f32('ratio', [], [0.4]),
      { name: 'tm', dims: [], data_type: DataType.BOOL, raw_data: new Uint8Array([1]) },
    ],
    inputs: [vi('x', DataType.FLOAT, ['batch', 2])],
    outputs: [vi('logits', DataType.FLOAT, ['batch', 3]), vi('probabilities', DataType.FLOAT, ['batch', 3])],
  });
}

describe('classifier temperature', () => {
  const labels = ['a', 'b', 'c'];
  const T = 2.5;
  let plain: OnnxModel;
  let tempered: OnnxModel;
  let probs: OnnxModel;
  beforeAll(async () => {
    plain = await load(tinyClassifier(), { task: 'classification', labels, output: 'logits' });
    tempered = await load(tinyClassifier(), { task: 'classification', labels, output: 'logits', temperature: T });
    probs = await load(tinyClassifier(), {
      task: 'classification',
      labels,
      output: 'probabilities',
      output_kind: 'probabilities',
      temperature: T,
    });
  });
  afterAll(() => Promise.all([plain.close(), tempered.close(), probs.close()]));
  const x = Float32Array.from([0.8, -0.3, 2, 1.5]);
  const softmax = (z: number[]): number[] => {
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  };

  it('predict: softmax(logits / T), and softmax(log p / T) for a model that outputs probabilities', async () => {
    const logits = await plain.predict(x, 2);
    const p = classProbabilities(tempered, await tempered.predict(x, 2), 2);
    const q = classProbabilities(probs, await probs.predict(x, 2), 2);
    for (let i = 0; i < 2; i++) {
      const want = softmax(Array.from(logits.subarray(i * 3, i * 3 + 3), (v) => v / T));
      for (let k = 0; k < 3; k++) {
        expect(p[i * 3 + k]).toBeCloseTo(want[k]!, 12);
        expect(q[i * 3 + k]).toBeCloseTo(want[k]!, 6);
      }
    }
    // the temperature changes the answer (a test that could not fail otherwise)
    expect(Math.abs(classProbabilities(plain, logits, 2)[0]! - p[0]!)).toBeGreaterThan(0.01);
  });

  it('MC: every sample is softmax(log p_t / T) of the untempered sample (same seed); entropy and MI come from the tempered samples', async () => {
    const S = 64;
    const a = (await plain.sample(x, 2, { samples: S, interval: 0.9, seed: 8, returnSamples: true }))
      .stats as ClassificationStats;
    const b = (await tempered.sample(x, 2, { samples: S, interval: 0.9, seed: 8, returnSamples: true }))
      .stats as ClassificationStats;
    const c = (await probs.sample(x, 2, { samples: S, interval: 0.9, seed: 8, returnSamples: true }))
      .stats as ClassificationStats;
    for (let i = 0; i < 2; i++) {
      const mean = [0, 0, 0];
      let meanH = 0;
      for (let t = 0; t < S; t++) {
        const o = (t * 2 + i) * 3;
        const want = softmax(Array.from(a.raw!.subarray(o, o + 3), (v) => Math.log(v) / T));
        for (let k = 0; k < 3; k++) {
          expect(b.raw![o + k]).toBeCloseTo(want[k]!, 6);
          expect(c.raw![o + k]).toBeCloseTo(want[k]!, 5);
          mean[k]! += want[k]! / S;
        }
        meanH += entropy(want) / S;
      }
      for (let k = 0; k < 3; k++) expect(b.probabilities[i * 3 + k]).toBeCloseTo(mean[k]!, 6);
      expect(b.entropy[i]).toBeCloseTo(entropy(mean), 6);
      expect(b.mutualInformation[i]).toBeCloseTo(entropy(mean) - meanH, 6);
      expect(Math.abs(b.entropy[i]! - a.entropy[i]!)).toBeGreaterThan(1e-3);
    }
  });
});

/** The finite-sample conformal quantile by counting: the smallest score with at least ⌈(n + 1)·level⌉ scores ≤ it. */
function bruteQuantile(scores: number[], level: number): number {
  const n = scores.length;
  for (const c of [...scores].sort((a, b) => a - b))
    if (scores.filter((s) => s <= c).length >= (n + 1) * level - 1e-9) return c;
  return Infinity;
}

describe('conformal intervals', () => {
  const scores = Array.from({ length: 19 }, (_, i) => 0.2 + 0.15 * i + 0.01 * (i % 3));
  let conformal: OnnxModel;
  beforeAll(async () => {
    conformal = await load(tinyDropoutNet(), {
      aleatoric_std: 0.2,
      conformal: { score: '|y − mean| / std', rows: 19, source: 'test', scores },
    });
  });
  afterAll(() => conformal.close());
  const x = Float32Array.from([0.4, -1, 2, 1, 1, 1]);

  it('a card with scores and no interval_method defaults to conformal: half-width = q·std, q by a brute count', async () => {
    expect(conformal.uncertainty.intervalMethod).toBe('conformal');
    for (const level of [0.5, 0.8, 0.9, 0.95]) {
      const r = (await conformal.sample(x, 2, { samples: 50, interval: level, seed: 2 })).stats as RegressionStats;
      const q = bruteQuantile(scores, level);
      expect(Number.isFinite(q)).toBe(true);
      expect(r.intervalMethod).toBe('conformal');
      for (let i = 0; i < 2; i++) {
        expect(r.upper[i]! - r.mean[i]!).toBeCloseTo(q * r.std[i]!, 12);
        expect(r.mean[i]! - r.lower[i]!).toBeCloseTo(q * r.std[i]!, 12);
      }
    }
    // gaussian on request: z·std with the same mean and std
    const g = (await conformal.sample(x, 2, { samples: 50, interval: 0.9, intervalMethod: 'gaussian', seed: 2 }))
      .stats as RegressionStats;
    const c = (await conformal.sample(x, 2, { samples: 50, interval: 0.9, seed: 2 })).stats as RegressionStats;
    expect(g.intervalMethod).toBe('gaussian');
    expect(g.std).toEqual(c.std);
    expect(g.upper[0]! - g.mean[0]!).toBeCloseTo(normalQuantile(0.95) * g.std[0]!, 12);
  });

  it('a level the scores cannot reach is a 422 naming the level and the rows it needs; so is conformal without scores', async () => {
    // 19 rows: ⌈20 · 0.96⌉ = 20 > 19
    expect(bruteQuantile(scores, 0.96)).toBe(Infinity);
    const err = await conformal.sample(x, 2, { samples: 10, interval: 0.96 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntervalUnavailableError);
    expect((err as RequestError).status).toBe(422);
    expect((err as Error).message).toBe(
      `interval 0.96 with interval_method "conformal": model "${conformal.name}" was calibrated on 19 rows, and a finite conformal quantile at level 0.96 needs at least 24; ask for a lower level or interval_method "gaussian"`,
    );
    // the same level is fine with gaussian
    await expect(
      conformal.sample(x, 2, { samples: 10, interval: 0.96, intervalMethod: 'gaussian' }),
    ).resolves.toBeDefined();
    const none = await load(tinyDropoutNet(), { aleatoric_std: 0.2 });
    expect(none.uncertainty.intervalMethod).toBe('gaussian');
    await expect(none.sample(x, 2, { samples: 10, interval: 0.9, intervalMethod: 'conformal' })).rejects.toThrow(
      `interval_method "conformal": model "${none.name}" has no conformal calibration scores in its card; use interval_method "gaussian"`,
    );
    await none.close();
  });

  it('conformalRowsNeeded is the smallest n with a finite quantile (brute force)', () => {
    for (const level of [0.5, 0.8, 0.9, 0.95, 0.96, 0.975, 0.99, 0.3, 0.123]) {
      let n = 1;
      while (
        !Number.isFinite(
          bruteQuantile(
            Array.from({ length: n }, (_, i) => i),
            level,
          ),
        )
      )
        n++;
      expect(conformalRowsNeeded(level), `level ${level}`).toBe(n);
    }
  });

  it('resolveInterval: levels outside (0, 1) and unknown methods are 400s', () => {
    expect(() => resolveInterval('m', DEFAULT_UNCERTAINTY, 1)).toThrow(InputError);
    expect(() => resolveInterval('m', DEFAULT_UNCERTAINTY, 0.9, 'bogus' as 'gaussian')).toThrow(
      'interval_method: expected one of gaussian, conformal, got bogus',
    );
  });

  it('the worker wire carries the interval method', () => {
    const jobs = [
      {
        x: Float32Array.from([1, 2, 3]),
        rows: 1,
        opts: { samples: 5, interval: 0.8, intervalMethod: 'conformal' as const, seed: 3 },
      },
      {
        x: Float32Array.from([4, 5, 6]),
        rows: 1,
        opts: { samples: 5, interval: 0.9, intervalMethod: 'gaussian' as const },
      },
      { x: Float32Array.from([7, 8, 9]), rows: 1, opts: { samples: 5, interval: 0.9 } },
    ];
    const back = unpackBatch(packBatch('m', jobs, 3).task, 3);
    expect(back.map((j) => j.opts.intervalMethod)).toEqual(['conformal', 'gaussian', undefined]);
  });
});

describe('card validation at load', () => {
  const base = { features: ['a', 'b'], output: 'prediction' };
  const hetero = exportOnnx(heteroNet(), {});
  it.each([
    [
      'noise heteroscedastic without a log-variance role',
      { ...base, noise: 'heteroscedastic', output_roles: { mean: 'prediction' } },
      'card field "output_roles.log_variance": a heteroscedastic model (noise: heteroscedastic) must name its log-variance output',
    ],
    [
      'a log-variance role that is no graph output',
      { ...base, output_roles: { mean: 'prediction', log_variance: 'logvar' } },
      'the card\'s output_roles.log_variance names output "logvar", the graph has prediction, log_variance',
    ],
    [
      'a mean role that is no graph output',
      { features: ['a', 'b'], output_roles: { mean: 'mu' } },
      'the card names output "mu" (output_roles.mean), the graph has prediction, log_variance',
    ],
    [
      'output and output_roles.mean disagree',
      { ...base, output_roles: { mean: 'log_variance' } },
      'card field "output_roles.mean": "log_variance", but output is "prediction" (they must name the same graph output)',
    ],
    [
      'homoscedastic with a log-variance role',
      { ...base, noise: 'homoscedastic', output_roles: { mean: 'prediction', log_variance: 'log_variance' } },
      'card field "output_roles.log_variance": given, but noise is "homoscedastic"',
    ],
    ['unknown noise', { ...base, noise: 'poisson' }, 'card field "noise"'],
    ['epistemic_scale 0', { ...base, epistemic_scale: 0 }, 'card field "epistemic_scale"'],
    ['epistemic_scale negative', { ...base, epistemic_scale: -1 }, 'card field "epistemic_scale"'],
    ['temperature 0', { ...base, temperature: 0 }, 'card field "temperature"'],
    ['unknown interval_method', { ...base, interval_method: 'bootstrap' }, 'card field "interval_method"'],
    [
      'interval_method conformal without scores',
      { ...base, interval_method: 'conformal' },
      'card field "interval_method": "conformal", but the card has no conformal scores (conformal.scores)',
    ],
    [
      'scores out of order',
      { ...base, conformal: { scores: [0.1, 0.5, 0.3] } },
      'card field "conformal.scores": must be in ascending order (scores[2] = 0.3 < scores[1] = 0.5)',
    ],
    ['a negative score', { ...base, conformal: { scores: [-0.1, 0.5] } }, 'card field "conformal.scores.0"'],
    [
      'rows and scores disagree',
      { ...base, conformal: { rows: 5, scores: [0.1, 0.5] } },
      'card field "conformal.rows": 5, but conformal.scores holds 2 scores',
    ],
    [
      'a classifier with a noise model',
      { features: ['a', 'b'], task: 'classification', noise: 'homoscedastic' },
      'card field "noise": applies to regression models; this card is a classifier\'s',
    ],
  ])('%s', async (_name, card, message) => {
    await expect(load(hetero, card)).rejects.toThrow(message);
  });

  it('a log-variance output of another shape than the mean is refused', async () => {
    const bytes = model({
      nodes: [
        gemm('x', 'W', 'b', 'h'),
        { op_type: 'Dropout', input: ['h', 'ratio'], output: ['d'] },
        gemm('d', 'V', 'c', 'prediction'),
        gemm('d', 'U', 'u0', 'lv'),
      ],
      inits: [
        f32('W', [3, 2], [1, 2, 3, 4, 5, 6]),
        f32('b', [3], [0, 0, 0]),
        f32('ratio', [], [0.2]),
        f32('V', [1, 3], [1, 1, 1]),
        f32('c', [1], [0]),
        f32('U', [2, 3], [1, 1, 1, 1, 1, 1]),
        f32('u0', [2], [0, 0]),
      ],
      inputs: [vi('x', DataType.FLOAT, ['batch', 2])],
      outputs: [vi('prediction', DataType.FLOAT, ['batch', 1]), vi('lv', DataType.FLOAT, ['batch', 2])],
    });
    await expect(load(bytes, { output_roles: { mean: 'prediction', log_variance: 'lv' } })).rejects.toThrow(
      'the log-variance output "lv" has shape [2, 2] for 2 rows, the mean output "prediction" [2, 1]; they must match',
    );
  });
});
