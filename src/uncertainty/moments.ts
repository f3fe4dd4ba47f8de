/**
 * Running moments of Monte Carlo samples, in float64, sample by sample, so that T × N samples never need
 * to be held at once: per value the sum and sum of squares around the first sample (no cancellation
 * when |mean| ≫ std) and, for a heteroscedastic regression, the sum of the predicted variance.
 */

/**
 * Bound on a predicted log-variance in the network's standardised units: the trainer clamps to it
 * (src/train/mlp.ts) and the served statistics clamp to it shifted to target units (logVarianceBounds).
 */
export const MAX_LOG_VARIANCE = 20;

/** Bounds of a heteroscedastic model's log-variance output (target units²): values beyond are clamped. */
export interface LogVarianceBounds {
  lo: number;
  hi: number;
}

/**
 * The clamp in target units of a network whose standardised log-variance is clamped to ±MAX_LOG_VARIANCE
 * and shifted by `centre` = 2·log(y_std) on the way out.
 */
export function logVarianceBounds(centre: number): LogVarianceBounds {
  return { lo: centre - MAX_LOG_VARIANCE, hi: centre + MAX_LOG_VARIANCE };
}

/** Running sums of `size` values per sample: see the file comment. */
export class MomentSums {
  private readonly shift: Float64Array;
  private readonly sum: Float64Array;
  private readonly sumSq: Float64Array;
  /** Heteroscedastic: Σ_t exp(clamp(log-variance_t)) per value; null for homoscedastic. */
  private readonly varianceSum: Float64Array | null;
  /** Σd³ and Σd⁴ around the shift, for the kurtosis (sequential stopping, stopping.ts); null when not kept. */
  private readonly higher: { cube: Float64Array; fourth: Float64Array } | null;
  /** Samples added so far (T; with addValues, the most any value has). */
  count = 0;
  /** Per value, its samples: once addValues() is used (null until then: every value has `count`). */
  private counts: Int32Array | null = null;

  /**
   * `logVariance`: the clamp of a heteroscedastic model's log-variance (add() then needs it); else null.
   * `keepKurtosis`: also keep the third and fourth power sums (kurtosis()).
   */
  constructor(
    readonly size: number,
    private readonly logVariance: LogVarianceBounds | null = null,
    keepKurtosis = false,
  ) {
    this.shift = new Float64Array(size);
    this.sum = new Float64Array(size);
    this.sumSq = new Float64Array(size);
    this.varianceSum = logVariance ? new Float64Array(size) : null;
    this.higher = keepKurtosis ? { cube: new Float64Array(size), fourth: new Float64Array(size) } : null;
  }

  get heteroscedastic(): boolean {
    return this.varianceSum !== null;
  }

  /**
   * Add `samples` samples: sample t is values[offset + t·stride … + size), and its log-variances are at
   * the same places of `logVar` (heteroscedastic).
   */
  add(values: ArrayLike<number>, offset: number, logVar?: ArrayLike<number>, samples = 1, stride = this.size): void {
    if (this.counts) throw new Error('MomentSums: add() after addValues(); add to each value with addValues()');
    this.accumulate(values, offset, logVar, samples, stride, 0, this.size, this.count === 0);
    this.count += samples;
  }

  /**
   * Add `samples` samples to the values first … first + len − 1 only (rows that stop apart: each value
   * then has its own count, countOf): sample t of them is values[offset + t·stride … + len).
   */
  addValues(
    values: ArrayLike<number>,
    offset: number,
    logVar: ArrayLike<number> | undefined,
    samples: number,
    stride: number,
    first: number,
    len: number,
  ): void {
    if (!this.counts) this.counts = new Int32Array(this.size).fill(this.count);
    const counts = this.counts;
    this.accumulate(values, offset, logVar, samples, stride, first, len, counts[first] === 0);
    for (let i = first; i < first + len; i++) counts[i]! += samples;
    if (counts[first]! > this.count) this.count = counts[first]!;
  }

  /** Whether the values have their own counts (addValues was used). */
  get perValue(): boolean {
    return this.counts !== null;
  }

  /** Samples added to value i. */
  countOf(i: number): number {
    return this.counts ? this.counts[i]! : this.count;
  }

  private accumulate(
    values: ArrayLike<number>,
    offset: number,
    logVar: ArrayLike<number> | undefined,
    samples: number,
    stride: number,
    first: number,
    len: number,
    setShift: boolean,
  ): void {
    const { shift, sum, sumSq, varianceSum } = this;
    if (varianceSum && (!logVar || logVar.length < offset + (samples - 1) * stride + len))
      throw new Error('heteroscedastic MC: the log-variance output is missing or shorter than the mean output');
    const end = first + len;
    const base = offset - first; // values[base + i] is value i's in sample 0
    if (setShift) for (let i = first; i < end; i++) shift[i] = values[base + i]!;
    for (let t = 0; t < samples; t++) {
      const o = base + t * stride;
      for (let i = first; i < end; i++) {
        const d = values[o + i]! - shift[i]!;
        sum[i]! += d;
        sumSq[i]! += d * d;
      }
      if (this.higher) {
        const { cube, fourth } = this.higher;
        for (let i = first; i < end; i++) {
          const d = values[o + i]! - shift[i]!;
          const d2 = d * d;
          cube[i]! += d2 * d;
          fourth[i]! += d2 * d2;
        }
      }
      if (varianceSum) {
        const { lo, hi } = this.logVariance!;
        for (let i = first; i < end; i++) {
          const s = logVar![o + i]!;
          varianceSum[i]! += Math.exp(s > hi ? hi : s < lo ? lo : s);
        }
      }
    }
  }

  /** (1/T) Σ_t x_t of value i. */
  mean(i: number): number {
    return this.shift[i]! + this.sum[i]! / this.countOf(i);
  }

  /** Unbiased sample variance Σ_t (x_t − mean)² / (T − 1) of value i (0 for T = 1). */
  variance(i: number): number {
    const T = this.countOf(i);
    const m = this.sum[i]! / T;
    return T > 1 ? Math.max(0, (this.sumSq[i]! - T * m * m) / (T - 1)) : 0;
  }

  /**
   * The sample kurtosis m4/m2² of value i (central moments with 1/T; 3 for a normal distribution), from
   * the power sums around the shift; NaN unless made with keepKurtosis, 0 when the values do not vary.
   */
  kurtosis(i: number): number {
    if (!this.higher) return Number.NaN;
    const T = this.countOf(i);
    const m = this.sum[i]! / T;
    const s2 = this.sumSq[i]! / T;
    const m2 = s2 - m * m;
    if (!(m2 > 0)) return 0;
    const m4 = this.higher.fourth[i]! / T - 4 * m * (this.higher.cube[i]! / T) + 6 * m * m * s2 - 3 * m ** 4;
    return Math.max(0, m4) / (m2 * m2);
  }

  /** Heteroscedastic: (1/T) Σ_t exp(clamp(log-variance_t)) of value i, the MC mean predicted variance; else 0. */
  noiseVariance(i: number): number {
    return this.varianceSum ? this.varianceSum[i]! / this.countOf(i) : 0;
  }
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
