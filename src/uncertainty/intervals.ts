/**
 * Interval levels and their multipliers: the gaussian z-score and the split-conformal quantile of
 * normalised scores. An interval is mean ± m·std with m from one of these.
 */
import { normalQuantile } from '../util/special-functions.js';

export const INTERVAL_METHODS = ['gaussian', 'conformal'] as const;
/** How an interval is made: mean ± z·std (gaussian) or mean ± q·std (conformal). */
export type IntervalMethod = (typeof INTERVAL_METHODS)[number];

/** A resolved interval: mean ± multiplier·std is the central interval at `level`. */
export interface IntervalSpec {
  level: number;
  method: IntervalMethod;
  /** Gaussian: z = Φ⁻¹((1 + level)/2). Conformal: the finite-sample quantile of the scores. */
  multiplier: number;
}

/** Whether `level` is an interval level: a number strictly between 0 and 1 (NaN is not). */
export function isIntervalLevel(level: unknown): level is number {
  return typeof level === 'number' && level > 0 && level < 1;
}

/** The message of a level outside (0, 1), for the errors each caller throws. */
export function intervalLevelMessage(field: string, level: unknown): string {
  return `${field}: expected a number strictly between 0 and 1, got ${String(level)}`;
}

/** z = Φ⁻¹((1 + level)/2): mean ± z·std is the central `level` interval of N(mean, std²). */
export function gaussianMultiplier(level: number): number {
  return normalQuantile((1 + level) / 2);
}

/** The gaussian interval at `level`. */
export function gaussianInterval(level: number): IntervalSpec {
  return { level, method: 'gaussian', multiplier: gaussianMultiplier(level) };
}

/**
 * Split-conformal quantile of nonconformity scores (Vovk et al. 2005; Lei et al. 2018; Angelopoulos &
 * Bates 2021, §1.1): with n calibration scores sorted ascending, the ⌈(n + 1)·level⌉-th smallest, or +∞
 * when that rank exceeds n (too few rows for the level). Then for an exchangeable test row,
 * P(score ≤ q) ≥ level.
 */
export function conformalQuantile(sortedScores: ArrayLike<number>, level: number): number {
  if (!isIntervalLevel(level)) throw new RangeError(intervalLevelMessage('conformal level', level));
  const n = sortedScores.length;
  const k = conformalRank(n, level);
  return k > n ? Infinity : sortedScores[Math.max(k, 1) - 1]!;
}

/** ⌈(n + 1)·level⌉, the rank of the conformal quantile among n scores. */
function conformalRank(n: number, level: number): number {
  // in floating point (n+1)·level can land a hair above an integer (e.g. 10·0.9 = 9.000000000000002)
  return Math.ceil((n + 1) * level - 1e-9);
}

/** The smallest number of calibration rows n with ⌈(n + 1)·level⌉ ≤ n, i.e. a finite conformal quantile. */
export function conformalRowsNeeded(level: number): number {
  // ⌈(n+1)·level⌉ ≤ n  ⇔  (n+1)·level ≤ n (n integer)  ⇔  n ≥ level / (1 − level); the search uses
  // conformalQuantile's rank, so the two agree at the boundary
  let n = Math.max(1, Math.floor(level / (1 - level)) - 1);
  while (conformalRank(n, level) > n) n++;
  return n;
}

/** Normalised nonconformity scores |y − mean| / std per row, sorted ascending (std floored at 1e-300). */
export function conformalScores(y: ArrayLike<number>, mean: ArrayLike<number>, std: ArrayLike<number>): Float64Array {
  const s = Float64Array.from({ length: y.length }, (_, i) => Math.abs(y[i]! - mean[i]!) / Math.max(std[i]!, 1e-300));
  return s.sort();
}
