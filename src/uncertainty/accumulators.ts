/**
 * The Monte Carlo accumulators: a run's sample outputs in, chunk by chunk, the statistics record out.
 * They keep running moments (moments.ts) and the samples themselves only when the record's raw samples
 * are asked for or a statistic served to the request needs them; finish() computes every statistic
 * served to the request (statistics.ts servedTable: those served always and the on-request ones asked for). Format-neutral: any model that yields sample outputs can use these.
 *
 * Chunk layout: a run over `s` samples of N rows returns s·N rows ordered sample-major: row t·N + i is
 * sample t of input row i.
 */
import { gaussianInterval, type IntervalSpec } from './intervals.js';
import { type LogVarianceBounds, MomentSums } from './moments.js';
import { entropy, toProbabilities } from './probabilities.js';
import { quantileInPlace } from './quantiles.js';
import { probabilityError, regressionError } from './stopping.js';
import { type ClassificationStats, makeStatsInOrder, type RegressionStats, allocateStats } from './record.js';
import {
  CLASSIFICATION_STATS,
  type ClassificationRow,
  type ClassificationStatDescriptor,
  needsSamples,
  REGRESSION_STATS,
  servedTable,
  type RegressionElement,
  type RegressionStatDescriptor,
} from './statistics.js';

export class RegressionAccumulator {
  private readonly moments: MomentSums;
  /** samples × rows × outputs, sample-major: for the record's raw samples or a statistic that needs them. */
  private readonly kept?: Float32Array;
  /** The statistics this request is served (servedTable). */
  private readonly table: readonly RegressionStatDescriptor[];

  /**
   * `keepSamples`: the record carries the raw samples. `logVariance`: the clamp bounds of a
   * heteroscedastic model's log-variance output (add() then needs that output with every chunk); absent
   * or null for a homoscedastic model. `samples`: the most samples add() will get (the kept samples'
   * room). `trackError`: keep what worstError() needs (sequential stopping). `statistics`: the record keys
   * of the on-request statistics asked for (none: only those served always; the samples are then kept
   * only for `keepSamples`).
   */
  constructor(
    private readonly rows: number,
    private readonly outputs: number,
    samples: number,
    private readonly keepSamples: boolean,
    logVariance: LogVarianceBounds | null = null,
    private readonly trackError = false,
    statistics?: readonly string[],
  ) {
    this.moments = new MomentSums(rows * outputs, logVariance, trackError);
    this.table = servedTable<RegressionStatDescriptor>(REGRESSION_STATS, 'regression', statistics);
    if (keepSamples || needsSamples(this.table)) this.kept = new Float32Array(samples * rows * outputs);
  }

  /**
   * Add `chunkSamples` samples from a sample-major output of chunkSamples × batchRows rows, of which this
   * request's rows are rowOffset … rowOffset + rows − 1 in every sample (a coalesced run holds several
   * requests; alone, batchRows = rows and rowOffset = 0). `logVar`: the log-variance output of the same
   * run, same layout (heteroscedastic models).
   */
  add(out: Float32Array, chunkSamples: number, batchRows = this.rows, rowOffset = 0, logVar?: Float32Array): void {
    const n = this.moments.size;
    const stride = batchRows * this.outputs;
    const first = rowOffset * this.outputs;
    const { moments, kept } = this;
    if (kept) {
      for (let t = 0; t < chunkSamples; t++) {
        const o = t * stride + first;
        const at = (moments.count + t) * n;
        for (let i = 0; i < n; i++) kept[at + i] = out[o + i]!;
      }
    }
    moments.add(out, first, logVar, chunkSamples, stride);
  }

  /**
   * Add `chunkSamples` samples of batch row `k` (of batchRows per sample) to this request's row `row`
   * only: rows that stop apart (samples "auto", each row its own count; finish() then says each row's).
   */
  addRow(
    out: Float32Array,
    chunkSamples: number,
    batchRows: number,
    k: number,
    row: number,
    logVar?: Float32Array,
  ): void {
    const K = this.outputs;
    const { moments, kept } = this;
    const n = moments.size;
    const stride = batchRows * K;
    if (kept) {
      const done = moments.countOf(row * K);
      for (let t = 0; t < chunkSamples; t++)
        for (let j = 0; j < K; j++) kept[(done + t) * n + row * K + j] = out[t * stride + k * K + j]!;
    }
    moments.addValues(out, k * K, logVar, chunkSamples, stride, row * K, K);
  }

