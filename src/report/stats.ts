/**
 * Statistics behind the model report's plots (pure, float64). Rows whose inputs are not finite are
 * skipped (and left out of the denominators), so one bad row cannot turn a curve into NaN.
 */
import { conformalQuantile, erfc, normalQuantile } from '../util/stats.js';

/** Standard normal CDF Φ(z) = ½·erfc(−z/√2); Φ(±∞) = 1 or 0. */
export function normalCdf(z: number): number {
  if (z === Infinity) return 1;
  if (z === -Infinity) return 0;
  return 0.5 * erfc(-z / Math.SQRT2);
}

/**
 * Total predictive std per row, √(epistemic² + aleatoric²) (variances add: Gal & Ghahramani 2016, eq. 8).
 * `aleatoric` is one number (homoscedastic) or one per row (heteroscedastic).
 */
export function totalStd(epistemic: ArrayLike<number>, aleatoric: number | ArrayLike<number>): Float64Array {
  const out = new Float64Array(epistemic.length);
  for (let i = 0; i < out.length; i++) {
    const a = typeof aleatoric === 'number' ? aleatoric : aleatoric[i]!;
    out[i] = Math.sqrt(epistemic[i]! * epistemic[i]! + a * a);
  }
  return out;
}

/** Nominal levels of the calibration curve: 5%, 10%, …, 95% and 99%. */
export const COVERAGE_LEVELS: readonly number[] = Object.freeze([
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
  const z = normalQuantile((1 + level) / 2);
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

/** Observed against nominal coverage at each level (default {@link COVERAGE_LEVELS}). */
export function calibrationCurve(
  y: ArrayLike<number>,
  mean: ArrayLike<number>,
  std: ArrayLike<number>,
  levels: readonly number[] = COVERAGE_LEVELS,
): CoveragePoint[] {
  return levels.map((level) => ({ level, observed: centralCoverage(y, mean, std, level) }));
}

/**
 * Observed coverage of the split-conformal intervals mean ± q·std at each level, q the conformal quantile
 * of the calibration scores (src/util/stats.ts conformalQuantile, +∞ when the scores are too few for the
 * level: then every row with std > 0 is inside), the comparison the trainer's metrics make. NaN per level when no row is usable.
 */
export function conformalCalibrationCurve(
  y: ArrayLike<number>,
  mean: ArrayLike<number>,
  std: ArrayLike<number>,
  sortedScores: ArrayLike<number>,
  levels: readonly number[] = COVERAGE_LEVELS,
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

export interface Histogram {
  /** bins + 1 increasing edges; bin b is [edges[b], edges[b+1]) and the last bin also holds its upper edge. */
  edges: number[];
  counts: number[];
}

/**
 * Equal-width histogram of the finite values on [min, max]; values outside are counted in the first or
 * last bin (so no row disappears). Without min/max the range is the values' own (widened when flat).
 */
export function histogram(values: ArrayLike<number>, bins: number, min?: number, max?: number): Histogram {
  if (!(Number.isInteger(bins) && bins >= 1))
    throw new RangeError(`histogram needs a positive integer bin count, got ${bins}`);
  let lo = min ?? Infinity;
  let hi = max ?? -Infinity;
  if (min === undefined || max === undefined) {
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isFinite(v)) continue;
      if (min === undefined) lo = Math.min(lo, v);
      if (max === undefined) hi = Math.max(hi, v);
    }
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
  if (hi <= lo) [lo, hi] = [lo - 0.5 * (Math.abs(lo) || 1), lo + 0.5 * (Math.abs(lo) || 1)];
  const width = (hi - lo) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, b) => (b === bins ? hi : lo + b * width));
  const counts = new Array<number>(bins).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    const b = Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)));
    counts[b]!++;
  }
  return { edges, counts };
}

/** Index of the largest of k entries starting at offset (the first one on ties, like metrics.argmax). */
export function argmaxAt(p: ArrayLike<number>, offset: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if (p[offset + j]! > p[offset + best]!) best = j;
  return best;
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
    if (n > 0) ece += (n / rows) * Math.abs(bin.accuracy - bin.confidence);
    out.push(bin);
  }
  return { bins: out, ece: rows > 0 ? ece : NaN, rows };
}

function rowUsable(probs: ArrayLike<number>, offset: number, classes: number, label: number): boolean {
  if (!(Number.isInteger(label) && label >= 0 && label < classes)) return false;
  for (let j = 0; j < classes; j++) if (!Number.isFinite(probs[offset + j]!)) return false;
  return true;
}

/** Confusion counts: matrix[true][predicted] over the usable rows (argmax of each row's probabilities). */
export function confusionMatrix(probs: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number[][] {
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const o = i * classes;
    if (!rowUsable(probs, o, classes, labels[i]!)) continue;
    m[labels[i]!]![argmaxAt(probs, o, classes)]!++;
  }
  return m;
}

/** Per usable row: the top-class probability and whether the top class is the true class. */
export function topClass(
  probs: ArrayLike<number>,
  labels: ArrayLike<number>,
  classes: number,
): { index: number[]; confidence: number[]; correct: boolean[] } {
  const index: number[] = [];
  const confidence: number[] = [];
  const correct: boolean[] = [];
  for (let i = 0; i < labels.length; i++) {
    const o = i * classes;
    if (!rowUsable(probs, o, classes, labels[i]!)) continue;
    const pred = argmaxAt(probs, o, classes);
    index.push(i);
    confidence.push(probs[o + pred]!);
    correct.push(pred === labels[i]);
  }
  return { index, confidence, correct };
}

/** Linear-interpolated quantile (type 7, like numpy's default) of the finite values; NaN when none. */
export function quantile(values: ArrayLike<number>, q: number): number {
  const xs = Array.from(values)
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  if (xs.length === 0) return NaN;
  const h = (xs.length - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(h);
  const hi = Math.min(xs.length - 1, lo + 1);
  return xs[lo]! + (h - lo) * (xs[hi]! - xs[lo]!);
}
