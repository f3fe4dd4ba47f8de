/**
 * Sequential stopping of Monte Carlo sampling (`samples: "auto"`): sample in chunks and stop once the
 * Monte Carlo error of every served value is below a tolerance, in the style of Chow & Robbins (1965):
 * the sample count is not fixed in advance but the first T, checked at chunk ends after a minimum, at
 * which the estimated standard error is small enough. The errors, for T samples:
 *
 *   regression, per row and output, in units of the served predictive std σ = √(s²v + a²) (v the sample
 *   variance of the T outputs, s the card's epistemic_scale, a the aleatoric std):
 *     mean:           se = √(v/T)                                       (the served mean's MC error)
 *     epistemic std:  se ≈ s·√v·√((κ − 1)/(4T))                         (delta method on var(v) ≈ v²(κ − 1)/T,
 *                     κ the sample kurtosis; the total std's error is smaller: ∂σ/∂(s√v) = s√v/σ ≤ 1)
 *     error = max(se_mean, se_std) / σ   (0 when σ = 0: every sample was the same)
 *   classification, per row and class, absolute (a probability is its own scale):
 *     probability:    se = √(var(p_t)/T), var the unbiased sample variance of the class's T probabilities.
 *
 * With normal outputs and no aleatoric noise (κ = 3) the mean dominates: se/σ = 1/√T, so the rule stops
 * at the first check with T ≥ 1/tol² (400 at the default 0.05). Statistics of the tails (quantiles,
 * entropies, votes) are not in the rule: a quantile's error is ≈ 1.4× the mean's under normality.
 */

/**
 * Fewest samples before the rule may stop: below ~30 the sample variance and above all the kurtosis are
 * too noisy to trust (a lucky small variance would stop too early, the classic failure the Chow–Robbins
 * rule guards against with its 1/T term); 30 is also the first chunk, so the first check is at T = 30.
 */
export const AUTO_MIN_SAMPLES = 30;

/** The tolerance when a request asks for `"auto"` without one. */
export const AUTO_DEFAULT_TOLERANCE = 0.05;

/** The most samples an `"auto"` request draws when it does not say (capped by MC_MAX_SAMPLES). */
export const AUTO_DEFAULT_MAX_SAMPLES = 1000;

/**
 * The checks after the first are spaced by an eighth of the samples done, so the rule checks often while
 * T is small and the stop overshoots the first T within tolerance by at most ~12.5%.
 */
const GROWTH = 8;

/**
 * The sample count of the next check after `done` samples: AUTO_MIN_SAMPLES first, then
 * done + max(AUTO_MIN_SAMPLES, ⌈done/8⌉), never more than `maxSamples`. The checks depend on nothing
 * else (not on the run size), so the same seed stops at the same T on any server configuration.
 */
export function nextAutoCheck(done: number, maxSamples: number): number {
  const step = done === 0 ? AUTO_MIN_SAMPLES : Math.max(AUTO_MIN_SAMPLES, Math.ceil(done / GROWTH));
  return Math.min(done + step, maxSamples);
}

/** A run of an "auto" request draws at most this many times the samples done before it. */
const MAX_RUN_GROWTH = 4;

/**
 * A run goes past the next check by at most this many row-samples (rows × samples): longer runs pay where
 * a run's fixed cost dominates (a few rows), while the samples past the stop are wasted where the work
 * per sample does (measured, diabetes, 64 rows at tolerance 0.05: 1.90–1.96 ms CPU with a run per check,
 * 2.16–2.69 ms with runs to the predicted stop; one row at 0.02: 0.39–0.41 → 0.25–0.27 ms).
 */
export const AUTO_RUN_EXTRA_ROW_SAMPLES = 256;

/**
 * Where the next Monte Carlo run of an "auto" request ends, after a check at `done` samples found the
 * worst error `worstError`: at the first check count at or past T·(worstError/tolerance)², where an error
 * shrinking as 1/√T reaches the tolerance; at least the next check, at most MAX_RUN_GROWTH·done, done +
 * `maxExtra` and `maxSamples`. The rule still stops at the first check within tolerance (a run's samples are checked at
 * every check count they pass), so this sets only how many samples one run draws: fewer, larger runs,
 * whose samples past the stop are dropped.
 */
export function autoRunEnd(
  done: number,
  maxSamples: number,
  worstError: number,
  tolerance: number,
  maxExtra = Number.POSITIVE_INFINITY,
): number {
  const predicted = Math.min(done * (worstError / tolerance) ** 2, MAX_RUN_GROWTH * done, done + maxExtra);
  let end = nextAutoCheck(done, maxSamples);
  while (end < predicted && end < maxSamples) end = nextAutoCheck(end, maxSamples);
  return end;
}

/**
 * The MC error of one regression row and output relative to its served predictive std (see the file
 * comment). `variance`: the unbiased sample variance of the T outputs; `kurtosis`: m4/m2² of them;
 * `epistemicScale`: the card's s; `aleatoricVariance`: a² (target units²).
 */
export function regressionError(
  samples: number,
  variance: number,
  kurtosis: number,
  epistemicScale: number,
  aleatoricVariance: number,
): number {
  const epistemicVariance = epistemicScale * epistemicScale * variance;
  const total = epistemicVariance + aleatoricVariance;
  if (!(total > 0)) return 0;
  const seMean = Math.sqrt(variance / samples);
  const seStd = Math.sqrt((epistemicVariance * Math.max(0, kurtosis - 1)) / (4 * samples));
  return Math.max(seMean, seStd) / Math.sqrt(total);
}

