/**
 * What crosses the thread boundary between the main thread and an MC worker for a coalesced batch,
 * packed into typed arrays that are transferred instead of cloned (the way back is packStats, the
 * statistics codec of src/uncertainty/record-wire.ts). Kept apart from mc-worker.ts, which has the worker's
 * start-up side effects.
 */
import type { InputTensor, McJob, McOptions, TensorMcResult, TensorOutput } from '../model/model.js';
import { packStats, unpackStats } from '../uncertainty/record-wire.js';
import { INTERVAL_METHODS } from '../model/uncertainty.js';
import { maskStatistics, statisticsMask } from '../uncertainty/statistics.js';

/**
 * Several coalesced requests in one run (Model.sampleBatch), packed for a cheap hand-off: the
 * rows of every request concatenated (transferred), and per request [rows, interval, seed or −1,
 * return samples 0/1, interval method (−1 the model's default, else its index in INTERVAL_METHODS), the
 * on-request statistics asked for (statisticsMask)].
 * The answer is packStats of the results (transferred back).
 */
export interface McBatchTask {
  model: string;
  samples: number;
  x: Float32Array;
  meta: Float64Array;
}

/** Values per request in McBatchTask.meta. */
const META = 6;

export function packBatch(
  model: string,
  jobs: readonly McJob[],
  features: number,
): { task: McBatchTask; transfer: ArrayBuffer[] } {
  const rows = jobs.reduce((n, j) => n + j.rows, 0);
  const x = new Float32Array(rows * features);
  const meta = new Float64Array(META * jobs.length);
  let at = 0;
  jobs.forEach((j, k) => {
    const n = j.rows * features;
    x.set(j.x.length === n ? j.x : j.x.subarray(0, n), at * features);
    at += j.rows;
    const o = META * k;
    meta[o] = j.rows;
    meta[o + 1] = j.opts.interval;
    meta[o + 2] = j.opts.seed ?? -1;
    meta[o + 3] = j.opts.returnSamples ? 1 : 0;
    meta[o + 4] = j.opts.intervalMethod === undefined ? -1 : INTERVAL_METHODS.indexOf(j.opts.intervalMethod);
    meta[o + 5] = statisticsMask(j.opts.statistics);
  });
  return {
    task: { model, samples: jobs[0]!.opts.samples, x, meta },
    transfer: [x.buffer as ArrayBuffer, meta.buffer as ArrayBuffer],
  };
}

export function unpackBatch(task: McBatchTask, features: number): McJob[] {
  const jobs: McJob[] = [];
  const m = task.meta;
  let at = 0;
  for (let k = 0; k < m.length; k += META) {
    const rows = m[k]!;
    const opts: McOptions = { samples: task.samples, interval: m[k + 1]!, returnSamples: m[k + 3] === 1 };
    const intervalMethod = INTERVAL_METHODS[m[k + 4]!];
    if (intervalMethod) opts.intervalMethod = intervalMethod;
    if (m[k + 2]! >= 0) opts.seed = m[k + 2]!;
    if (m[k + 5] !== 0) opts.statistics = maskStatistics(m[k + 5]!);
    // views into the one transferred array, one after another (sampleBatch runs them without a copy)
    jobs.push({ x: task.x.subarray(at * features, (at + rows) * features), rows, opts });
    at += rows;
  }
  return jobs;
}

/** Cancel flags per worker: a task uses flag id % CANCEL_FLAGS (a worker holds at most two tasks). */
export const CANCEL_FLAGS = 16;

/**
 * The value of a worker's shared cancel flag (an Int32Array of CANCEL_FLAGS over a SharedArrayBuffer,
 * one per worker) that stops task `id`: never 0, the flags' initial value. The pool writes it, the
 * worker's running Model.sample reads it between chunks, with no message to wait for.
 */
export const cancelTag = (id: number): number => (id % 0x7ffffffe) + 1;

/**
 * A tensor model's Monte Carlo request (Model.sampleTensors) for a worker: its input tensors, whose
 * buffers are transferred (a tensor that shares its buffer with another, or is a view into a larger
 * one, is copied first), and its options (structured clone; the signal stays behind).
 */
export interface McTensorTask {
  model: string;
  tensors: InputTensor[];
  rows: number;
  opts: McOptions;
}

export function packTensorTask(
  model: string,
  tensors: readonly InputTensor[],
  rows: number,
  opts: McOptions,
): { task: McTensorTask; transfer: ArrayBuffer[] } {
  const { sent, transfer } = transferable(tensors);
  const { signal: _signal, ...plain } = opts;
  return { task: { model, tensors: sent, rows, opts: plain }, transfer };
}

/** A tensor model's predict for a worker (Model.predictTensors): its input tensors, transferred as McTensorTask's. */
export interface TensorPredictTask {
  model: string;
  predict: InputTensor[];
  rows: number;
}

export function packTensorPredictTask(
  model: string,
  tensors: readonly InputTensor[],
  rows: number,
): { task: TensorPredictTask; transfer: ArrayBuffer[] } {
  const { sent, transfer } = transferable(tensors);
  return { task: { model, predict: sent, rows }, transfer };
}

/** The tensors to post and the buffers to transfer: a view or a buffer shared by two tensors is copied first. */
function transferable(tensors: readonly InputTensor[]): { sent: InputTensor[]; transfer: ArrayBuffer[] } {
  const transfer = new Set<ArrayBuffer>();
  const sent = tensors.map((t) => {
    const whole = t.data.byteOffset === 0 && t.data.byteLength === t.data.buffer.byteLength;
    const buffer = t.data.buffer as ArrayBuffer;
    const data = whole && !transfer.has(buffer) && !(buffer instanceof SharedArrayBuffer) ? t.data : t.data.slice();
    transfer.add(data.buffer as ArrayBuffer);
    return { name: t.name, dims: [...t.dims], data };
  });
  return { sent, transfer: [...transfer] };
}

/** A tensor predict answer for the way back: [rank, ...dims, ...values] (float32 values are exact in float64). */
export function packTensorOutput(out: TensorOutput): Float64Array {
  const packed = new Float64Array(1 + out.dims.length + out.data.length);
  packed[0] = out.dims.length;
  packed.set(out.dims, 1);
  packed.set(out.data, 1 + out.dims.length);
  return packed;
}

export function unpackTensorOutput(data: Float64Array): TensorOutput {
  const rank = data[0]!;
  return { dims: Array.from(data.subarray(1, 1 + rank)), data: Float32Array.from(data.subarray(1 + rank)) };
}

/**
 * A tensor MC answer as one Float64Array for the way back: [rank, ...outputDims, ...packStats([result])].
 */
export function packTensorResult(r: TensorMcResult): Float64Array {
  const stats = packStats([r]);
  const out = new Float64Array(1 + r.outputDims.length + stats.length);
  out[0] = r.outputDims.length;
  out.set(r.outputDims, 1);
  out.set(stats, 1 + r.outputDims.length);
  return out;
}

export function unpackTensorResult(data: Float64Array): TensorMcResult {
  const rank = data[0]!;
  const outputDims = Array.from(data.subarray(1, 1 + rank));
  const r = unpackStats(data.subarray(1 + rank))[0]!;
  return { ...r, outputDims };
}
