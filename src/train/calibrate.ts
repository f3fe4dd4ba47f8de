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

/** A mean NLL of residuals r_i given known variances k_i and the noise σ. */
export type ResidualNll = (residuals: ArrayLike<number>, knownVar: ArrayLike<number>, sigma: number) => number;

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
export function calibrateAleatoricStd(
  residuals: ArrayLike<number>,
  epistemicVar: ArrayLike<number>,
  scale: number,
): number {
  if (residuals.length === 0) throw new Error('calibration needs at least one row');
  const lo = Math.log(Math.max(scale, 1e-12) * 1e-6);
  const hi = Math.log(Math.max(scale, 1e-12) * 10);
  const f = (logSigma: number): number => gaussianNll(residuals, epistemicVar, Math.exp(logSigma));
  const { mid } = gridGoldenSearch(f, lo, hi, 200, 60);
  const sigma = Math.exp(mid);
  // At the lower edge the noise is negligible next to the epistemic spread: report it as such.
  return sigma <= Math.exp(lo) * 1.0001 ? 0 : sigma;
}

/** Mean Gaussian NLL of residuals r_i under variance s²·e_i + k_i + σ² (k the other known variance, or none). */
export function scaledGaussianNll(
  residuals: ArrayLike<number>,
  epistemicVar: ArrayLike<number>,
  otherVar: ArrayLike<number> | null,
  scale: number,
  sigma: number,
): number {
  const n = residuals.length;
  const a = scale * scale;
  const s2 = sigma * sigma;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const v = Math.max(a * epistemicVar[i]! + (otherVar ? otherVar[i]! : 0) + s2, 1e-300);
    total += 0.5 * (Math.log(2 * Math.PI * v) + (residuals[i]! * residuals[i]!) / v);
  }
  return total / n;
}

/**
 * A 1-D search on [lo, hi]: the best of `steps` + 1 grid points (or `start`, when no grid point beats
 * it), then `iterations` golden-section steps within one grid cell either side of it. `mid` is the
 * refined point; `best` and `bestVal` the grid's (or start's) best.
 */
export function gridGoldenSearch(
  f: (x: number) => number,
  lo: number,
  hi: number,
  steps: number,
  iterations: number,
  start?: { x: number; fx: number },
): { mid: number; best: number; bestVal: number } {
  let best = start ? start.x : lo;
  let bestVal = start ? start.fx : Infinity;
  for (let i = 0; i <= steps; i++) {
    const x = lo + ((hi - lo) * i) / steps;
    const v = f(x);
    if (v < bestVal) {
      bestVal = v;
      best = x;
    }
  }
  const h = (hi - lo) / steps;
  let a = Math.max(lo, best - h);
  let b = Math.min(hi, best + h);
  const g = (Math.sqrt(5) - 1) / 2;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let it = 0; it < iterations; it++) {
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
  return { mid: (a + b) / 2, best, bestVal };
}

/** Minimum of f on [lo, hi] by gridGoldenSearch: the refined point, or the grid's best when that is lower. */
function minimiseOnGrid(
  f: (x: number) => number,
  lo: number,
  hi: number,
  steps: number,
  iterations: number,
): { x: number; fx: number } {
  const { mid: x, best, bestVal } = gridGoldenSearch(f, lo, hi, steps, iterations);
  const fx = f(x);
  return fx <= bestVal ? { x, fx } : { x: best, fx: bestVal };
}

/** The range of the epistemic scale s searched by calibrateScaleAndNoise. */
export const EPISTEMIC_SCALE_RANGE: readonly [number, number] = [0.1, 100];

/**
 * Maximum likelihood of (s, σ) for y_i ~ N(μ_i, s²·e_i + k_i + σ²) on calibration rows: e_i the MC
 * variance of the mean (epistemic), k_i another known variance (the heteroscedastic network's predicted
 * variance; null for none), s the epistemic scale (the MC spread of dropout is known to be mis-scaled:
 * its size follows the dropout rate, not the posterior), σ ≥ 0 the noise. σ is profiled out for each s
 * (log-spaced grid over [1e-6·scale, 10·scale] refined by golden section, 0 at the lower edge); log s is
 * searched the same way over EPISTEMIC_SCALE_RANGE. Without any epistemic variance s is not identified
 * and is 1. `nll` is the mean NLL of the residuals under known variances + σ² (default the Gaussian's;
 * grid-calibration.ts passes the likelihood of a target recorded on a grid).
 */
export function calibrateScaleAndNoise(
  residuals: ArrayLike<number>,
  epistemicVar: ArrayLike<number>,
  otherVar: ArrayLike<number> | null,
  scale: number,
  nll: ResidualNll = gaussianNll,
): { epistemicScale: number; sigma: number } {
  const n = residuals.length;
  if (n === 0) throw new Error('calibration needs at least one row');
  const loS = Math.log(Math.max(scale, 1e-12) * 1e-6);
  const hiS = Math.log(Math.max(scale, 1e-12) * 10);
  const known = new Float64Array(n);
  const profile = (s: number): { sigma: number; nll: number } => {
    const a = s * s;
    for (let i = 0; i < n; i++) known[i] = a * epistemicVar[i]! + (otherVar ? otherVar[i]! : 0);
    const { x } = minimiseOnGrid((ls) => nll(residuals, known, Math.exp(ls)), loS, hiS, 48, 30);
    // at the lower edge the noise is negligible next to the known variance: 0
    const sigma = x <= loS + 1e-4 ? 0 : Math.exp(x);
    return { sigma, nll: nll(residuals, known, sigma) };
  };
  let anyEpistemic = false;
  for (let i = 0; i < n; i++) if (epistemicVar[i]! > 0) anyEpistemic = true;
  if (!anyEpistemic) return { epistemicScale: 1, sigma: profile(1).sigma };
  const [lo, hi] = EPISTEMIC_SCALE_RANGE;
  const { x } = minimiseOnGrid((ls) => profile(Math.exp(ls)).nll, Math.log(lo), Math.log(hi), 24, 30);
  const epistemicScale = Math.exp(x);
  return { epistemicScale, sigma: profile(epistemicScale).sigma };
}
