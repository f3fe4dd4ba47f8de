import { describe, expect, it } from 'vitest';
import {
  calibrationCurve,
  centralCoverage,
  conformalCalibrationCurve,
  CALIBRATION_CURVE_LEVELS,
  pitValues,
  reliabilityBins,
} from '../../src/uncertainty/calibration.js';
import { normalCdf } from '../../src/util/special-functions.js';
import { quantile } from '../../src/uncertainty/quantiles.js';
import { totalStd } from '../../src/uncertainty/moments.js';
import { classificationMetrics, regressionMetrics } from '../../src/train/card-metrics.js';
import { conformalScores } from '../../src/uncertainty/intervals.js';
import { Rng } from '../../src/util/rng.js';
import { erf, normalQuantile } from '../../src/util/special-functions.js';

/** y = mean + std·z_i with z_i the (i + ½)/n quantiles of N(0, 1): a perfectly calibrated sample. */
function quantileGrid(n: number, rng: Rng): { y: number[]; mean: number[]; std: number[] } {
  const y: number[] = [];
  const mean: number[] = [];
  const std: number[] = [];
  for (let i = 0; i < n; i++) {
    const m = rng.uniform(-50, 50);
    const s = rng.uniform(0.1, 20);
    mean.push(m);
    std.push(s);
    y.push(m + s * normalQuantile((i + 0.5) / n));
  }
  return { y, mean, std };
}

describe('normalCdf', () => {
  it('matches tabulated values of Φ', () => {
    expect(normalCdf(0)).toBeCloseTo(0.5, 15);
    expect(normalCdf(1)).toBeCloseTo(0.8413447460685429, 13);
    expect(normalCdf(-1)).toBeCloseTo(0.15865525393145707, 13);
    expect(normalCdf(1.959963984540054)).toBeCloseTo(0.975, 12);
    expect(normalCdf(-6)).toBeCloseTo(9.865876450376946e-10, 18);
    expect(normalCdf(Infinity)).toBe(1);
    expect(normalCdf(-Infinity)).toBe(0);
  });
  it('inverts normalQuantile', () => {
    for (const p of [1e-6, 0.01, 0.3, 0.5, 0.77, 0.999]) expect(normalCdf(normalQuantile(p))).toBeCloseTo(p, 9);
  });
});

describe('totalStd', () => {
  it('adds variances, with a constant or per-row aleatoric std', () => {
    expect(Array.from(totalStd([3, 0, 5], 4))).toEqual([5, 4, Math.sqrt(41)]);
    expect(Array.from(totalStd([3, 6], [4, 8]))).toEqual([5, 10]);
  });
});

describe('centralCoverage', () => {
  it('is the nominal level (to 1/n) on a perfectly calibrated quantile grid', () => {
    const n = 2000;
    const g = quantileGrid(n, new Rng(1));
    for (const level of CALIBRATION_CURVE_LEVELS)
      expect(Math.abs(centralCoverage(g.y, g.mean, g.std, level) - level)).toBeLessThanOrEqual(1 / n + 1e-12);
  });

  it('equals a brute count through erf: |r| ≤ z·σ ⇔ erf(|r| / (σ√2)) ≤ level', () => {
    const rng = new Rng(2);
    const n = 500;
    const y = Array.from({ length: n }, () => rng.normal() * 3);
    const mean = Array.from({ length: n }, () => rng.normal());
    const std = Array.from({ length: n }, () => rng.uniform(0.5, 4));
    for (const level of [0.05, 0.5, 0.8, 0.9, 0.99]) {
      let inside = 0;
      for (let i = 0; i < n; i++) if (erf(Math.abs(y[i]! - mean[i]!) / (std[i]! * Math.SQRT2)) <= level) inside++;
      expect(centralCoverage(y, mean, std, level)).toBe(inside / n);
    }
  });

  it('leaves rows with a non-finite value or a negative std out of the denominator', () => {
    // rows 0 and 1 are usable: row 0 inside any interval (r = 0), row 1 far outside
    const y = [1, 100, NaN, 5, 7];
    const mean = [1, 0, 0, Infinity, 7];
    const std = [1, 1, 1, 1, -1];
    expect(centralCoverage(y, mean, std, 0.9)).toBe(0.5);
    expect(centralCoverage([NaN], [0], [1], 0.9)).toBeNaN();
  });

  it('calibrationCurve evaluates every level, 5%…95% and 99% by default', () => {
    expect(CALIBRATION_CURVE_LEVELS).toHaveLength(20);
    expect(CALIBRATION_CURVE_LEVELS[0]).toBe(0.05);
    expect(CALIBRATION_CURVE_LEVELS[18]).toBeCloseTo(0.95, 15);
    expect(CALIBRATION_CURVE_LEVELS[19]).toBe(0.99);
    const g = quantileGrid(400, new Rng(3));
    const curve = calibrationCurve(g.y, g.mean, g.std);
    expect(curve.map((c) => c.level)).toEqual([...CALIBRATION_CURVE_LEVELS]);
    for (const c of curve) expect(c.observed).toBe(centralCoverage(g.y, g.mean, g.std, c.level));
    // too narrow intervals (σ halved) cover less at every level
    const narrow = calibrationCurve(
      g.y,
      g.mean,
      g.std.map((s) => s / 2),
    );
    narrow.forEach((c, i) => {
      expect(c.observed).toBeLessThan(curve[i]!.observed + 1e-12);
    });
    expect(narrow[17]!.observed).toBeLessThan(0.7);
  });
});

