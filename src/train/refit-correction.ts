/**
 * The refit's correction of a cross-fitted calibration. The out-of-fold predictions that calibrate a
 * tuned model come from networks trained on (K − 1)/K of the rows, while the served refit trains on all
 * of them and errs less, so intervals fitted to the fold networks' errors are too wide for it (yacht's
 * 90% intervals covered 0.935 of the test rows, docs/benchmarks.md). Burman (1989, "A comparative study
 * of ordinary cross-validation, v-fold cross-validation and the repeated learning-testing methods",
 * Biometrika 76) estimates the squared error of the model fitted on all n rows from the K-fold one:
 *
 *   MSE_refit ≈ CV + err(refit, all rows) − (1/K) Σ_k err(fold k's network, all rows),
 *
 * where CV is the out-of-fold squared error. The last two terms measure, on the same rows, how much the
 * refit fits better than the fold networks. Their ratio to CV is the factor by which the calibration
 * rows' squared residuals shrink before (s, σ) and the conformal scores are fitted: every residual is
 * scaled by its square root. The ratio is kept in [MIN_RATIO, 1]: more rows are not taken to make a
 * worse model, and a correction larger than the first-order one is not trusted.
 */

/** The smallest variance ratio applied. */
export const MIN_RATIO = 0.5;

export interface RefitCorrection {
  /** Mean squared out-of-fold error of the fold networks (dropout off). */
  cvMse: number;
  /** Mean squared error of the refit on all training rows (its own). */
  refitMse: number;
  /** Mean over the folds of each fold network's mean squared error on all training rows. */
  foldsMse: number;
  /** (cvMse + refitMse − foldsMse) / cvMse, in [MIN_RATIO, 1]: the residuals are scaled by its root. */
  ratio: number;
}

const meanSquaredError = (y: ArrayLike<number>, pred: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += (y[i]! - pred[i]!) ** 2;
  return s / y.length;
};

/**
 * Burman's correction from predictions on every training row (dropout off, target units): the refit's,
 * and fold k's network's (`folds[k]`, trained without the rows `held[k]`). Pure.
 */
export function refitCorrection(
  y: ArrayLike<number>,
  refit: ArrayLike<number>,
  folds: ArrayLike<number>[],
  held: ArrayLike<number>[],
): RefitCorrection {
  const oof = new Float64Array(y.length);
  held.forEach((rows, k) => {
    for (let j = 0; j < rows.length; j++) oof[rows[j]!] = folds[k]![rows[j]!]!;
  });
  const cvMse = meanSquaredError(y, oof);
  const refitMse = meanSquaredError(y, refit);
  const foldsMse = folds.reduce((s, f) => s + meanSquaredError(y, f), 0) / folds.length;
  const raw = cvMse > 0 ? (cvMse + refitMse - foldsMse) / cvMse : 1;
  return { cvMse, refitMse, foldsMse, ratio: Math.min(1, Math.max(MIN_RATIO, raw)) };
}
