/**
 * The card's evaluation metrics of a fitted model on held-out rows (float64, pure): accuracy of the
 * eval-mode prediction, and the scoring rules and calibration of the served MC predictive, computed by
 * the uncertainty core (src/uncertainty).
 */
import { centralCoverage, conformalCalibrationCurve, reliabilityBins } from '../uncertainty/calibration.js';
import { conformalQuantile, gaussianMultiplier } from '../uncertainty/intervals.js';
import { argmaxAt } from '../uncertainty/probabilities.js';
import { gaussianCrps, gaussianLogLik } from '../uncertainty/scoring.js';

/** Interval levels at which the card reports coverage (the UCI benchmark asks for these four). */
export const CARD_COVERAGE_LEVELS = [0.5, 0.8, 0.9, 0.95] as const;

export interface RegressionMetrics {
  /** Root mean squared error of the eval-mode (dropout off) prediction, target units. */
  rmse: number;
  /** Coefficient of determination of the eval-mode prediction. */
  r2: number;
  /** Root mean squared error of the served (MC) mean, target units. */
  rmse_mc: number;
  /** Mean Gaussian negative log-likelihood of the served predictive N(MC mean, std²), nats. */
  nll: number;
  /** Mean CRPS of the served predictive distribution, target units. */
  crps: number;
  /** Fraction of targets inside the served 90% interval (MC mean ± z·total std). */
  coverage_90: number;
  /** Fraction inside a 90% interval built from the MC dropout spread alone (for comparison). */
  coverage_90_epistemic_only: number;
  coverage_50: number;
  coverage_80: number;
  coverage_95: number;
  /** Mean width of the served 90% Gaussian interval, target units. */
  interval_width_90: number;
  /** Coverage of the split-conformal intervals (mean ± q·std, q from the card's scores) at 50/80/90/95%. */
  conformal_coverage_50?: number;
  conformal_coverage_80?: number;
  conformal_coverage_90?: number;
  conformal_coverage_95?: number;
  /** Mean width of the conformal 90% interval (Infinity when the calibration rows are too few). */
  conformal_interval_width_90?: number;
  /** Mean total predictive std, target units. */
  mean_std: number;
  rows: number;
}

/**
 * Regression metrics of a predictive distribution N(mcMean, epistemic² + aleatoric variance) per row.
 * `aleatoricVar` is one variance for every row (homoscedastic σ²) or one per row (heteroscedastic);
 * `conformalScores` (sorted ascending) adds the conformal interval coverage.
 */
export function regressionMetrics(
  y: ArrayLike<number>,
  evalPred: ArrayLike<number>,
  mcMean: ArrayLike<number>,
  mcStd: ArrayLike<number>,
  aleatoricVar: number | ArrayLike<number>,
  conformalScores?: ArrayLike<number>,
): RegressionMetrics {
  const n = y.length;
  const std = Float64Array.from({ length: n }, (_, i) => {
    const alea = typeof aleatoricVar === 'number' ? aleatoricVar : aleatoricVar[i]!;
    return Math.sqrt(mcStd[i]! * mcStd[i]! + alea);
  });
  const cover = (level: number): number => centralCoverage(y, mcMean, std, level);
  return {
    ...pointErrors(y, evalPred, mcMean),
    ...scores(y, mcMean, std),
    coverage_90: cover(0.9),
    coverage_90_epistemic_only: centralCoverage(y, mcMean, mcStd, 0.9),
    coverage_50: cover(0.5),
    coverage_80: cover(0.8),
    coverage_95: cover(0.95),
    interval_width_90: meanWidth(std, gaussianMultiplier(0.9)),
    ...(conformalScores ? conformalMetrics(y, mcMean, std, conformalScores) : {}),
    mean_std: meanWidth(std, 0.5),
    rows: n,
  };
}

/** RMSE and R² of the eval-mode prediction, RMSE of the MC mean. */
function pointErrors(
  y: ArrayLike<number>,
  evalPred: ArrayLike<number>,
  mcMean: ArrayLike<number>,
): { rmse: number; r2: number; rmse_mc: number } {
  const n = y.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += y[i]!;
  mean /= n;
  let sse = 0;
  let sst = 0;
  let sseMc = 0;
  for (let i = 0; i < n; i++) {
    const e = y[i]! - evalPred[i]!;
    sse += e * e;
    sst += (y[i]! - mean) ** 2;
    const r = y[i]! - mcMean[i]!;
    sseMc += r * r;
  }
  return { rmse: Math.sqrt(sse / n), r2: sst > 0 ? 1 - sse / sst : 0, rmse_mc: Math.sqrt(sseMc / n) };
}

