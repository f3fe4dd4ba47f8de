/**
 * Calibration of a target recorded on a coarse grid (issue 22: a nearly noise-free target rounded to a
 * grid had its served 90% Gaussian interval cover 0.98 of the test rows).
 *
 * Why: the residual of a good model is then mostly the rounding error, uniform on ±g/2 (variance g²/12,
 * Sheppard's correction), not Gaussian. The maximum-likelihood Gaussian matches its variance, σ ≈ g/√12,
 * and its 90% interval ±1.645σ = ±0.475g covers 95% of a uniform residual; the rounding error is
 * bounded, so any extra width (the calibration rows' out-of-fold error, the epistemic spread) pushes the
 * coverage on to 0.97–1.
 *
 * The fix: the residual of a target on a grid of step g is u + e, u uniform on ±g/2 and e ~ N(0, v_i),
 * v_i = s²·MC variance [+ predicted variance] + τ² (τ the noise before rounding). (s, τ) are fitted by
 * the likelihood of that model, p(r) = [Φ((r + g/2)/√v) − Φ((r − g/2)/√v)] / g (the probability of the
 * grid cell, i.e. interval censoring), and the served σ is the one whose 90% Gaussian interval covers 90%
 * of the calibration rows under the fitted model (the server's intervals stay mean ± z·std). It applies
 * only when the grid is coarse: the rounding's variance g²/12 is at least half the Gaussian fit's mean
 * predictive variance (s²·MC variance [+ predicted variance] + σ²); below that the sum u + e is Gaussian enough that the 90% coverage moves by less than 0.002 (scripts/uci-lab-grid.mts), and models
 * of finer or no grid (every shipped model) are calibrated exactly as before.
 */
import { normalPdf } from '../util/special-functions.js';
import { erfc } from '../util/special-functions.js';
import { calibrateScaleAndNoise } from './calibrate.js';
import { gaussianMultiplier } from '../uncertainty/intervals.js';

/** The level whose Gaussian interval the served σ is fitted to cover. */
export const GRID_COVERAGE_LEVEL = 0.9;

/** A target value is on the grid when it is within this fraction of a step of a grid point. */
const ON_GRID_TOLERANCE = 1e-6;

/**
 * The step g of the grid the targets `y` are recorded on: the smallest gap between distinct values, when
 * every value is a whole number of steps from the smallest (within 1e-6 of a step) and the values repeat
 * (at most half as many distinct values as rows, as a recorded grid makes them); 0 otherwise.
 */
export function targetGridStep(y: ArrayLike<number>): number {
  const distinct = [...new Set(Array.from(y))].sort((a, b) => a - b);
  if (distinct.length < 2 || distinct.length > y.length / 2 || !distinct.every(Number.isFinite)) return 0;
  let step = Infinity;
  for (let i = 1; i < distinct.length; i++) step = Math.min(step, distinct[i]! - distinct[i - 1]!);
  for (const v of distinct) {
    const k = (v - distinct[0]!) / step;
    if (Math.abs(k - Math.round(k)) > ON_GRID_TOLERANCE) return 0;
  }
  return step;
}

/** Φ(b) − Φ(a) for a ≤ b, without cancellation in either tail. */
function normalInterval(a: number, b: number): number {
  if (a > 0) return 0.5 * (erfc(a / Math.SQRT2) - erfc(b / Math.SQRT2));
  if (b < 0) return 0.5 * (erfc(-b / Math.SQRT2) - erfc(-a / Math.SQRT2));
  return 1 - 0.5 * erfc(b / Math.SQRT2) - 0.5 * erfc(-a / Math.SQRT2);
}

/**
 * Mean NLL of residuals r_i of a target on a grid of step g under u + N(0, k_i + σ²), u uniform on ±g/2:
 * −log([Φ((r + g/2)/√v) − Φ((r − g/2)/√v)] / g), v = k_i + σ² (floored at 1e-300).
 */
export function gridCellNll(
  residuals: ArrayLike<number>,
  knownVar: ArrayLike<number>,
  sigma: number,
  step: number,
): number {
  const n = residuals.length;
  const half = step / 2;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const sd = Math.sqrt(Math.max(knownVar[i]! + sigma * sigma, 1e-300));
    const p = normalInterval((residuals[i]! - half) / sd, (residuals[i]! + half) / sd);
    total -= Math.log(Math.max(p, 1e-300) / step);
  }
  return total / n;
}

