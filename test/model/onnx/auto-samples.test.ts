/**
 * samples "auto" on the shipped models (issue 22): OnnxModel.sample with a tolerance stops at a chunk
 * end, says how many samples it used, and the same seed gives the same answer: with one live dropout
 * (diabetes) exactly the fixed-T answer for the samples used.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RUNTIME_OPTIONS } from '../../../src/model/model.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import { toMatrix } from '../../../src/model/rows.js';
import type { RegressionStats } from '../../../src/uncertainty/record.js';
import { AUTO_MIN_SAMPLES, nextAutoCheck } from '../../../src/uncertainty/stopping.js';
import { DIABETES_ROW, WINE_ROW } from '../../helpers/app.js';

let diabetes: OnnxModel;
let wine: OnnxModel;
let smallRuns: OnnxModel;
const x = toMatrix([DIABETES_ROW, DIABETES_ROW.map((v, j) => (j === 2 ? v * 1.3 : v))], [...'abcdefghij']).data;

beforeAll(async () => {
  diabetes = await OnnxModel.load('diabetes', 'models/diabetes/model.onnx', 'models/diabetes/model.json');
  wine = await OnnxModel.load('wine', 'models/wine/model.onnx', 'models/wine/model.json');
  // runs of at most 50 tiled rows: 25 samples of 2 rows per run, so the checks fall inside runs
  smallRuns = await OnnxModel.load('diabetes', 'models/diabetes/model.onnx', 'models/diabetes/model.json', {
    ...DEFAULT_RUNTIME_OPTIONS,
    maxRunRows: 50,
  });
});
afterAll(async () => {
  await diabetes?.close();
  await wine?.close();
  await smallRuns?.close();
});

describe('samples "auto" on a model', () => {
  it('stops between AUTO_MIN_SAMPLES and max, within tolerance, and equals the fixed-T answer of that seed', async () => {
    const opts = { samples: 1000, interval: 0.9, seed: 42, tolerance: 0.05, returnSamples: true };
    const auto = await diabetes.sample(x, 2, opts);
    const T = auto.stats.samples;
    expect(T).toBeGreaterThanOrEqual(AUTO_MIN_SAMPLES);
    expect(T).toBeLessThan(1000);
    expect(auto.seed).toBe(42);
    const fixed = await diabetes.sample(x, 2, { samples: T, interval: 0.9, seed: 42, returnSamples: true });
    expect(auto.stats).toEqual(fixed.stats);
    expect((auto.stats as RegressionStats).raw!.length).toBe(T * 2);
    // one sample fewer is another answer: the equality above is not vacuous
    const fewer = await diabetes.sample(x, 2, { samples: T - 1, interval: 0.9, seed: 42 });
    expect((fewer.stats as RegressionStats).mean[0]).not.toBe((auto.stats as RegressionStats).mean[0]);
    // the same seed again: the same answer; chunks split by a small run limit: still the same
    expect((await diabetes.sample(x, 2, opts)).stats).toEqual(auto.stats);
    expect((await smallRuns.sample(x, 2, opts)).stats).toEqual(auto.stats);
    // the stop is the first check within tolerance, though one run may pass several checks
    // (autoRunEnd): capped at the check before it, no earlier check stops
    let before = AUTO_MIN_SAMPLES;
    while (nextAutoCheck(before, 1000) < T) before = nextAutoCheck(before, 1000);
    if (before < T) expect((await diabetes.sample(x, 2, { ...opts, samples: before })).stats.samples).toBe(before);
  });

  it('the served MC error at the stop is within the tolerance; a tighter one uses more samples', async () => {
    const at = async (tolerance: number): Promise<RegressionStats> =>
      (await diabetes.sample(x, 2, { samples: 5000, interval: 0.9, seed: 7, tolerance })).stats as RegressionStats;
    const loose = await at(0.1);
    const tight = await at(0.03);
    expect(tight.samples).toBeGreaterThan(loose.samples);
    for (const s of [loose, tight]) {
      const tol = s === loose ? 0.1 : 0.03;
      for (let i = 0; i < 2; i++) {
        // se(mean) = epistemic_std/(scale·√T) relative to std: the mean's part of the rule, from the answer
        const scale = diabetes.uncertainty.epistemicScale;
        expect(s.epistemicStd[i]! / scale / Math.sqrt(s.samples) / s.std[i]!).toBeLessThanOrEqual(tol);
      }
    }
  });

  it('max_samples caps it; a classifier stops on its probabilities; the same seed, the same answer', async () => {
    const capped = await diabetes.sample(x, 2, { samples: 40, interval: 0.9, seed: 1, tolerance: 1e-6 });
    expect(capped.stats.samples).toBe(40);
    const w = toMatrix([WINE_ROW], wine.features).data;
    const opts = { samples: 2000, interval: 0.9, seed: 5, tolerance: 0.01 };
    const a = await wine.sample(w, 1, opts);
    expect(a.stats.samples).toBeGreaterThanOrEqual(AUTO_MIN_SAMPLES);
    expect(a.stats.samples).toBeLessThanOrEqual(2000);
    expect((await wine.sample(w, 1, opts)).stats).toEqual(a.stats);
  });
});