describe('conformalCalibrationCurve', () => {
  it('counts rows with |y − mean| ≤ q·σ, q the ⌈(n + 1)·level⌉-th smallest score', () => {
    // 9 scores 1…9: at 50% q = the 5th = 5, at 90% the 9th = 9, at 95% rank 10 > 9 → ∞
    const scores = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    // residual ratios |y − mean|/σ of the rows: 0.5, 4.5, 5, 5.5, 9, 20 (σ = 2)
    const ratio = [0.5, 4.5, 5, 5.5, 9, 20];
    const y = ratio.map((r, i) => 10 + (i % 2 ? -1 : 1) * 2 * r);
    const mean = ratio.map(() => 10);
    const std = ratio.map(() => 2);
    const c = conformalCalibrationCurve(y, mean, std, scores, [0.5, 0.9, 0.95]);
    expect(c.map((p) => p.level)).toEqual([0.5, 0.9, 0.95]);
    expect(c.map((p) => p.observed)).toEqual([3 / 6, 5 / 6, 1]);
  });

  it("on the calibration rows themselves covers at least the level (exchangeability), and agrees with the trainer's metrics", () => {
    const rng = new Rng(4);
    const n = 300;
    const mean = Array.from({ length: n }, () => rng.normal() * 10);
    const std = Array.from({ length: n }, () => rng.uniform(0.5, 3));
    // heavy tails: Student-t-like residuals, so the Gaussian curve under-covers at high levels
    const y = mean.map((m, i) => m + (std[i]! * rng.normal()) / Math.sqrt(rng.uniform(0.05, 1)));
    const scores = conformalScores(y, mean, std);
    const curve = conformalCalibrationCurve(y, mean, std, scores);
    for (const p of curve) expect(p.observed).toBeGreaterThanOrEqual(p.level - 1e-12);
    const m = regressionMetrics(y, mean, mean, std, 0, scores);
    const at = (l: number): number => curve.find((p) => Math.abs(p.level - l) < 1e-9)!.observed;
    expect([at(0.5), at(0.8), at(0.9), at(0.95)]).toEqual([
      m.conformal_coverage_50,
      m.conformal_coverage_80,
      m.conformal_coverage_90,
      m.conformal_coverage_95,
    ]);
  });

  it('leaves unusable rows out and is NaN without any', () => {
    expect(conformalCalibrationCurve([0, NaN, 1], [0, 0, Infinity], [1, 1, 1], [1, 2, 3], [0.5])[0]!.observed).toBe(1);
    expect(conformalCalibrationCurve([NaN], [0], [1], [1, 2, 3], [0.5])[0]!.observed).toBeNaN();
  });
});