/** Mean negative log-likelihood and mean CRPS of N(mean, std²). */
function scores(y: ArrayLike<number>, mean: ArrayLike<number>, std: ArrayLike<number>): { nll: number; crps: number } {
  let nll = 0;
  let crps = 0;
  for (let i = 0; i < y.length; i++) {
    nll -= gaussianLogLik(y[i]!, mean[i]!, std[i]!);
    crps += gaussianCrps(y[i]!, mean[i]!, std[i]!);
  }
  return { nll: nll / y.length, crps: crps / y.length };
}

/** Mean of 2·m·std: the mean width of the intervals mean ± m·std (m = ½: the mean std). */
function meanWidth(std: ArrayLike<number>, m: number): number {
  let sum = 0;
  for (let i = 0; i < std.length; i++) sum += 2 * m * std[i]!;
  return sum / std.length;
}

function conformalMetrics(
  y: ArrayLike<number>,
  mean: ArrayLike<number>,
  std: ArrayLike<number>,
  sortedScores: ArrayLike<number>,
): Partial<RegressionMetrics> {
  const curve = conformalCalibrationCurve(y, mean, std, sortedScores, CARD_COVERAGE_LEVELS);
  return {
    conformal_coverage_50: curve[0]!.observed,
    conformal_coverage_80: curve[1]!.observed,
    conformal_coverage_90: curve[2]!.observed,
    conformal_coverage_95: curve[3]!.observed,
    conformal_interval_width_90: meanWidth(std, conformalQuantile(sortedScores, 0.9)),
  };
}

export interface ClassificationMetrics {
  /** Accuracy of the eval-mode (dropout off) argmax. */
  accuracy: number;
  /** Mean negative log-likelihood of the true class under the MC-averaged probabilities, nats. */
  nll: number;
  /** Expected calibration error (15 equal-width confidence bins) of the MC-averaged probabilities. */
  ece: number;
  /** Multi-class Brier score (mean over rows of Σ_k (p_k − 1[y=k])²) of the MC-averaged probabilities. */
  brier: number;
  /** Accuracy of the MC-averaged probabilities' argmax. */
  mc_accuracy: number;
  rows: number;
}

export function classificationMetrics(
  labels: ArrayLike<number>,
  evalProbs: ArrayLike<number>,
  mcProbs: ArrayLike<number>,
  k: number,
  bins = 15,
): ClassificationMetrics {
  const n = labels.length;
  let correct = 0;
  let mcCorrect = 0;
  let nll = 0;
  let brier = 0;
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    const o = i * k;
    if (argmaxAt(evalProbs, o, k) === y) correct++;
    if (argmaxAt(mcProbs, o, k) === y) mcCorrect++;
    nll -= Math.log(Math.max(mcProbs[o + y]!, 1e-12));
    for (let j = 0; j < k; j++) brier += (mcProbs[o + j]! - (j === y ? 1 : 0)) ** 2;
  }
  const { ece } = reliabilityBins(mcProbs, labels, k, bins);
  return { accuracy: correct / n, nll: nll / n, ece, brier: brier / n, mc_accuracy: mcCorrect / n, rows: n };
}

/** Reliability diagram data: per equal-width confidence bin, the rows, mean confidence and accuracy of the argmax. */
export interface Reliability {
  bins: number;
  count: number[];
  confidence: (number | null)[];
  accuracy: (number | null)[];
}

/** The card's form of the reliability diagram (src/uncertainty/calibration.ts reliabilityBins): empty bins null. */
export function reliability(labels: ArrayLike<number>, probs: ArrayLike<number>, k: number, bins = 15): Reliability {
  const diagram = reliabilityBins(probs, labels, k, bins).bins;
  const orNull = (v: number): number | null => (Number.isNaN(v) ? null : v);
  return {
    bins,
    count: diagram.map((b) => b.count),
    confidence: diagram.map((b) => orNull(b.confidence)),
    accuracy: diagram.map((b) => orNull(b.accuracy)),
  };
}
