/**
 * samples "auto" on the shipped models (issue 22): OnnxModel.sample with a tolerance stops each row at
 * a check, says how many samples each used, and the same seed gives the same answer: with one live
 * dropout (diabetes) row i's is exactly the one-row fixed-T answer of its samples with seed rowSeed(seed, i).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RUNTIME_OPTIONS } from '../../../src/model/model.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import { toMatrix } from '../../../src/model/rows.js';
import { rowSeed } from '../../../src/model/onnx/masks.js';
import type { RegressionStats } from '../../../src/uncertainty/record.js';
import { joinRows } from '../../helpers/records.js';
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

/** Row i of x alone: a one-row request. */
const rowOf = (m: Float32Array, i: number): Float32Array => m.slice(i * 10, (i + 1) * 10);

describe('samples "auto" on a model', () => {
  it('each row stops on its own and is exactly the one-row request of its row seed', async () => {
    // row 1's bmi doubled: a larger epistemic share of its std, so it needs more samples than row 0
    const xs = toMatrix([DIABETES_ROW, DIABETES_ROW.map((v, j) => (j === 2 ? v * 2 : v))], [...'abcdefghij']).data;
    const opts = { samples: 1000, interval: 0.9, seed: 42, tolerance: 0.05 };
    const auto = await diabetes.sample(xs, 2, opts);
    const used = auto.stats.rowSamples!;
    expect(used[0]).toBe(AUTO_MIN_SAMPLES);
    expect(used[1]).toBeGreaterThan(used[0]! * 4);
    expect(auto.stats.samples).toBe(used[1]);
    const parts = [];
    for (let i = 0; i < 2; i++) {
      const seed = rowSeed(42, i);
      // the row alone with its seed stops at the same check ...
      const alone = await diabetes.sample(rowOf(xs, i), 1, { ...opts, seed });
      expect(alone.stats.samples).toBe(used[i]);
      // ... and the fixed-T answer of that many samples is the row's answer
      parts.push((await diabetes.sample(rowOf(xs, i), 1, { samples: used[i]!, interval: 0.9, seed })).stats);
      // a check earlier is another answer: the equality below is not vacuous
      const fewer = await diabetes.sample(rowOf(xs, i), 1, { samples: used[i]! - 1, interval: 0.9, seed });
      expect((fewer.stats as RegressionStats).mean[0]).not.toBe((auto.stats as RegressionStats).mean[i]);
    }
    expect(auto.stats).toEqual(joinRows(parts));
    // the same seed again, and runs split by a small run limit: the same answer
    expect((await diabetes.sample(xs, 2, opts)).stats).toEqual(auto.stats);
    expect((await smallRuns.sample(xs, 2, opts)).stats).toEqual(auto.stats);
    // a row's answer does not depend on its neighbours: row 1 after three other rows
    const four = toMatrix([DIABETES_ROW, DIABETES_ROW, DIABETES_ROW, Array.from(rowOf(xs, 1))], [...'abcdefghij']);
    const moved = (await diabetes.sample(four.data, 4, opts)).stats as RegressionStats;
    const again = (await diabetes.sample(rowOf(xs, 1), 1, { ...opts, seed: rowSeed(42, 3) })).stats as RegressionStats;
    expect(moved.rowSamples![3]).toBe(again.samples);
    expect(moved.mean[3]).toBe(again.mean[0]);
    expect(moved.mean[3]).not.toBe((auto.stats as RegressionStats).mean[1]); // row 3's seed: another stream
  });

  it('with the raw samples every row stops at the slowest, still each with its own masks', async () => {
    const opts = { samples: 1000, interval: 0.9, seed: 42, tolerance: 0.05, returnSamples: true };
    const auto = await diabetes.sample(x, 2, opts);
    const T = auto.stats.samples;
    expect(T).toBeGreaterThanOrEqual(AUTO_MIN_SAMPLES);
    expect(T).toBeLessThan(1000);
    expect(auto.stats.rowSamples).toBeUndefined();
    expect((auto.stats as RegressionStats).raw!.length).toBe(T * 2);
    const parts = [0, 1].map(
      async (i) =>
        (
          await diabetes.sample(rowOf(x, i), 1, {
            samples: T,
            interval: 0.9,
            seed: rowSeed(42, i),
            returnSamples: true,
          })
        ).stats,
    );
    expect(auto.stats).toEqual(joinRows(await Promise.all(parts)));
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
    // several rows of a model with several dropouts: each its own count, the same seed the same answer
    const w3 = toMatrix([WINE_ROW, WINE_ROW.map((v) => v * 1.2), WINE_ROW.map((v) => v * 0.8)], wine.features).data;
    const b = await wine.sample(w3, 3, { ...opts, tolerance: 0.02 });
    expect(b.stats.rowSamples).toBeDefined();
    for (const t of b.stats.rowSamples!) expect(t).toBeGreaterThanOrEqual(AUTO_MIN_SAMPLES);
    expect(b.stats.samples).toBe(Math.max(...b.stats.rowSamples!));
    expect((await wine.sample(w3, 3, { ...opts, tolerance: 0.02 })).stats).toEqual(b.stats);
  });
});