  /** worstError over one row's outputs (rows that stop apart). */
  rowError(row: number, aleatoricStd: Float64Array, epistemicScale = 1): number {
    return this.worstOf(row * this.outputs, (row + 1) * this.outputs, aleatoricStd, epistemicScale);
  }

  /** The served aleatoric variance of value i: σ², plus the MC mean predicted variance when heteroscedastic. */
  private aleatoricVariance(i: number, floor: number): number {
    return this.moments.heteroscedastic ? this.moments.noiseVariance(i) + floor * floor : floor * floor;
  }

  /**
   * The largest Monte Carlo error, relative to the served predictive std, of any row and output's mean
   * or std after the samples so far (stopping.ts regressionError); needs `trackError`. Arguments as
   * finish()'s.
   */
  worstError(aleatoricStd: Float64Array, epistemicScale = 1): number {
    return this.worstOf(0, this.moments.size, aleatoricStd, epistemicScale);
  }

  private worstOf(from: number, to: number, aleatoricStd: Float64Array, epistemicScale: number): number {
    const { moments } = this;
    if (!this.trackError) throw new Error('worstError needs an accumulator made with trackError');
    let worst = 0;
    for (let i = from; i < to; i++) {
      const e = regressionError(
        moments.countOf(i),
        moments.variance(i),
        moments.kurtosis(i),
        epistemicScale,
        this.aleatoricVariance(i, aleatoricStd[i]!),
      );
      if (!(e <= worst)) worst = e;
    }
    return worst;
  }

  /**
   * `aleatoricStd`: the card's σ per row and output (rows × outputs): the noise of a homoscedastic model,
   * the floor of a heteroscedastic one (whose served aleatoric_std is √(MC mean of the predicted
   * variance + σ²), per row). `interval`: the resolved interval (a bare level means gaussian).
   * `epistemicScale` multiplies the MC std of the mean.
   */
  finish(aleatoricStd: Float64Array, interval: number | IntervalSpec, epistemicScale = 1): RegressionStats {
    const { moments, kept, rows, outputs } = this;
    const T = moments.count;
    const n = moments.size;
    if (aleatoricStd.length !== n)
      throw new Error(`aleatoric_std: ${aleatoricStd.length} values for ${rows} rows × ${outputs} outputs`);
    const spec = typeof interval === 'number' ? gaussianInterval(interval) : interval;
    const s2 = epistemicScale * epistemicScale;
    const { table } = this;
    const values = allocateStats(table, rows, outputs);
    const e = new Element(spec.multiplier, T, n, needsSamples(table) ? kept! : null, epistemicScale);
    for (let i = 0; i < n; i++) {
      e.at(i, moments.countOf(i));
      const variance = s2 * moments.variance(i);
      const floor = aleatoricStd[i]!;
      const aleaVar = this.aleatoricVariance(i, floor);
      e.mean = moments.mean(i);
      e.epistemicStd = Math.sqrt(variance);
      e.aleatoricStd = moments.heteroscedastic ? Math.sqrt(aleaVar) : floor;
      e.std = Math.sqrt(variance + aleaVar);
      for (let j = 0; j < table.length; j++) values[j]![i] = table[j]!.value(e);
    }
    const rowSamples = moments.perValue
      ? Int32Array.from({ length: rows }, (_, r) => moments.countOf(r * outputs))
      : undefined;
    return makeStatsInOrder(
      'regression',
      { rows, width: outputs, samples: T, level: spec.level, intervalMethod: spec.method, rowSamples },
      table,
      values,
      this.keepSamples ? firstSamples(kept!, T * n) : undefined,
    ) as RegressionStats;
  }
}

