/** Evaluation metrics for regression and classification (float64, pure). */
import { conformalQuantile, erfc, normalQuantile } from '../util/stats.js';

const LOG_2PI = Math.log(2 * Math.PI);

/** Standard normal CDF Φ(z). */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

/** Standard normal density φ(z). */
export function normalPdf(z: number): number {
  return Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);
}

/** log N(y; mean, std²), nats. */
export function gaussianLogLik(y: number, mean: number, std: number): number {
  const s = Math.max(std, 1e-300);
  const z = (y - mean) / s;
  return -0.5 * (LOG_2PI + z * z) - Math.log(s);
}

/**
 * Continuous ranked probability score of N(mean, std²) at y, closed form (Gneiting & Raftery 2007,
 * eq. 21): CRPS = σ·[z·(2Φ(z) − 1) + 2φ(z) − 1/√π], z = (y − mean)/σ. Target units; lower is better;
 * for std → 0 it tends to |y − mean|.
 */
export function gaussianCrps(y: number, mean: number, std: number): number {
  if (!(std > 0)) return Math.abs(y - mean);
  const z = (y - mean) / std;
  return std * (z * (2 * normalCdf(z) - 1) + 2 * normalPdf(z) - 1 / Math.sqrt(Math.PI));
}

/** Interval levels at which coverage is reported (the UCI benchmark asks for these four). */
export const COVERAGE_LEVELS = [0.5, 0.8, 0.9, 0.95] as const;

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
  let sse = 0;
  let sseMc = 0;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += y[i]!;
  mean /= n;
  let sst = 0;
  let nll = 0;
  let crps = 0;
  let coverEpi = 0;
  let sumStd = 0;
  let width90 = 0;
  const zs = COVERAGE_LEVELS.map((l) => normalQuantile((1 + l) / 2));
  const cover = COVERAGE_LEVELS.map(() => 0);
  const qs = conformalScores ? COVERAGE_LEVELS.map((l) => conformalQuantile(conformalScores, l)) : null;
  const coverConf = COVERAGE_LEVELS.map(() => 0);
  let confWidth90 = 0;
  const z90 = normalQuantile(0.95);
  for (let i = 0; i < n; i++) {
    const e = y[i]! - evalPred[i]!;
    sse += e * e;
    sst += (y[i]! - mean) ** 2;
    const epi = mcStd[i]!;
    const alea = typeof aleatoricVar === 'number' ? aleatoricVar : aleatoricVar[i]!;
    const std = Math.sqrt(epi * epi + alea);
    sumStd += std;
    const r = y[i]! - mcMean[i]!;
    sseMc += r * r;
    nll -= gaussianLogLik(y[i]!, mcMean[i]!, std);
    crps += gaussianCrps(y[i]!, mcMean[i]!, std);
    zs.forEach((z, k) => {
      if (Math.abs(r) <= z * std) cover[k]!++;
    });
    width90 += 2 * z90 * std;
    if (Math.abs(r) <= z90 * epi) coverEpi++;
    if (qs) {
      qs.forEach((q, k) => {
        if (Math.abs(r) <= q * std) coverConf[k]!++;
      });
      confWidth90 += 2 * qs[2]! * std;
    }
  }
  return {
    rmse: Math.sqrt(sse / n),
    r2: sst > 0 ? 1 - sse / sst : 0,
    rmse_mc: Math.sqrt(sseMc / n),
    nll: nll / n,
    crps: crps / n,
    coverage_90: cover[2]! / n,
    coverage_90_epistemic_only: coverEpi / n,
    coverage_50: cover[0]! / n,
    coverage_80: cover[1]! / n,
    coverage_95: cover[3]! / n,
    interval_width_90: width90 / n,
    ...(qs
      ? {
          conformal_coverage_50: coverConf[0]! / n,
          conformal_coverage_80: coverConf[1]! / n,
          conformal_coverage_90: coverConf[2]! / n,
          conformal_coverage_95: coverConf[3]! / n,
          conformal_interval_width_90: confWidth90 / n,
        }
      : {}),
    mean_std: sumStd / n,
    rows: n,
  };
}

/** Split-conformal quantile (in src/util/stats.ts, shared with the serving runtime). */
export { conformalQuantile };

/** Normalised nonconformity scores |y − mean| / std, sorted ascending. */
export function conformalScores(y: ArrayLike<number>, mean: ArrayLike<number>, std: ArrayLike<number>): Float64Array {
  const s = Float64Array.from({ length: y.length }, (_, i) => Math.abs(y[i]! - mean[i]!) / Math.max(std[i]!, 1e-300));
  return s.sort();
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

export function argmax(p: ArrayLike<number>, offset: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if (p[offset + j]! > p[offset + best]!) best = j;
  return best;
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
  const binCount = new Float64Array(bins);
  const binConf = new Float64Array(bins);
  const binAcc = new Float64Array(bins);
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    const o = i * k;
    if (argmax(evalProbs, o, k) === y) correct++;
    const pred = argmax(mcProbs, o, k);
    if (pred === y) mcCorrect++;
    nll -= Math.log(Math.max(mcProbs[o + y]!, 1e-12));
    for (let j = 0; j < k; j++) brier += (mcProbs[o + j]! - (j === y ? 1 : 0)) ** 2;
    const conf = mcProbs[o + pred]!;
    const b = Math.min(bins - 1, Math.floor(conf * bins));
    binCount[b]!++;
    binConf[b]! += conf;
    binAcc[b]! += pred === y ? 1 : 0;
  }
  let ece = 0;
  for (let b = 0; b < bins; b++) {
    if (binCount[b]! > 0) ece += Math.abs(binAcc[b]! - binConf[b]!) / n;
  }
  return { accuracy: correct / n, nll: nll / n, ece, brier: brier / n, mc_accuracy: mcCorrect / n, rows: n };
}

/** Reliability diagram data: per equal-width confidence bin, the rows, mean confidence and accuracy of the argmax. */
export interface Reliability {
  bins: number;
  count: number[];
  confidence: (number | null)[];
  accuracy: (number | null)[];
}

export function reliability(labels: ArrayLike<number>, probs: ArrayLike<number>, k: number, bins = 15): Reliability {
  const count = new Array<number>(bins).fill(0);
  const conf = new Array<number>(bins).fill(0);
  const acc = new Array<number>(bins).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const pred = argmax(probs, i * k, k);
    const c = probs[i * k + pred]!;
    const b = Math.min(bins - 1, Math.floor(c * bins));
    count[b]!++;
    conf[b]! += c;
    acc[b]! += pred === labels[i] ? 1 : 0;
  }
  return {
    bins,
    count,
    confidence: conf.map((c, b) => (count[b]! ? c / count[b]! : null)),
    accuracy: acc.map((a, b) => (count[b]! ? a / count[b]! : null)),
  };
}
