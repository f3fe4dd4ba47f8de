/**
 * Monte Carlo dropout statistics, accumulated in float64 chunk by chunk so that T × N samples never
 * need to be held at once (unless raw samples are asked for). The record they produce and its tables
 * are in stats.ts. Format-neutral: any model that yields sample outputs can use these.
 *
 * Chunk layout: a run over `s` samples of N rows returns s·N rows ordered sample-major: row t·N + i is
 * sample t of input row i.
 *
 * Regression (per row i, output k), with T samples ŷ_t of the mean output, s the card's epistemic_scale
 * and σ its aleatoric_std:
 *   mean = (1/T) Σ ŷ_t;  epistemic_std = s·√(Σ (ŷ_t − mean)² / (T − 1));
 *   homoscedastic:   aleatoric_std = σ;
 *   heteroscedastic: aleatoric_std = √((1/T) Σ exp(clamp(v_t)) + σ²), v_t the log-variance output of
 *                    sample t (target units², Kendall & Gal 2017 eq. 9; σ a calibrated floor);
 *   std = √(epistemic_std² + aleatoric_std²)   (Gal & Ghahramani 2016, eq. 8: τ⁻¹ + sample variance);
 *   interval = mean ± m·std: gaussian m = z = Φ⁻¹((1 + level)/2), the central interval of N(mean, std²);
 *   conformal m = q, the split-conformal quantile of the card's scores (uncertainty.ts resolveInterval).
 * The trainer computes the same (src/train/train.ts mcPredictive, totalStd).
 * Classification (per row), with p_t = softmax(logits_t / temperature) (for a model that outputs
 * probabilities, softmax(log p_t / temperature)):
 *   probabilities = p̄ = (1/T) Σ p_t;  entropy = H(p̄);  mutual_information = H(p̄) − (1/T) Σ H(p_t) ≥ 0
 *   (BALD, Houlsby et al. 2011);  variation_ratio = 1 − (count of the modal label)/T.
 */
import { entropy, normalQuantile } from '../util/stats.js';
import { type ClassificationStats, type RegressionStats, makeStats } from './stats.js';
import type { IntervalSpec } from './uncertainty.js';

/**
 * Bound on a predicted log-variance in the network's standardised units, the trainer's clamp
 * (src/train/mlp.ts MAX_LOG_VARIANCE; a test checks they agree). In target units the bounds are
 * ±MAX_LOG_VARIANCE + 2·log(y_std) (onnx/load.ts logVarianceBounds).
 */
export const MAX_LOG_VARIANCE = 20;

/** Bounds of a heteroscedastic model's log-variance output (target units²): values beyond are clamped. */
export interface LogVarianceBounds {
  lo: number;
  hi: number;
}

export class RegressionAccumulator {
  private readonly shift: Float64Array;
  private readonly sum: Float64Array;
  private readonly sumSq: Float64Array;
  /** Heteroscedastic: Σ_t exp(clamp(log-variance_t)) per row and output; null for homoscedastic. */
  private readonly varianceSum: Float64Array | null;
  private seen = 0;
  private readonly raw?: Float32Array;

  /**
   * `logVariance`: the clamp bounds of a heteroscedastic model's log-variance output (add() then needs
   * that output with every chunk); absent or null for a homoscedastic model.
   */
  constructor(
    private readonly rows: number,
    private readonly outputs: number,
    samples: number,
    keepSamples: boolean,
    private readonly logVariance: LogVarianceBounds | null = null,
  ) {
    const n = rows * outputs;
    this.shift = new Float64Array(n);
    this.sum = new Float64Array(n);
    this.sumSq = new Float64Array(n);
    this.varianceSum = logVariance ? new Float64Array(n) : null;
    if (keepSamples) this.raw = new Float32Array(samples * n);
  }

