import { describe, expect, it } from 'vitest';
import type { Dataset } from '../../src/train/data.js';
import type { RegressionMetrics } from '../../src/train/card-metrics.js';
import {
  coverageMatchedSigma,
  gridCellNll,
  targetGridStep,
  uniformGaussianCoverage,
} from '../../src/train/grid-calibration.js';
import { trainDefaults } from '../../src/train/options.js';
import { calibrateRegression, train } from '../../src/train/train.js';
import { gaussianMultiplier } from '../../src/uncertainty/intervals.js';
import { normalCdf } from '../../src/util/special-functions.js';
import { Rng } from '../../src/util/rng.js';

/**
 * A nearly noise-free target recorded on a coarse grid (issue 22): y = round((2a + 2b² + c + 0.001·ε) / g)·g
 * for features uniform on [0, 1]³ (`step` 0: not rounded).
 */
function gridded(n: number, seed: number, step: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float64Array(n * 3);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 3; j++) x[i * 3 + j] = rng.uniform(0, 1);
    const v = 2 * x[i * 3]! + 2 * x[i * 3 + 1]! ** 2 + x[i * 3 + 2]! + 0.001 * rng.normal();
    y[i] = step > 0 ? Math.round(v / step) * step : v;
  }
  return { task: 'regression', features: ['a', 'b', 'c'], target: 'y', x, y, labels: [], n, f: 3 };
}

describe('the grid of a target', () => {
  it('is the step every value is a whole number of steps from the smallest by, when the values repeat', () => {
    expect(targetGridStep([0.25, 0.5, 0.5, 1.25, 0.25, 1.25])).toBe(0.25);
    // decimal steps are not exact in binary: within 1e-6 of a step
    expect(targetGridStep([0.3, 0.1, 0.1, 0.3, 0.7, 0.7, 0.3, 0.1])).toBeCloseTo(0.2, 12);
    expect(targetGridStep([3, 5, 4, 4, 3, 8, 5, 6, 3, 4])).toBe(1);
    // continuous values (each once), one value, and values off any grid: no grid
    expect(targetGridStep(gridded(200, 1, 0).y)).toBe(0);
    expect(targetGridStep([2, 2, 2, 2])).toBe(0);
    expect(targetGridStep([0, 0, 1, 1, 2.5, 2.5, 2.5, 0])).toBe(0);
  });
});

describe('the likelihood and coverage of a rounded target', () => {
  it('covers ±h of uniform ± half plus N(0, v) as a seeded Monte Carlo count does', () => {
    const rng = new Rng(7);
    const draws = 200_000;
    for (const [h, half, v] of [
      [0.4, 0.5, 0.01],
      [0.6, 0.5, 0.04],
      [1.2, 0.25, 0.49],
    ] as const) {
      let inside = 0;
      for (let i = 0; i < draws; i++)
        if (Math.abs(rng.uniform(-half, half) + Math.sqrt(v) * rng.normal()) <= h) inside++;
      // 4 standard errors of the count
      expect(Math.abs(uniformGaussianCoverage(h, half, v) - inside / draws)).toBeLessThan(4 * Math.sqrt(0.25 / draws));
    }
    // no Gaussian part: the uniform's h / half; a wide Gaussian part: the Gaussian's coverage of N(0, v + half²/3)
    expect(uniformGaussianCoverage(0.3, 0.5, 0)).toBeCloseTo(0.6, 12);
    expect(uniformGaussianCoverage(2, 0.01, 1)).toBeCloseTo(2 * normalCdf(2 / Math.sqrt(1 + 0.01 ** 2 / 3)) - 1, 6);
  });

  it('scores a residual by the probability of its grid cell', () => {
    // σ → 0 inside the cell: density 1/g; a wide σ: the Gaussian density (the cell is a point on its scale)
    expect(gridCellNll([0.1, -0.2], [0, 0], 1e-9, 0.5)).toBeCloseTo(Math.log(0.5), 9);
    const wide = gridCellNll([0.3], [0], 10, 0.01);
    expect(wide).toBeCloseTo(0.5 * Math.log(2 * Math.PI * 100) + 0.3 ** 2 / 200, 5);
    // far outside the cell with a small σ: finite (no log of a cancelled difference)
    expect(Number.isFinite(gridCellNll([3], [0], 0.1, 0.5))).toBe(true);
  });

  it('serves the σ whose 90% interval covers 90% of a uniform rounding error: z·σ = 0.45·g', () => {
    const sigma = coverageMatchedSigma(new Float64Array(10), 0, 1, 1);
    expect(gaussianMultiplier(0.9) * sigma).toBeCloseTo(0.45, 9);
    // a Gaussian spread wide next to the step: the rounding's variance g²/12 on top (Sheppard's correction)
    expect(coverageMatchedSigma(new Float64Array(4).fill(1), 0, 0.1, 1)).toBeCloseTo(0.1 / Math.sqrt(12), 4);
    // the noise before rounding τ = 1 on a fine step: τ with the same correction, √(τ² + g²/12)
    expect(coverageMatchedSigma(new Float64Array(4), 1, 0.1, 1)).toBeCloseTo(Math.sqrt(1 + 0.01 / 12), 4);
  });
});

describe('calibration of a nearly noise-free target on a coarse grid (issue 22)', () => {
  const opts = { ...trainDefaults(true), seed: 0, epochs: 200 };

  it('serves a 90% Gaussian interval covering 0.87–0.93 of test rows (0.97 with the Gaussian fit alone)', () => {
    const model = train(gridded(1000, 1, 1), opts, gridded(2000, 101, 1));
    const m = model.metrics.test as RegressionMetrics;
    // before the fix: coverage_90 0.9685, coverage_95 1, test LL −0.165
    expect(m.coverage_90).toBeGreaterThanOrEqual(0.87);
    expect(m.coverage_90).toBeLessThanOrEqual(0.93);
    expect(m.conformal_coverage_90).toBeGreaterThanOrEqual(0.87);
    expect(m.conformal_coverage_90).toBeLessThanOrEqual(0.93);
    expect(-m.nll).toBeGreaterThan(-0.165);
    expect(model.targetGrid?.step).toBe(1);
    expect(model.targetGrid!.latentStd).toBeLessThan(model.aleatoricStd);
  });

  it('leaves a target off any grid, and a grid fine next to the noise, to the Gaussian fit', () => {
    const rng = new Rng(3);
    const n = 400;
    const mean = new Float64Array(n);
    const epistemicVar = Float64Array.from({ length: n }, () => 0.01 * rng.next());
    const noisy = Float64Array.from({ length: n }, () => 2 * rng.normal());
    const onFineGrid = noisy.map((v) => Math.round(v / 0.5) * 0.5);
    for (const y of [noisy, onFineGrid]) {
      const c = calibrateRegression({ mean, epistemicVar, aleatoricVar: null }, y, 2, 'test');
      expect(c.grid).toBeUndefined();
    }
    // the same rows on a grid coarser than their noise: calibrated on the grid
    const coarse = noisy.map((v) => Math.round(v / 8) * 8);
    expect(calibrateRegression({ mean, epistemicVar, aleatoricVar: null }, coarse, 2, 'test').grid?.step).toBe(8);
  });
});