/** One row and output in finish(), reused for all of them (no allocation per value). */
class Element implements RegressionElement {
  /** This element's samples (its row's count). */
  samples: number;
  mean = 0;
  epistemicStd = 0;
  aleatoricStd = 0;
  std = 0;
  /** The value this element is (row · outputs + output). */
  private index = 0;
  /** Whether `column` holds this element's samples (copied on the first quantile asked for). */
  private copied = false;
  private readonly column: Float64Array;

  constructor(
    readonly multiplier: number,
    samples: number,
    /** Values per sample. */
    private readonly size: number,
    /** samples × size, sample-major; null when no statistic needs them. */
    private readonly kept: Float32Array | null,
    /** The card's epistemic_scale s: quantiles are of mean + s·(ŷ_t − mean), as epistemic_std is s × their std. */
    private readonly scale = 1,
  ) {
    this.samples = samples;
    this.column = new Float64Array(kept ? samples : 0);
  }

  at(index: number, samples: number): void {
    this.index = index;
    this.samples = samples;
    this.copied = false;
  }

  quantile(q: number): number {
    const { kept, size, index } = this;
    if (!kept) throw new Error('a statistic needs the samples but does not say so (needs: "samples")');
    const column = this.samples === this.column.length ? this.column : this.column.subarray(0, this.samples);
    if (!this.copied) {
      for (let t = 0; t < column.length; t++) column[t] = kept[t * size + index]!;
      this.copied = true;
    }
    // selection reorders the copy, which leaves it a copy of the same values for the next quantile
    const raw = quantileInPlace(column, q);
    return this.scale === 1 ? raw : this.mean + this.scale * (raw - this.mean);
  }
}

/** The first `length` values of the kept samples (a copy when the room was for more samples than were drawn). */
function firstSamples(kept: Float32Array, length: number): Float32Array {
  return kept.length === length ? kept : kept.slice(0, length);
}

export class ClassificationAccumulator {
  private readonly probSum: Float64Array;
  /** Σp² per row and class, for worstError(); null unless `trackError`. */
  private readonly probSqSum: Float64Array | null;
  private readonly entropySum: Float64Array;
  private readonly votes: Int32Array;
  private readonly p: Float64Array;
  /** Samples added (with addRow, the most any row has). */
  private seen = 0;
  /** Per row, its samples: once addRow() is used (null until then: every row has `seen`). */
  private rowSeen: Int32Array | null = null;
  /** samples × rows × classes probabilities: for the record's raw samples or a statistic that needs them. */
  private readonly kept?: Float32Array;
  /** The statistics this request is served (servedTable). */
  private readonly table: readonly ClassificationStatDescriptor[];

  constructor(
    private readonly rows: number,
    private readonly classes: number,
    samples: number,
    private readonly keepSamples: boolean,
    /** true when the model outputs logits (softmax is applied here), false for probabilities */
    private readonly logits: boolean,
    /** Every sample's logits (or log-probabilities) are divided by it before the softmax. */
    private readonly temperature = 1,
    /** Keep what worstError() needs (sequential stopping). */
    trackError = false,
    /** As RegressionAccumulator's: the on-request statistics asked for. */
    statistics?: readonly string[],
  ) {
    this.table = servedTable<ClassificationStatDescriptor>(CLASSIFICATION_STATS, 'classification', statistics);
    this.probSum = new Float64Array(rows * classes);
    this.probSqSum = trackError ? new Float64Array(rows * classes) : null;
    this.entropySum = new Float64Array(rows);
    this.votes = new Int32Array(rows * classes);
    this.p = new Float64Array(classes);
    if (keepSamples || needsSamples(this.table)) this.kept = new Float32Array(samples * rows * classes);
  }

  /** Like RegressionAccumulator.add: this request's rows are rowOffset … of batchRows per sample. */
  add(out: Float32Array, chunkSamples: number, batchRows = this.rows, rowOffset = 0): void {
    if (this.rowSeen) throw new Error('ClassificationAccumulator: add() after addRow(); add to each row with addRow()');
    for (let i = 0; i < this.rows; i++) this.addSamples(out, chunkSamples, batchRows, rowOffset + i, i, this.seen);
    this.seen += chunkSamples;
  }

