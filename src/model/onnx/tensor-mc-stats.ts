/**
 * A tensor model's Monte Carlo outputs as the uncertainty core's accumulators take them
 * (src/uncertainty/accumulators.ts), laid out as OutputLayout documents: regression, one record row per
 * request row with every output element a record output; classification, one record row per request row
 * and position (the output's non-batch, non-class indices in C order) holding the K classes, so the
 * class axis moves last.
 */
import { ClassificationAccumulator, RegressionAccumulator } from '../../uncertainty/accumulators.js';
import type { McStats } from '../../uncertainty/record.js';
import type { McOptions, Model, OutputLayout, Task } from '../model.js';
import type { IntervalSpec, UncertaintySettings } from '../uncertainty.js';
import { ModelFormatError } from './inspect.js';

/** How one request row's output maps onto record rows: `positions` record rows of `width` values each. */
export interface RecordShape {
  /** Record rows per request row (P; 1 for regression). */
  positions: number;
  /** Values per record row (classes K, or a regression row's output elements). */
  width: number;
  /** Output elements between two classes of one position (1 when the class axis is last). */
  post: number;
}

/** The record shape of an output whose full dims are `dims` (rows first). */
export function recordShape(layout: OutputLayout, dims: readonly number[]): RecordShape {
  const row = dims.slice(1);
  const size = row.reduce((a, b) => a * b, 1);
  const axis = layout.classAxis;
  if (axis === null) return { positions: 1, width: size, post: 1 };
  if (axis < 1 || axis >= dims.length)
    throw new ModelFormatError(`class axis ${axis} is outside the output's dims [${dims.join(', ')}]`);
  const K = dims[axis]!;
  const post = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  return { positions: size / K, width: K, post };
}

/**
 * `batch` output rows (the run's s·n rows, sample-major) in record order: per output row, its positions
 * each with the K classes contiguous. A copy when the class axis is not last, else `out` itself.
 */
export function toRecordOrder(out: Float32Array, batch: number, shape: RecordShape): Float32Array {
  const { positions, width: K, post } = shape;
  if (post === 1) return out;
  const pre = positions / post;
  const rec = new Float32Array(batch * positions * K);
  for (let b = 0; b < batch; b++) {
    const base = b * positions * K;
    for (let i = 0; i < pre; i++)
      for (let k = 0; k < K; k++) {
        const src = base + (i * K + k) * post;
        const dst = base + i * post * K + k;
        for (let j = 0; j < post; j++) rec[dst + j * K] = out[src + j]!;
      }
  }
  return rec;
}

export type TensorAccumulator = RegressionAccumulator | ClassificationAccumulator;

/** What the statistics of a tensor model's request depend on. */
export interface StatsSettings {
  task: Task;
  outputKind: Model['outputKind'];
  uncertainty: UncertaintySettings;
  /** Regression: the card's σ, one value or one per output element of a row (absent: none). */
  aleatoricStd?: readonly number[];
}

/** The accumulator of a request of `records` record rows of `width` values and at most `samples` samples. */
export function tensorAccumulator(
  s: StatsSettings,
  records: number,
  width: number,
  samples: number,
  opts: McOptions,
): TensorAccumulator {
  const trackError = opts.tolerance !== undefined;
  const keep = !!opts.returnSamples;
  return s.task === 'regression'
    ? new RegressionAccumulator(records, width, samples, keep, null, trackError, opts.statistics)
    : new ClassificationAccumulator(
        records,
        width,
        samples,
        keep,
        s.outputKind === 'logits',
        s.uncertainty.temperature,
        trackError,
        opts.statistics,
      );
}

/** The card's σ per record row and output (rows × width): the same for every row. */
function aleatoricStds(s: StatsSettings, rows: number, width: number): Float64Array {
  const sd = s.aleatoricStd ?? [];
  if (sd.length > 1 && sd.length !== width)
    throw new ModelFormatError(`aleatoric_std has ${sd.length} values for ${width} output elements`);
  const out = new Float64Array(rows * width);
  for (let i = 0; i < out.length; i++) out[i] = sd.length > 1 ? sd[i % width]! : (sd[0] ?? 0);
  return out;
}

/** The accumulator's worst Monte Carlo error of a served value so far (stopping.ts). */
export function worstError(s: StatsSettings, acc: TensorAccumulator, rows: number, width: number): number {
  return acc instanceof RegressionAccumulator
    ? acc.worstError(aleatoricStds(s, rows, width), s.uncertainty.epistemicScale)
    : acc.worstError();
}

/** The record of a finished accumulator (regression needs the request's resolved interval). */
export function finishStats(
  s: StatsSettings,
  acc: TensorAccumulator,
  rows: number,
  width: number,
  interval: IntervalSpec | null,
): McStats {
  if (!(acc instanceof RegressionAccumulator)) return acc.finish();
  return acc.finish(aleatoricStds(s, rows, width), interval!, s.uncertainty.epistemicScale);
}
