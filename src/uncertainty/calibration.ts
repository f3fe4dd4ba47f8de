/**
 * Calibration of predictive distributions against observed targets (float64, pure): coverage of central
 * intervals (gaussian and split-conformal), the probability integral transform, and the reliability
 * diagram with the expected calibration error of a classifier. Rows whose inputs are not finite are
 * skipped (and left out of the denominators), so one bad row cannot turn a curve into NaN.
 */
import { normalCdf } from '../util/special-functions.js';
import { conformalQuantile, gaussianMultiplier } from './intervals.js';
import { argmaxAt } from './probabilities.js';

/** Nominal levels of the report's calibration curve: 5%, 10%, …, 95% and 99%. */
export const CALIBRATION_CURVE_LEVELS: readonly number[] = Object.freeze([
  ...Array.from({ length: 19 }, (_, i) => (i + 1) / 20),
  0.99,
]);

function usable(y: number, mean: number, std: number): boolean {
  return Number.isFinite(y) && Number.isFinite(mean) && Number.isFinite(std) && std >= 0;
}

/**
 * Observed coverage of the central Gaussian interval at `level` (0 < level < 1): the fraction of rows
 * with |y − mean| ≤ z·std, z = Φ⁻¹((1 + level)/2) — the interval the server reports. NaN when no row is
 * usable (finite y, mean, std ≥ 0).
 */
export function centralCoverage(
  y: ArrayLike<number>,
  mean: ArrayLike<number>,
  std: ArrayLike<number>,
  level: number,
): number {
  const z = gaussianMultiplier(level);
  let inside = 0;
  let rows = 0;
  for (let i = 0; i < y.length; i++) {
    if (!usable(y[i]!, mean[i]!, std[i]!)) continue;
    rows++;
    if (Math.abs(y[i]! - mean[i]!) <= z * std[i]!) inside++;
  }
  return rows > 0 ? inside / rows : NaN;
}

export interface CoveragePoint {
  /** Nominal coverage of the central interval. */
  level: number;
  /** Fraction of rows inside it. */
  observed: number;
}

/** Observed against nominal coverage at each level (default {@link CALIBRATION_CURVE_LEVELS}). */
export function calibrationCurve(
  y: ArrayLike<number>,
  mean: ArrayLike<number>,
  std: ArrayLike<number>,
  levels: readonly number[] = CALIBRATION_CURVE_LEVELS,
): CoveragePoint[] {
  return levels.map((level) => ({ level, observed: centralCoverage(y, mean, std, level) }));
}

/**
 * Observed coverage of the split-conformal intervals mean ± q·std at each level, q the conformal quantile
 * of the calibration scores (intervals.ts conformalQuantile, +∞ when the scores are too few for the
 * level: then every row with std > 0 is inside), the comparison the trainer's metrics make. NaN per level when no row is usable.
 */
export function conformalCalibrationCurve(
  y: ArrayLike<number>,
  mean: ArrayLike<number>,
  std: ArrayLike<number>,
  sortedScores: ArrayLike<number>,
  levels: readonly number[] = CALIBRATION_CURVE_LEVELS,
): CoveragePoint[] {
  return levels.map((level) => {
    const q = conformalQuantile(sortedScores, level);
    let inside = 0;
    let rows = 0;
    for (let i = 0; i < y.length; i++) {
      if (!usable(y[i]!, mean[i]!, std[i]!)) continue;
      rows++;
      if (Math.abs(y[i]! - mean[i]!) <= q * std[i]!) inside++;
    }
    return { level, observed: rows > 0 ? inside / rows : NaN };
  });
}

/**
 * Probability integral transform Φ((y − mean)/std) per usable row (a calibrated Gaussian forecast makes
 * these uniform on [0, 1]). A zero std gives 0, ½ or 1 by the sign of y − mean.
 */
export function pitValues(y: ArrayLike<number>, mean: ArrayLike<number>, std: ArrayLike<number>): Float64Array {
  const out: number[] = [];
  for (let i = 0; i < y.length; i++) {
    if (!usable(y[i]!, mean[i]!, std[i]!)) continue;
    const r = y[i]! - mean[i]!;
    out.push(std[i]! > 0 ? normalCdf(r / std[i]!) : r > 0 ? 1 : r < 0 ? 0 : 0.5);
  }
  return Float64Array.from(out);
}

export interface ReliabilityBin {
  /** Confidence range [lo, hi) of the bin (the last bin includes 1). */
  lo: number;
  hi: number;
  /** Rows whose top-class probability falls in the bin. */
  count: number;
  /** Mean top-class probability of those rows (NaN when empty). */
  confidence: number;
  /** Fraction of those rows whose top class is the true class (NaN when empty). */
  accuracy: number;
}

/**
 * Reliability diagram of row-major probabilities (rows × classes): equal-width confidence bins (15 by
 * default, as in Guo et al. 2017 and the card's `ece`), with the expected calibration error
 * ECE = Σ_b (n_b / n)·|accuracy_b − confidence_b|. Rows with a non-finite probability or a label outside
 * 0…classes−1 are skipped.
 */
export function reliabilityBins(
  probs: ArrayLike<number>,
  labels: ArrayLike<number>,
  classes: number,
  bins = 15,
): { bins: ReliabilityBin[]; ece: number; rows: number } {
  const count = new Float64Array(bins);
  const conf = new Float64Array(bins);
  const hits = new Float64Array(bins);
  let rows = 0;
  for (let i = 0; i < labels.length; i++) {
    const o = i * classes;
    if (!rowUsable(probs, o, classes, labels[i]!)) continue;
    const pred = argmaxAt(probs, o, classes);
    const c = probs[o + pred]!;
    const b = Math.min(bins - 1, Math.max(0, Math.floor(c * bins)));
    count[b]!++;
    conf[b]! += c;
    if (pred === labels[i]) hits[b]!++;
    rows++;
  }
  let ece = 0;
  const out: ReliabilityBin[] = [];
  for (let b = 0; b < bins; b++) {
    const n = count[b]!;
    const bin = {
      lo: b / bins,
      hi: (b + 1) / bins,
      count: n,
      confidence: n > 0 ? conf[b]! / n : NaN,
      accuracy: n > 0 ? hits[b]! / n : NaN,
    };
    // Σ_b (n_b / n)·|acc_b − conf_b| written with the bins' sums, as the card's `ece` has always been computed
    if (n > 0) ece += Math.abs(hits[b]! - conf[b]!) / rows;
    out.push(bin);
  }
  return { bins: out, ece: rows > 0 ? ece : NaN, rows };
}

/** Whether row `offset` of probs is finite and its label one of 0 … classes − 1. */
export function rowUsable(probs: ArrayLike<number>, offset: number, classes: number, label: number): boolean {
  if (!(Number.isInteger(label) && label >= 0 && label < classes)) return false;
  for (let j = 0; j < classes; j++) if (!Number.isFinite(probs[offset + j]!)) return false;
  return true;
}