/** The standard error of a class's mean probability over T samples, from the sums Σp and Σp². */
export function probabilityError(samples: number, sum: number, sumSq: number): number {
  if (samples < 2) return Number.POSITIVE_INFINITY;
  const mean = sum / samples;
  const variance = Math.max(0, (sumSq - samples * mean * mean) / (samples - 1));
  return Math.sqrt(variance / samples);
}

/** Whether sampling may stop: at least AUTO_MIN_SAMPLES done and the worst error within the tolerance. */
export function withinTolerance(samples: number, worstError: number, tolerance: number): boolean {
  return samples >= AUTO_MIN_SAMPLES && worstError <= tolerance;
}

/** Where a Monte Carlo request stands: the next check, where the current run ends, whether it stopped. */
export interface AutoPlan {
  check: number;
  end: number;
  stopped: boolean;
}

/** The plan of a request of at most `maxSamples` samples: one check at the end (fixed T), or "auto"'s. */
export function autoPlan(auto: boolean, maxSamples: number): AutoPlan {
  const first = auto ? nextAutoCheck(0, maxSamples) : maxSamples;
  return { check: first, end: first, stopped: false };
}

/** One run's samples, sample-major (`out.length / samples` values each), and its log-variance output. */
export interface RunOutput {
  out: Float32Array;
  logVar?: Float32Array | null;
  samples: number;
}

/**
 * Feed a run's samples to `add` after `done` earlier ones, checking the rule at every check count they
 * pass (a fixed T: one segment, no check) with `worst` (the accumulator's worst MC error so far); at a
 * stop the samples past it are dropped and `plan.stopped` is set, else `plan.end` moves on (autoRunEnd)
 * once the run reaches it. Returns the samples added in all. The whole request is one row of
 * addCheckedRows.
 */
export function addChecked(
  plan: AutoPlan,
  run: RunOutput,
  at0: { done: number; maxSamples: number; tolerance?: number; maxExtra?: number },
  add: (out: Float32Array, samples: number, logVar?: Float32Array) => void,
  worst: () => number,
): number {
  if (at0.tolerance === undefined) {
    // a fixed T: its one check is at the end (autoPlan), so a run's samples are added whole
    add(run.out, run.samples, run.logVar ?? undefined);
    return at0.done + run.samples;
  }
  const rows = { live: Uint8Array.of(1), together: true };
  const at = { ...at0, extraRowSamples: at0.maxExtra };
  return addCheckedRows(plan, run, at, rows, (_k, out, s, lv) => add(out, s, lv), worst);
}

/**
 * Per-row stopping: where each row of a run stands. `live[k]`: batch row k still samples (1) or has
 * stopped (0; addCheckedRows clears it at the row's stop). `together`: no row stops before all may (the
 * whole request stops at its slowest row, as when the raw samples are returned).
 */
export interface RowsState {
  live: Uint8Array;
  together: boolean;
}

/**
 * addChecked row by row: a run's output holds its samples of the batch's live rows (out.length / samples
 * values per sample, a row's at its position k). At every check count the run passes, each live row
 * whose `error(k)` is within tolerance stops there (its `live[k]` cleared; its later samples in the run
 * are not added), and the next run's end follows the worst error of the rows left, past the next check by at
 * most `extraRowSamples` / (rows left) samples. `plan.stopped` once no row is left. Returns the samples
 * the live rows have after the run.
 */
export function addCheckedRows(
  plan: AutoPlan,
  run: RunOutput,
  at0: { done: number; maxSamples: number; tolerance?: number; extraRowSamples?: number },
  rows: RowsState,
  add: (k: number, out: Float32Array, samples: number, logVar?: Float32Array) => void,
  error: (k: number) => number,
): number {
  const { out, logVar, samples: s } = run;
  const { live } = rows;
  const per = out.length / s;
  const perLv = logVar ? logVar.length / s : 0;
  let n = at0.done;
  for (let at = 0; at < s; ) {
    const seg = Math.min(s - at, plan.check - n);
    const whole = seg === s;
    const o = whole ? out : out.subarray(at * per, (at + seg) * per);
    const lv = (whole ? logVar : logVar?.subarray(at * perLv, (at + seg) * perLv)) ?? undefined;
    for (let k = 0; k < live.length; k++) if (live[k]) add(k, o, seg, lv);
    at += seg;
    n += seg;
    if (n < plan.check || n === at0.maxSamples) continue;
    const worst = checkRows(n, at0.tolerance!, rows, error);
    if (worst < 0) {
      plan.stopped = true;
      return n;
    }
    plan.check = nextAutoCheck(n, at0.maxSamples);
    if (n >= plan.end) {
      const going = live.reduce((c, v) => c + v, 0);
      const extra = (at0.extraRowSamples ?? Number.POSITIVE_INFINITY) / going;
      plan.end = autoRunEnd(n, at0.maxSamples, worst, at0.tolerance!, extra);
    }
  }
  return n;
}

/**
 * One check at `n` samples: the live rows within tolerance stop (all or none when `together`). Returns
 * the worst error of the rows left, or −1 when none is left.
 */
function checkRows(n: number, tolerance: number, rows: RowsState, error: (k: number) => number): number {
  const { live } = rows;
  const errors = new Float64Array(live.length);
  let worst = 0;
  for (let k = 0; k < live.length; k++) {
    if (!live[k]) continue;
    const e = error(k);
    errors[k] = e;
    if (!(e <= worst)) worst = e;
  }
  let left = 0;
  let worstLeft = 0;
  for (let k = 0; k < live.length; k++) {
    if (!live[k]) continue;
    if (withinTolerance(n, rows.together ? worst : errors[k]!, tolerance)) live[k] = 0;
    else {
      left++;
      if (!(errors[k]! <= worstLeft)) worstLeft = errors[k]!;
    }
  }
  return left === 0 ? -1 : worstLeft;
}