  /**
   * Add `chunkSamples` samples from a sample-major output of chunkSamples × batchRows rows, of which this
   * request's rows are rowOffset … rowOffset + rows − 1 in every sample (a coalesced run holds several
   * requests; alone, batchRows = rows and rowOffset = 0). `logVar`: the log-variance output of the same
   * run, same layout (heteroscedastic models).
   */
  add(out: Float32Array, chunkSamples: number, batchRows = this.rows, rowOffset = 0, logVar?: Float32Array): void {
    const n = this.rows * this.outputs;
    const stride = batchRows * this.outputs;
    const first = rowOffset * this.outputs;
    const { shift, sum, sumSq, raw, varianceSum } = this;
    if (varianceSum && (!logVar || logVar.length < out.length))
      throw new Error('heteroscedastic MC: the log-variance output is missing or shorter than the mean output');
    // shifted sums avoid cancellation when |mean| ≫ std
    if (this.seen === 0) for (let i = 0; i < n; i++) shift[i] = out[first + i]!;
    for (let t = 0; t < chunkSamples; t++) {
      const o = t * stride + first;
      for (let i = 0; i < n; i++) {
        const v = out[o + i]!;
        const d = v - shift[i]!;
        sum[i]! += d;
        sumSq[i]! += d * d;
        if (raw) raw[(this.seen + t) * n + i] = v;
      }
      if (varianceSum) {
        const { lo, hi } = this.logVariance!;
        for (let i = 0; i < n; i++) {
          const s = logVar![o + i]!;
          varianceSum[i]! += Math.exp(s > hi ? hi : s < lo ? lo : s);
        }
      }
    }
    this.seen += chunkSamples;
  }

  /**
   * `aleatoricStd`: the card's σ per row and output (rows × outputs): the noise of a homoscedastic model,
   * the floor of a heteroscedastic one (whose served aleatoric_std is √(MC mean of the predicted
   * variance + σ²), per row). `interval`: the resolved interval (a bare level means gaussian).
   * `epistemicScale` multiplies the MC std of the mean.
   */
  finish(aleatoricStd: Float64Array, interval: number | IntervalSpec, epistemicScale = 1): RegressionStats {
    const T = this.seen;
    const n = this.rows * this.outputs;
    if (aleatoricStd.length !== n)
      throw new Error(`aleatoric_std: ${aleatoricStd.length} values for ${this.rows} rows × ${this.outputs} outputs`);
    const spec: IntervalSpec =
      typeof interval === 'number'
        ? { level: interval, method: 'gaussian', multiplier: normalQuantile((1 + interval) / 2) }
        : interval;
    const z = spec.multiplier;
    const s2 = epistemicScale * epistemicScale;
    const mean = new Float64Array(n);
    const epistemicStd = new Float64Array(n);
    const alea = this.varianceSum ? new Float64Array(n) : aleatoricStd;
    const std = new Float64Array(n);
    const lower = new Float64Array(n);
    const upper = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const m = this.sum[i]! / T;
      mean[i] = this.shift[i]! + m;
      const variance = s2 * (T > 1 ? Math.max(0, (this.sumSq[i]! - T * m * m) / (T - 1)) : 0);
      epistemicStd[i] = Math.sqrt(variance);
      const floor = aleatoricStd[i]!;
      const aleaVar = this.varianceSum ? this.varianceSum[i]! / T + floor * floor : floor * floor;
      if (this.varianceSum) alea[i] = Math.sqrt(aleaVar);
      std[i] = Math.sqrt(variance + aleaVar);
      lower[i] = mean[i]! - z * std[i]!;
      upper[i] = mean[i]! + z * std[i]!;
    }
    return makeStats(
      'regression',
      { rows: this.rows, width: this.outputs, samples: T, level: spec.level, intervalMethod: spec.method },
      { mean, std, epistemicStd, aleatoricStd: alea, lower, upper },
      this.raw,
    ) as RegressionStats;
  }
}

export class ClassificationAccumulator {
  private readonly probSum: Float64Array;
  private readonly entropySum: Float64Array;
  private readonly votes: Int32Array;
  private readonly p: Float64Array;
  private seen = 0;
  private readonly raw?: Float32Array;

  constructor(
    private readonly rows: number,
    private readonly classes: number,
    samples: number,
    keepSamples: boolean,
    /** true when the model outputs logits (softmax is applied here), false for probabilities */
    private readonly logits: boolean,
    /** Every sample's logits (or log-probabilities) are divided by it before the softmax. */
    private readonly temperature = 1,
  ) {
    this.probSum = new Float64Array(rows * classes);
    this.entropySum = new Float64Array(rows);
    this.votes = new Int32Array(rows * classes);
    this.p = new Float64Array(classes);
    if (keepSamples) this.raw = new Float32Array(samples * rows * classes);
  }