describe('pitValues', () => {
  it('gives the grid probabilities back on a quantile grid', () => {
    const n = 300;
    const g = quantileGrid(n, new Rng(4));
    const pit = pitValues(g.y, g.mean, g.std);
    pit.forEach((v, i) => {
      expect(v).toBeCloseTo((i + 0.5) / n, 9);
    });
  });
  it('handles zero std by the sign of the residual and skips unusable rows', () => {
    const pit = Array.from(pitValues([1, -1, 0, NaN, 2], [0, 0, 0, 0, 2], [0, 0, 0, 1, 1]));
    expect(pit.slice(0, 3)).toEqual([1, 0, 0.5]);
    expect(pit).toHaveLength(4);
    expect(pit[3]).toBeCloseTo(0.5, 15);
  });
});

describe('reliabilityBins', () => {
  it('bins a hand-made example and computes ECE', () => {
    // 3 classes; confidences 0.9 (right), 0.9 (wrong), 0.5 (right), 0.4 (wrong: class 1 is argmax)
    const probs = [0.9, 0.05, 0.05, 0.05, 0.9, 0.05, 0.5, 0.3, 0.2, 0.3, 0.4, 0.3];
    const labels = [0, 0, 0, 2];
    const r = reliabilityBins(probs, labels, 3, 10);
    expect(r.rows).toBe(4);
    const b9 = r.bins[9]!;
    expect([b9.lo, b9.hi, b9.count, b9.confidence, b9.accuracy]).toEqual([0.9, 1, 2, 0.9, 0.5]);
    expect(r.bins[5]).toMatchObject({ count: 1, accuracy: 1 });
    expect(r.bins[5]!.confidence).toBeCloseTo(0.5, 15);
    expect(r.bins[4]).toMatchObject({ count: 1, accuracy: 0 });
    expect(r.bins[0]!.count).toBe(0);
    expect(r.bins[0]!.accuracy).toBeNaN();
    // ECE = ½·|0.5 − 0.9| + ¼·|1 − 0.5| + ¼·|0 − 0.4|
    expect(r.ece).toBeCloseTo(0.5 * 0.4 + 0.25 * 0.5 + 0.25 * 0.4, 12);
  });

  it('ECE is Σ_b (n_b / n)·|accuracy_b − confidence_b| of its own bins (15) on random probabilities; the card uses it', () => {
    const rng = new Rng(6);
    const n = 400;
    const k = 4;
    const probs = new Float64Array(n * k);
    const labels = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += probs[i * k + j] = Math.exp(2 * rng.normal());
      for (let j = 0; j < k; j++) probs[i * k + j]! /= s;
      labels[i] = rng.int(k);
    }
    const ours = reliabilityBins(probs, labels, k);
    expect(ours.bins).toHaveLength(15);
    const weighted = ours.bins
      .filter((b) => b.count > 0)
      .reduce((e, b) => e + (b.count / n) * Math.abs(b.accuracy - b.confidence), 0);
    expect(ours.ece).toBeCloseTo(weighted, 12);
    expect(ours.ece).toBeGreaterThan(0.05); // random labels against confident probabilities: far from calibrated
    expect(ours.bins.reduce((a, b) => a + b.count, 0)).toBe(n);
    // brute count of one bin: rows whose top probability falls in [lo, hi)
    const bin = ours.bins.find((b) => b.count > 5)!;
    let rows = 0;
    let hits = 0;
    for (let i = 0; i < n; i++) {
      const row = Array.from(probs.subarray(i * k, i * k + k));
      const top = Math.max(...row);
      if (top >= bin.lo && top < bin.hi) {
        rows++;
        if (row.indexOf(top) === labels[i]) hits++;
      }
    }
    expect([rows, hits / rows]).toEqual([bin.count, bin.accuracy]);
    expect(classificationMetrics(labels, probs, probs, k).ece).toBe(ours.ece);
  });

  it('skips rows with a bad label or a non-finite probability', () => {
    const r = reliabilityBins([1, 0, NaN, 0.5, 0.2, 0.8, 0.3, 0.7], [0, 0, 1, 5], 2, 15);
    expect(r.rows).toBe(2);
    expect(reliabilityBins([], [], 2).ece).toBeNaN();
  });
});

describe('quantile', () => {
  it('interpolates like numpy (type 7) and ignores non-finite values', () => {
    expect(quantile([4, 1, 3, 2], 0.25)).toBe(1.75);
    expect(quantile([4, 1, 3, 2, NaN], 0.5)).toBe(2.5);
    expect(quantile([7], 0.9)).toBe(7);
    expect(quantile([], 0.5)).toBeNaN();
  });
});
