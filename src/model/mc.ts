/**
 * Monte Carlo dropout statistics, accumulated in float64 chunk by chunk so that T × N samples never
 * need to be held at once (unless raw samples are asked for).
 *
 * Chunk layout: a run over `s` samples of N rows returns s·N rows ordered sample-major: row t·N + i is
 * sample t of input row i.
 *
 * Regression (per row i, output k), with T samples ŷ_t:
 *   mean = (1/T) Σ ŷ_t;  epistemic_std = √(Σ (ŷ_t − mean)² / (T − 1));
 *   std = √(epistemic_std² + aleatoric_std²)   (Gal & Ghahramani 2016, eq. 8: τ⁻¹ + sample variance);
 *   interval = mean ± z·std with z = Φ⁻¹((1 + level)/2), the central interval of N(mean, std²).
 * Classification (per row), with p_t = softmax(logits_t):
 *   probabilities = p̄ = (1/T) Σ p_t;  entropy = H(p̄);  mutual_information = H(p̄) − (1/T) Σ H(p_t) ≥ 0
 *   (BALD, Houlsby et al. 2011);  variation_ratio = 1 − (count of the modal label)/T.
 */
import { entropy, normalQuantile } from '../util/stats.js';

export interface RegressionStats {
  kind: 'regression';
  rows: number;
  outputs: number;
  samples: number;
  level: number;
  /** rows × outputs each */
  mean: Float64Array;
  epistemicStd: Float64Array;
  std: Float64Array;
  lower: Float64Array;
  upper: Float64Array;
  /** per output */
  aleatoricStd: Float64Array;
  /** samples × rows × outputs, when asked for */
  raw?: Float32Array;
}

export interface ClassificationStats {
  kind: 'classification';
  rows: number;
  classes: number;
  samples: number;
  /** rows × classes */
  probabilities: Float64Array;
  label: Int32Array;
  entropy: Float64Array;
  mutualInformation: Float64Array;
  variationRatio: Float64Array;
  /** samples × rows × classes (probabilities), when asked for */
  raw?: Float32Array;
}

export type McStats = RegressionStats | ClassificationStats;

export class RegressionAccumulator {
  private readonly shift: Float64Array;
  private readonly sum: Float64Array;
  private readonly sumSq: Float64Array;
  private seen = 0;
  private readonly raw?: Float32Array;

  constructor(
    private readonly rows: number,
    private readonly outputs: number,
    samples: number,
    keepSamples: boolean,
  ) {
    const n = rows * outputs;
    this.shift = new Float64Array(n);
    this.sum = new Float64Array(n);
    this.sumSq = new Float64Array(n);
    if (keepSamples) this.raw = new Float32Array(samples * n);
  }

  /**
   * Add `chunkSamples` samples from a sample-major output of chunkSamples × batchRows rows, of which this
   * request's rows are rowOffset … rowOffset + rows − 1 in every sample (a coalesced run holds several
   * requests; alone, batchRows = rows and rowOffset = 0).
   */
  add(out: Float32Array, chunkSamples: number, batchRows = this.rows, rowOffset = 0): void {
    const n = this.rows * this.outputs;
    const stride = batchRows * this.outputs;
    const first = rowOffset * this.outputs;
    const { shift, sum, sumSq, raw } = this;
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
    }
    this.seen += chunkSamples;
  }

  finish(aleatoricStd: ArrayLike<number>, level: number): RegressionStats {
    const T = this.seen;
    const n = this.rows * this.outputs;
    const z = normalQuantile((1 + level) / 2);
    const mean = new Float64Array(n);
    const epistemicStd = new Float64Array(n);
    const std = new Float64Array(n);
    const lower = new Float64Array(n);
    const upper = new Float64Array(n);
    const alea = Float64Array.from({ length: this.outputs }, (_, k) => aleatoricStd[k] ?? aleatoricStd[0] ?? 0);
    for (let i = 0; i < n; i++) {
      const m = this.sum[i]! / T;
      mean[i] = this.shift[i]! + m;
      const variance = T > 1 ? Math.max(0, (this.sumSq[i]! - T * m * m) / (T - 1)) : 0;
      epistemicStd[i] = Math.sqrt(variance);
      const a = alea[i % this.outputs]!;
      std[i] = Math.sqrt(variance + a * a);
      lower[i] = mean[i]! - z * std[i]!;
      upper[i] = mean[i]! + z * std[i]!;
    }
    return { kind: 'regression', rows: this.rows, outputs: this.outputs, samples: T, level, mean, epistemicStd, std, lower, upper, aleatoricStd: alea, ...(this.raw ? { raw: this.raw } : {}) };
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
        toProbabilities(out, o, K, this.logits, p);
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
    return { kind: 'classification', rows, classes: K, samples: T, probabilities, label, entropy: ent, mutualInformation: mi, variationRatio: vr, ...(this.raw ? { raw: this.raw } : {}) };
  }
}

