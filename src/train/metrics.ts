/** Evaluation metrics for regression and classification (float64, pure). */
import { normalQuantile } from '../util/stats.js';

const LOG_2PI = Math.log(2 * Math.PI);

export interface RegressionMetrics {
  /** Root mean squared error of the eval-mode (dropout off) prediction, target units. */
  rmse: number;
  /** Coefficient of determination of the eval-mode prediction. */
  r2: number;
  /** Mean Gaussian negative log-likelihood of N(MC mean, epistemic² + aleatoric²), nats. */
  nll: number;
  /** Fraction of targets inside the served 90% interval (MC mean ± z·total std). */
  coverage_90: number;
  /** Fraction inside a 90% interval built from the MC dropout spread alone (for comparison). */
  coverage_90_epistemic_only: number;
  /** Mean total predictive std, target units. */
  mean_std: number;
  rows: number;
}

export function regressionMetrics(
  y: ArrayLike<number>,
  evalPred: ArrayLike<number>,
  mcMean: ArrayLike<number>,
  mcStd: ArrayLike<number>,
  aleatoricStd: number,
): RegressionMetrics {
  const n = y.length;
  let sse = 0;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += y[i]!;
  mean /= n;
  let sst = 0;
  let nll = 0;
  let cover = 0;
  let coverEpi = 0;
  let sumStd = 0;
  const z = normalQuantile(0.95);
  for (let i = 0; i < n; i++) {
    const e = y[i]! - evalPred[i]!;
    sse += e * e;
    sst += (y[i]! - mean) ** 2;
    const epi = mcStd[i]!;
    const variance = epi * epi + aleatoricStd * aleatoricStd;
    const std = Math.sqrt(variance);
    sumStd += std;
    const r = y[i]! - mcMean[i]!;
    nll += 0.5 * (LOG_2PI + Math.log(Math.max(variance, 1e-300)) + (r * r) / Math.max(variance, 1e-300));
    if (Math.abs(r) <= z * std) cover++;
    if (Math.abs(r) <= z * epi) coverEpi++;
  }
  return {
    rmse: Math.sqrt(sse / n),
    r2: sst > 0 ? 1 - sse / sst : 0,
    nll: nll / n,
    coverage_90: cover / n,
    coverage_90_epistemic_only: coverEpi / n,
    mean_std: sumStd / n,
    rows: n,
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

export function argmax(p: ArrayLike<number>, offset: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if (p[offset + j]! > p[offset + best]!) best = j;
  return best;
}

export function classificationMetrics(labels: ArrayLike<number>, evalProbs: ArrayLike<number>, mcProbs: ArrayLike<number>, k: number, bins = 15): ClassificationMetrics {
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