  /** Like RegressionAccumulator.add: this request's rows are rowOffset … of batchRows per sample. */
  add(out: Float32Array, chunkSamples: number, batchRows = this.rows, rowOffset = 0): void {
    const { rows, classes: K, p } = this;
    for (let t = 0; t < chunkSamples; t++) {
      for (let i = 0; i < rows; i++) {
        const o = (t * batchRows + rowOffset + i) * K;
        toProbabilities(out, o, K, this.logits, p, this.temperature);
        let best = 0;
        for (let k = 0; k < K; k++) {
          this.probSum[i * K + k]! += p[k]!;
          if (p[k]! > p[best]!) best = k;
        }
        this.entropySum[i]! += entropy(p, 0, K);
        this.votes[i * K + best]!++;
        if (this.raw) for (let k = 0; k < K; k++) this.raw[(this.seen + t) * rows * K + i * K + k] = p[k]!;
      }
    }
    this.seen += chunkSamples;
  }

  finish(): ClassificationStats {
    const { rows, classes: K } = this;
    const T = this.seen;
    const probabilities = new Float64Array(rows * K);
    const label = new Int32Array(rows);
    const ent = new Float64Array(rows);
    const mi = new Float64Array(rows);
    const vr = new Float64Array(rows);
    for (let i = 0; i < rows; i++) {
      let best = 0;
      let modal = 0;
      for (let k = 0; k < K; k++) {
        probabilities[i * K + k] = this.probSum[i * K + k]! / T;
        if (probabilities[i * K + k]! > probabilities[i * K + best]!) best = k;
        modal = Math.max(modal, this.votes[i * K + k]!);
      }
      label[i] = best;
      ent[i] = entropy(probabilities, i * K, K);
      // clamp rounding noise: MI is non-negative by Jensen's inequality
      mi[i] = Math.max(0, ent[i]! - this.entropySum[i]! / T);
      vr[i] = 1 - modal / T;
    }
    return makeStats(
      'classification',
      { rows, width: K, samples: T },
      { label, probabilities, entropy: ent, mutualInformation: mi, variationRatio: vr },
      this.raw,
    ) as ClassificationStats;
  }
}

/**
 * Softmax of out[o..o+K) / temperature into p; for a model that gives probabilities, softmax(log p /
 * temperature), i.e. p^(1/temperature) normalised (negative values count as 0; all 0 → uniform).
 */
export function toProbabilities(
  out: ArrayLike<number>,
  o: number,
  K: number,
  logits: boolean,
  p: Float64Array,
  temperature = 1,
): void {
  if (logits) {
    const inv = 1 / temperature;
    let max = -Infinity;
    for (let k = 0; k < K; k++) max = Math.max(max, out[o + k]!);
    let s = 0;
    for (let k = 0; k < K; k++) {
      p[k] = Math.exp((out[o + k]! - max) * inv);
      s += p[k]!;
    }
    for (let k = 0; k < K; k++) p[k]! /= s;
  } else if (temperature === 1) {
    let s = 0;
    for (let k = 0; k < K; k++) s += Math.max(0, out[o + k]!);
    for (let k = 0; k < K; k++) p[k] = s > 0 ? Math.max(0, out[o + k]!) / s : 1 / K;
  } else {
    let max = 0;
    for (let k = 0; k < K; k++) max = Math.max(max, out[o + k]!);
    if (!(max > 0)) {
      p.fill(1 / K, 0, K);
      return;
    }
    // (p/max)^(1/T): the largest is 1, so no temperature can overflow or underflow them all
    const inv = 1 / temperature;
    let s = 0;
    for (let k = 0; k < K; k++) {
      const v = Math.max(0, out[o + k]!) / max;
      p[k] = v > 0 ? Math.pow(v, inv) : 0;
      s += p[k]!;
    }
    for (let k = 0; k < K; k++) p[k]! /= s;
  }
}
