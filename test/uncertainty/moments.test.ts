import { describe, expect, it } from 'vitest';
import { logVarianceBounds, MAX_LOG_VARIANCE, MomentSums, totalStd } from '../../src/uncertainty/moments.js';
import { Rng } from '../../src/util/rng.js';

/** Two-pass mean and unbiased variance in float64. */
function twoPass(xs: number[]): { mean: number; variance: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1);
  return { mean, variance };
}

describe('MomentSums', () => {
  it('gives the two-pass mean and unbiased variance per value, also when |mean| ≫ std (shifted sums)', () => {
    const rng = new Rng(5);
    const T = 500;
    const centres = [0, -3, 1e7];
    const sums = new MomentSums(centres.length);
    const columns: number[][] = centres.map(() => []);
    for (let t = 0; t < T; t++) {
      const sample = Float64Array.from(centres, (c) => c + rng.normal() * 0.01);
      sample.forEach((v, i) => {
        columns[i]!.push(v);
      });
      sums.add(sample, 0);
    }
    expect(sums.count).toBe(T);
    columns.forEach((xs, i) => {
      const ref = twoPass(xs);
      expect(Math.abs(sums.mean(i) - ref.mean)).toBeLessThanOrEqual(1e-14 * Math.max(1, Math.abs(ref.mean)));
      // relative 1e-6 at a mean 1e9 std's away: unshifted Σx² − T·mean² would lose every digit
      expect(Math.abs(sums.variance(i) / ref.variance - 1)).toBeLessThan(1e-6);
    });
  });

  it('reads each sample at its offset, and one sample has variance 0', () => {
    const sums = new MomentSums(2);
    sums.add(Float64Array.from([9, 9, 4, 6, 9]), 2);
    expect([sums.mean(0), sums.mean(1), sums.variance(0), sums.variance(1)]).toEqual([4, 6, 0, 0]);
  });

  it('heteroscedastic: the MC mean of exp(log-variance), each clamped to the bounds; the log-variance is required', () => {
    const bounds = logVarianceBounds(2 * Math.log(3));
    expect(bounds.hi - bounds.lo).toBeCloseTo(2 * MAX_LOG_VARIANCE, 12);
    const sums = new MomentSums(1, bounds);
    expect(sums.heteroscedastic).toBe(true);
    const logVars = [0.5, bounds.hi + 7, bounds.lo - 7];
    for (const s of logVars) sums.add([1], 0, [s]);
    const expected = (Math.exp(0.5) + Math.exp(bounds.hi) + Math.exp(bounds.lo)) / 3;
    expect(sums.noiseVariance(0)).toBeCloseTo(expected, 6);
    expect(() => sums.add([1], 0)).toThrow('the log-variance output is missing');
    expect(new MomentSums(1).noiseVariance(0)).toBe(0);
  });
});

describe('totalStd', () => {
  it('adds variances, with a constant or per-row aleatoric std', () => {
    expect(Array.from(totalStd([3, 0, 5], 4))).toEqual([5, 4, Math.sqrt(41)]);
    expect(Array.from(totalStd([3, 6], [4, 8]))).toEqual([5, 10]);
  });
});

describe('values with their own counts (addValues: rows that stop apart)', () => {
  it('each value equals a MomentSums of its own samples; add() after addValues() is refused', () => {
    // 3 values per sample, 50 samples; value 1 takes only the first 20, values 0 and 2 all 50
    const out = Float32Array.from({ length: 150 }, (_, i) => Math.sin(i * 0.9) * 4 + (i % 3));
    const m = new MomentSums(3, null, true);
    m.addValues(out, 0, undefined, 20, 3, 0, 3);
    m.addValues(out, 60, undefined, 30, 3, 0, 1);
    m.addValues(out, 62, undefined, 30, 3, 2, 1);
    expect([m.countOf(0), m.countOf(1), m.countOf(2), m.count]).toEqual([50, 20, 50, 50]);
    for (const [i, T] of [
      [0, 50],
      [1, 20],
      [2, 50],
    ] as const) {
      const alone = new MomentSums(1, null, true);
      alone.add(out, i, undefined, T, 3);
      expect(m.mean(i)).toBe(alone.mean(0));
      expect(m.variance(i)).toBe(alone.variance(0));
      expect(m.kurtosis(i)).toBe(alone.kurtosis(0));
    }
    expect(() => m.add(out, 0)).toThrow('add() after addValues()');
  });
});