  /** Like RegressionAccumulator.addRow: batch row k's samples to row `row` only (each row its own count). */
  addRow(out: Float32Array, chunkSamples: number, batchRows: number, k: number, row: number): void {
    if (!this.rowSeen) this.rowSeen = new Int32Array(this.rows).fill(this.seen);
    this.addSamples(out, chunkSamples, batchRows, k, row, this.rowSeen[row]!);
    this.rowSeen[row]! += chunkSamples;
    if (this.rowSeen[row]! > this.seen) this.seen = this.rowSeen[row]!;
  }

  /** Samples added to row i. */
  private seenOf(i: number): number {
    return this.rowSeen ? this.rowSeen[i]! : this.seen;
  }

  private addSamples(
    out: Float32Array,
    chunkSamples: number,
    batchRows: number,
    k: number,
    i: number,
    done: number,
  ): void {
    const { rows, classes: K, p, kept } = this;
    for (let t = 0; t < chunkSamples; t++) {
      const o = (t * batchRows + k) * K;
      toProbabilities(out, o, K, this.logits, p, this.temperature);
      let best = 0;
      for (let c = 0; c < K; c++) {
        this.probSum[i * K + c]! += p[c]!;
        if (p[c]! > p[best]!) best = c;
      }
      if (this.probSqSum) for (let c = 0; c < K; c++) this.probSqSum[i * K + c]! += p[c]! * p[c]!;
      this.entropySum[i]! += entropy(p, 0, K);
      this.votes[i * K + best]!++;
      if (kept) for (let c = 0; c < K; c++) kept[(done + t) * rows * K + i * K + c] = p[c]!;
    }
  }

  /**
   * The largest standard error of any row and class's mean probability after the samples so far
   * (stopping.ts probabilityError); needs `trackError`.
   */
  worstError(): number {
    return this.worstOf(0, this.rows);
  }

  /** worstError over one row's classes (rows that stop apart). */
  rowError(row: number): number {
    return this.worstOf(row, row + 1);
  }

  private worstOf(from: number, to: number): number {
    const sq = this.probSqSum;
    if (!sq) throw new Error('worstError needs an accumulator made with trackError');
    const K = this.classes;
    let worst = 0;
    for (let i = from; i < to; i++)
      for (let j = i * K; j < (i + 1) * K; j++) {
        const e = probabilityError(this.seenOf(i), this.probSum[j]!, sq[j]!);
        if (!(e <= worst)) worst = e;
      }
    return worst;
  }

  finish(): ClassificationStats {
    const { rows, classes: K, kept } = this;
    const T = this.seen;
    const { table } = this;
    const values = allocateStats(table, rows, K);
    const r: ClassificationRow = {
      probabilities: new Float64Array(K),
      label: 0,
      entropy: 0,
      meanEntropy: 0,
      modalVotes: 0,
      samples: T,
      sampled: needsSamples(table) ? kept! : new Float32Array(0),
      row: 0,
    };
    for (let i = 0; i < rows; i++) {
      const Ti = this.seenOf(i);
      r.samples = Ti;
      let best = 0;
      let modal = 0;
      for (let k = 0; k < K; k++) {
        r.probabilities[k] = this.probSum[i * K + k]! / Ti;
        if (r.probabilities[k]! > r.probabilities[best]!) best = k;
        modal = Math.max(modal, this.votes[i * K + k]!);
      }
      r.label = best;
      r.entropy = entropy(r.probabilities, 0, K);
      r.meanEntropy = this.entropySum[i]! / Ti;
      r.modalVotes = modal;
      r.row = i;
      for (let j = 0; j < table.length; j++) {
        const d = table[j]!;
        const a = values[j]!;
        if (d.shape === 'row') a[i] = d.value(r, 0);
        else for (let k = 0; k < K; k++) a[i * K + k] = d.value(r, k);
      }
    }
    return makeStatsInOrder(
      'classification',
      { rows, width: K, samples: T, ...(this.rowSeen ? { rowSamples: this.rowSeen } : {}) },
      table,
      values,
      this.keepSamples ? firstSamples(kept!, T * rows * K) : undefined,
    ) as ClassificationStats;
  }
}
