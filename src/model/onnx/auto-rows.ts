/**
 * `samples: "auto"` with per-row stopping (issue 22) for tabular models: every row has its own sample
 * count in the request's accumulator (addRow) and its own mask stream (masks.ts rowSeed), all live rows are checked at the same sample
 * counts (stopping.ts nextAutoCheck), and a row within tolerance leaves at that check with its own T;
 * later runs feed onnxruntime only the rows still going. With one live dropout, row i's answer is exactly
 * that of a one-row "auto" request of seed rowSeed(seed, i) (row 0: the seed itself), whatever its
 * neighbours; with several, a run fills each dropout's masks in turn, so a row's masks depend on the
 * runs' sizes and the answer is the same for the same seed and request.
 */
import { CancelledError } from '../errors.js';
import type { McOptions } from '../model.js';
import type { McStats } from '../../uncertainty/record.js';
import { AUTO_RUN_EXTRA_ROW_SAMPLES, addCheckedRows, autoPlan } from '../../uncertainty/stopping.js';
import { MaskStream, rowSeed } from './masks.js';
import { type GraphIo, type MaskBuffers, type McGraphSession, runMcChunk } from './run.js';

/** The request's accumulator, row by row (RegressionAccumulator or ClassificationAccumulator behind the model's settings). */
export interface RowAccumulator {
  /** Add samples of batch row `k` of a sample-major batch of `batchRows` rows to the request's row `row`. */
  addRow(out: Float32Array, samples: number, batchRows: number, k: number, row: number, logVar?: Float32Array): void;
  /** Row `row`'s worst MC error so far (stopping.ts). */
  rowError(row: number): number;
  /** The record, each row with its own samples. */
  finish(): McStats;
}

/** What the sampler needs of the model. */
export interface RowsContext {
  io: GraphIo;
  graph: McGraphSession;
  maskBuffers: MaskBuffers;
  maxRunRows: number;
  /** A fresh accumulator of `rows` rows for at most `samples` samples each. */
  accumulator(rows: number, samples: number): RowAccumulator;
}

/**
 * The record of an "auto" request (`opts.tolerance` set) over `rows` validated rows with mask seed `seed`:
 * each row's samples in `rowSamples` when they differ. With `opts.returnSamples` no row stops before all
 * may (the raw samples are sample-major, one T for all), still with each row's own masks.
 */
export async function sampleRows(
  ctx: RowsContext,
  x: Float32Array,
  rows: number,
  opts: McOptions,
  seed: number,
): Promise<McStats> {
  const T = opts.samples;
  const f = ctx.io.features;
  const acc = ctx.accumulator(rows, T);
  const streams = Array.from({ length: rows }, (_, i) => new MaskStream(rowSeed(seed, i)));
  let going = Array.from({ length: rows }, (_, i) => i);
  let xs = x;
  const plan = autoPlan(true, T);
  const maskBufs = ctx.maskBuffers.take(Math.min(T * rows, Math.max(rows, ctx.maxRunRows)));
  const lend = ctx.io.masks.length === 1;
  let done = 0;
  try {
    while (done < T && !plan.stopped) {
      if (opts.signal?.aborted) throw new CancelledError(done, T);
      const B = going.length;
      const s = Math.min(Math.max(1, Math.min(T, Math.floor(ctx.maxRunRows / B))), plan.end - done);
      const live = going.map((i) => streams[i]!);
      const ones = live.map(() => 1);
      let lent: Float32Array | null = null;
      const run = await runMcChunk(ctx.io, ctx.graph, xs, maskBufs, s, B, (buf, ratio, rowSize) => {
        const masks = MaskStream.fillBatch(live, ones, s, rowSize, ratio, buf, lend);
        if (masks !== buf) lent = masks;
        return masks;
      }).finally(() => {
        if (lent) MaskStream.release(lent);
      });
      const state = { live: new Uint8Array(B).fill(1), together: !!opts.returnSamples };
      const at = { done, maxSamples: T, tolerance: opts.tolerance, extraRowSamples: AUTO_RUN_EXTRA_ROW_SAMPLES };
      done = addCheckedRows(
        plan,
        { out: run.out, logVar: run.logVar, samples: s },
        at,
        state,
        (k, out, seg, lv) => acc.addRow(out, seg, B, k, going[k]!, lv),
        (k) => acc.rowError(going[k]!),
      );
      if (state.live.includes(0)) {
        going = going.filter((_, k) => state.live[k]);
        xs = gatherRows(x, going, f);
      }
    }
  } finally {
    ctx.maskBuffers.give(maskBufs);
  }
  return acc.finish();
}

/** The rows `which` of x (rows × features), one after another. */
function gatherRows(x: Float32Array, which: readonly number[], features: number): Float32Array {
  const out = new Float32Array(which.length * features);
  for (let k = 0; k < which.length; k++)
    out.set(x.subarray(which[k]! * features, (which[k]! + 1) * features), k * features);
  return out;
}
