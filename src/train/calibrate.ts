/**
 * Aleatoric noise calibration for regression.
 *
 * MC dropout's sample spread estimates only the epistemic (model) uncertainty. Gal & Ghahramani (2016,
 * "Dropout as a Bayesian Approximation", eq. 7-8) give the predictive variance as
 *   Var[y*] ≈ τ⁻¹ + (1/T) Σ_t ŷ_t² − (mean ŷ)²,
 * where τ⁻¹ = σ² is the observation noise. We estimate σ by maximum likelihood on held-out (validation)
 * rows: with MC means μ_i and MC variances s_i², σ² maximises
 *   Σ_i log N(y_i; μ_i, s_i² + σ²),
 * a one-dimensional problem we solve by a log-spaced grid search refined by golden-section search.
 * Validation rows are not used for gradient steps, so the residuals are honest estimates of the noise.
 */

/** Mean Gaussian NLL of residuals r_i under variance s2_i + sigma². */
export function gaussianNll(residuals: ArrayLike<number>, epistemicVar: ArrayLike<number>, sigma: number): number {
  const n = residuals.length;
  const s2 = sigma * sigma;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const v = Math.max(epistemicVar[i]! + s2, 1e-300);
    total += 0.5 * (Math.log(2 * Math.PI * v) + (residuals[i]! * residuals[i]!) / v);
  }
  return total / n;
}

/**
 * Maximum-likelihood aleatoric std σ ≥ 0 for residuals y − μ and epistemic variances s², in the units of
 * the residuals. `scale` (e.g. the target's std) sets the search range [1e-6·scale, 10·scale].
 */
export function calibrateAleatoricStd(residuals: ArrayLike<number>, epistemicVar: ArrayLike<number>, scale: number): number {
  if (residuals.length === 0) throw new Error('calibration needs at least one row');
  const lo = Math.log(Math.max(scale, 1e-12) * 1e-6);
  const hi = Math.log(Math.max(scale, 1e-12) * 10);
  const f = (logSigma: number): number => gaussianNll(residuals, epistemicVar, Math.exp(logSigma));
  const steps = 200;
  let best = lo;
  let bestVal = Infinity;
  for (let i = 0; i <= steps; i++) {
    const s = lo + ((hi - lo) * i) / steps;
    const v = f(s);
    if (v < bestVal) {
      bestVal = v;
      best = s;
    }
  }
  // golden-section refinement within one grid cell either side
  const h = (hi - lo) / steps;
  let a = Math.max(lo, best - h);
  let b = Math.min(hi, best + h);
  const g = (Math.sqrt(5) - 1) / 2;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let it = 0; it < 60; it++) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = f(d);
    }
  }
  const sigma = Math.exp((a + b) / 2);
  // At the lower edge the noise is negligible next to the epistemic spread: report it as such.
  return sigma <= Math.exp(lo) * 1.0001 ? 0 : sigma;
}