/** P(|u + e| ≤ h) for u uniform on ±half and e ~ N(0, v): the coverage of ±h (closed form). */
export function uniformGaussianCoverage(h: number, half: number, v: number): number {
  if (!(v > 0)) return Math.min(1, h / half);
  const sd = Math.sqrt(v);
  // ∫Φ(t/sd)dt = t·Φ(t/sd) + sd·φ(t/sd); the CDF of u + e is its difference over t ∈ [x − half, x + half] / 2·half
  const integral = (t: number): number => t * (1 - 0.5 * erfc(t / sd / Math.SQRT2)) + sd * normalPdf(t / sd);
  const cdf = (x: number): number => (integral(x + half) - integral(x - half)) / (2 * half);
  return Math.min(1, Math.max(0, cdf(h) - cdf(-h)));
}

/**
 * The served σ: the smallest σ ≥ 0 whose `level` Gaussian intervals mean ± z·√(k_i + σ²) cover, on
 * average over the rows, `level` of u + N(0, k_i + τ²) (bisection; coverage grows with σ).
 */
export function coverageMatchedSigma(
  knownVar: ArrayLike<number>,
  tau: number,
  step: number,
  scale: number,
  level = GRID_COVERAGE_LEVEL,
): number {
  const z = gaussianMultiplier(level);
  const n = knownVar.length;
  const coverage = (sigma: number): number => {
    let c = 0;
    for (let i = 0; i < n; i++) {
      const h = z * Math.sqrt(knownVar[i]! + sigma * sigma);
      c += uniformGaussianCoverage(h, step / 2, knownVar[i]! + tau * tau);
    }
    return c / n;
  };
  if (coverage(0) >= level) return 0;
  let lo = 0;
  let hi = Math.max(step, 10 * scale);
  for (let it = 0; it < 60; it++) {
    const mid = (lo + hi) / 2;
    if (coverage(mid) < level) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** What calibrating on the grid gave: the served (s, σ), the noise before rounding τ, the step. */
export interface GridCalibration {
  epistemicScale: number;
  sigma: number;
  latentStd: number;
  step: number;
}

/** Mean over rows of s²·e_i + k_i + σ²: the mean predictive variance of a calibration. */
function meanVariance(
  epistemicVar: ArrayLike<number>,
  otherVar: ArrayLike<number> | null,
  fit: { epistemicScale: number; sigma: number },
): number {
  const a = fit.epistemicScale * fit.epistemicScale;
  let total = 0;
  for (let i = 0; i < epistemicVar.length; i++) total += a * epistemicVar[i]! + (otherVar ? otherVar[i]! : 0);
  return total / epistemicVar.length + fit.sigma * fit.sigma;
}

/**
 * Calibration of a target on a coarse grid (see the file comment), or null when `y` is not on a grid or
 * the grid is fine next to the Gaussian fit (`gaussian`): then that fit stands.
 */
export function calibrateOnGrid(
  residuals: ArrayLike<number>,
  y: ArrayLike<number>,
  epistemicVar: ArrayLike<number>,
  otherVar: ArrayLike<number> | null,
  scale: number,
  gaussian: { epistemicScale: number; sigma: number },
): GridCalibration | null {
  const step = targetGridStep(y);
  if (step === 0 || (step * step) / 12 < meanVariance(epistemicVar, otherVar, gaussian) / 2) return null;
  const nll = (r: ArrayLike<number>, k: ArrayLike<number>, sigma: number): number => gridCellNll(r, k, sigma, step);
  const { epistemicScale, sigma: latentStd } = calibrateScaleAndNoise(residuals, epistemicVar, otherVar, scale, nll);
  const a = epistemicScale * epistemicScale;
  const known = Float64Array.from(
    { length: residuals.length },
    (_, i) => a * epistemicVar[i]! + (otherVar ? otherVar[i]! : 0),
  );
  return { epistemicScale, sigma: coverageMatchedSigma(known, latentStd, step, scale), latentStd, step };
}