/** Softmax of out[o..o+K) into p (or a copy normalised to sum 1 when the model gives probabilities). */
export function toProbabilities(out: ArrayLike<number>, o: number, K: number, logits: boolean, p: Float64Array): void {
  if (logits) {
    let max = -Infinity;
    for (let k = 0; k < K; k++) max = Math.max(max, out[o + k]!);
    let s = 0;
    for (let k = 0; k < K; k++) {
      p[k] = Math.exp(out[o + k]! - max);
      s += p[k]!;
    }
    for (let k = 0; k < K; k++) p[k]! /= s;
  } else {
    let s = 0;
    for (let k = 0; k < K; k++) s += Math.max(0, out[o + k]!);
    for (let k = 0; k < K; k++) p[k] = s > 0 ? Math.max(0, out[o + k]!) / s : 1 / K;
  }
}

/**
 * Statistics of several requests in one Float64Array, so that a worker hands a batch's results back as
 * one transferred buffer: structured-cloning six typed arrays per request cost the main thread more than
 * the Monte Carlo itself. unpackStats gives views into the buffer (raw samples are copied back to
 * float32). Layout per result: kind (0 regression, 1 classification), rows, width, samples, level, seed,
 * has raw, then the arrays in the order of the interfaces above (labels as floats), then raw samples.
 */
export function packStats(results: readonly { stats: McStats; seed: number }[]): Float64Array {
  let size = 0;
  for (const { stats: s } of results) {
    const n = s.rows * (s.kind === 'regression' ? s.outputs : s.classes);
    size += 7 + (s.kind === 'regression' ? 5 * n + s.outputs : n + 4 * s.rows) + (s.raw ? s.raw.length : 0);
  }
  const data = new Float64Array(size);
  let o = 0;
  const put = (a: ArrayLike<number>): void => {
    for (let i = 0; i < a.length; i++) data[o++] = a[i]!;
  };
  for (const { stats: s, seed } of results) {
    const reg = s.kind === 'regression';
    put([reg ? 0 : 1, s.rows, reg ? s.outputs : s.classes, s.samples, reg ? s.level : 0, seed, s.raw ? 1 : 0]);
    if (reg) for (const a of [s.mean, s.epistemicStd, s.std, s.lower, s.upper, s.aleatoricStd]) put(a);
    else for (const a of [s.probabilities, s.label, s.entropy, s.mutualInformation, s.variationRatio]) put(a);
    if (s.raw) put(s.raw);
  }
  return data;
}

export function unpackStats(data: Float64Array): { stats: McStats; seed: number }[] {
  const out: { stats: McStats; seed: number }[] = [];
  let o = 0;
  const take = (n: number): Float64Array => data.subarray(o, (o += n));
  while (o < data.length) {
    const [kind, rows, width, samples, level, seed, hasRaw] = Array.from(take(7));
    const n = rows! * width!;
    if (kind === 0) {
      const [mean, epistemicStd, std, lower, upper] = [take(n), take(n), take(n), take(n), take(n)];
      const stats: RegressionStats = { kind: 'regression', rows: rows!, outputs: width!, samples: samples!, level: level!, mean, epistemicStd, std, lower, upper, aleatoricStd: take(width!) };
      if (hasRaw) stats.raw = Float32Array.from(take(samples! * n));
      out.push({ stats, seed: seed! });
    } else {
      const probabilities = take(n);
      const label = Int32Array.from(take(rows!));
      const stats: ClassificationStats = { kind: 'classification', rows: rows!, classes: width!, samples: samples!, probabilities, label, entropy: take(rows!), mutualInformation: take(rows!), variationRatio: take(rows!) };
      if (hasRaw) stats.raw = Float32Array.from(take(samples! * n));
      out.push({ stats, seed: seed! });
    }
  }
  return out;
}
