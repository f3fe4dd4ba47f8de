/**
 * One Monte Carlo run of a tensor model's MC graph (tensor-mc-graph.ts): the inputs of n rows go in
 * once, each frontier tensor is tiled s times along its batch axis in the graph, and every live
 * Dropout's mask is fed in its own shape at the run's batch s·n. And how a request is cut into runs that
 * fit the byte budget.
 */
import type { InputTensor, TensorSpec } from '../model.js';
import { ModelFormatError } from './inspect.js';
import type { OrtSession, Feed } from './ort.js';
import { repeatsInputName } from './rewrite.js';
import type { McPlan } from './tensor-mc-graph.js';
import { dimsAt, feedsOf, sizeOf } from './tensor-mc-shapes.js';

/** Bytes one MC run may use when the runtime options set none (see maxRunBytesOf). */
export const DEFAULT_MAX_RUN_BYTES = 256 * 1024 * 1024;

/** Fills one mask buffer (the request's seeded stream, or ones for the self-check). */
export type MaskFill = (buf: Float32Array, ratio: number) => void;

/** A run's rows (n) and samples (s). */
export interface RunSize {
  rows: number;
  samples: number;
}

/**
 * The largest run of a request of `rows` rows and `T` samples that fits `maxRunBytes`: all the rows and
 * as many samples as fit (n·prefix + s·n·repeated ≤ budget); when one sample of all the rows does not
 * fit, as many rows as fit with one sample. Always at least one row and one sample.
 */
export function runSize(rows: number, T: number, perRow: McPlan['bytesPerRow'], maxRunBytes: number): RunSize {
  const rep = Math.max(1, perRow.repeated);
  const all = Math.floor((maxRunBytes - rows * perRow.prefix) / (rows * rep));
  if (all >= 1) return { rows, samples: Math.min(T, all) };
  return { rows: Math.max(1, Math.min(rows, Math.floor(maxRunBytes / (perRow.prefix + rep)))), samples: 1 };
}

/** Mask buffers of one request, reused by its runs (grown when a run needs more). */
export class MaskBufs {
  private readonly bufs: Float32Array[] = [];

  /** Bytes held. */
  get bytes(): number {
    return this.bufs.reduce((sum, b) => sum + (b?.byteLength ?? 0), 0);
  }

  take(k: number, size: number): Float32Array {
    const have = this.bufs[k];
    if (have && have.length >= size) return have.subarray(0, size);
    this.bufs[k] = new Float32Array(size);
    return this.bufs[k]!;
  }
}

/** The rows r0 … r0 + n − 1 of an input tensor (a view). */
export function rowBlock(t: InputTensor, r0: number, n: number): InputTensor {
  const per = sizeOf(t.dims.slice(1));
  return {
    name: t.name,
    dims: [n, ...t.dims.slice(1)],
    data: t.data.subarray(r0 * per, (r0 + n) * per) as InputTensor['data'],
  };
}

/** What a run needs besides its inputs. */
export interface RunContext {
  session: OrtSession;
  plan: McPlan;
  specs: readonly TensorSpec[];
  outputName: string;
}

/**
 * One run: `samples` samples of the n rows of `inputs` (each input holding exactly those rows). Returns
 * the output's values, s·n rows sample-major (row t·n + i is sample t of row i), and its dims.
 */
export async function runMc(
  ctx: RunContext,
  inputs: readonly InputTensor[],
  samples: number,
  fill: MaskFill,
  bufs: MaskBufs,
): Promise<{ data: Float32Array; dims: number[] }> {
  const n = inputs[0]!.dims[0]!;
  const feeds: Record<string, Feed> = feedsOf(inputs, ctx.specs);
  ctx.plan.tiles.forEach((t, j) => {
    const repeats = new BigInt64Array(t.rank).fill(1n);
    repeats[t.axis] = BigInt(samples);
    feeds[repeatsInputName(j)] = { data: repeats, dims: [t.rank] };
  });
  ctx.plan.masks.forEach((m, k) => {
    const dims = dimsAt(m.law, samples * n);
    const buf = bufs.take(k, sizeOf(dims));
    fill(buf, m.ratio);
    feeds[m.input] = { data: buf, dims };
  });
  const out = (await ctx.session.runTyped(feeds, [ctx.outputName]))[ctx.outputName]!;
  if (out.data instanceof Float32Array) return { data: out.data, dims: out.dims };
  if (out.data instanceof Float64Array) return { data: Float32Array.from(out.data), dims: out.dims };
  throw new ModelFormatError(`output "${ctx.outputName}" is not float32 or float64: Monte Carlo needs real outputs`);
}
