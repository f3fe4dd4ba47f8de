/**
 * The model every format implements (like kserve's Model, python/kserve/kserve/model.py): it knows
 * nothing about protocols, HTTP or JSON shapes. It takes validated float32 rows (rows.ts) and gives raw
 * eval-mode outputs (predict) or a Monte Carlo statistics record (sample, see src/uncertainty/record.ts). The ONNX
 * implementation is src/model/onnx/ (OnnxModel); src/model/formats.ts picks the format of a file.
 * The serving side (src/serving) finds, loads and swaps models (repository.ts) and runs them
 * (dataplane.ts); the protocol codecs (src/server/protocol) turn their answers into /v1 JSON or V2
 * tensors.
 */
import { toProbabilities } from '../uncertainty/probabilities.js';
import type { McStats } from '../uncertainty/record.js';
import type { Task } from '../uncertainty/statistics.js';
import type { IntervalMethod, UncertaintySettings } from './uncertainty.js';

export type { Task } from '../uncertainty/statistics.js';

/** The tensor datatypes a model's inputs and outputs may have (the Open Inference Protocol's names). */
export type Datatype = 'FP32' | 'FP16' | 'FP64' | 'INT64' | 'INT32' | 'BOOL' | 'UINT8';

/**
 * An input or output tensor as clients see it: its datatype as the graph declares it, -1 for the batch
 * dimension (always the first) and for any other dimension the graph leaves free.
 */
export interface TensorSpec {
  name: string;
  datatype: Datatype;
  shape: number[];
}

/**
 * The values of a tensor in the type onnxruntime takes for its datatype: FP32 Float32Array, FP64
 * Float64Array, INT64 BigInt64Array, INT32 Int32Array, BOOL and UINT8 Uint8Array, FP16 Uint16Array (the
 * IEEE half bits).
 */
export type TensorValues = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array;

/** One input of a tensor request: a name of `Model.inputs`, its full dims (the rows first) and values. */
export interface InputTensor {
  name: string;
  dims: number[];
  data: TensorValues;
}

/**
 * How a tensor model's output is laid out, for the codecs (tensor models only: `Model.layout === 'tensor'`).
 *
 * `dims` is the output's shape for one row (without the batch axis, -1 where it depends on the input).
 * Regression: the statistics record has `rows` = the request's rows and `outputs` = the product of a
 * row's output dims, in the output's C order. Classification: `classAxis` is the class axis in the full
 * output shape (1 for [N, K, H, W], 2 for [N, L, K]); the record's rows are the request's rows times the
 * positions P (the product of the other non-batch dims), row index n·P + p with p the C-order index over
 * the output's dims without the batch and class axes; each record row holds the K classes. So a
 * segmentation model's entropy is record `entropy` read as [N, H, W], its probabilities [N, H, W, K]
 * (the codec moves the class axis back to where the output has it).
 */
export interface OutputLayout {
  dims: readonly number[];
  classAxis: number | null;
}

/** A tensor request's MC answer: the record (laid out as `OutputLayout` says) and this request's output dims. */
export interface TensorMcResult extends McResult {
  /** The full output dims of this request (rows first), e.g. [N, K, H, W]. */
  outputDims: number[];
}

/** A tensor request's eval answer: the raw output and its full dims (rows first). */
export interface TensorOutput {
  data: Float32Array;
  dims: number[];
}

/**
 * What a long run checks between chunks: once `aborted` is true (the client left, or the deadline
 * passed) sample() stops before its next chunk with a CancelledError. An AbortSignal is one; so is the
 * worker's view of a shared flag (src/serving/mc-worker.ts).
 */
export interface RunSignal {
  readonly aborted: boolean;
}

export interface McOptions {
  /** T; with `tolerance`, the most samples (max_samples). */
  samples: number;
  /**
   * Sequential stopping (`samples: "auto"`): sample in chunks and stop at the first chunk end, after at
   * least AUTO_MIN_SAMPLES, where every served value's Monte Carlo error is within this tolerance
   * (src/uncertainty/stopping.ts); the record's `samples` says how many were used. Absent: exactly `samples`.
   */
  tolerance?: number;
  /** Central interval level in (0, 1) (regression). */
  interval: number;
  /** gaussian (mean ± z·std) or conformal (mean ± q·std); the model's default when absent. */
  intervalMethod?: IntervalMethod;
  seed?: number;
  returnSamples?: boolean;
  /**
   * The record keys of the statistics served on request that this request asks for
   * (src/uncertainty/statistics.ts `served`); absent or empty: only those served always.
   */
  statistics?: readonly string[];
  /** Checked between chunks (not sent to workers: they get their own). */
  signal?: RunSignal;
}

/** One MC request: validated rows (rows × features) and its options. */
export interface McJob {
  x: Float32Array;
  rows: number;
  opts: McOptions;
}

export interface McResult {
  stats: McStats;
  /** The seed the masks came from (the request's, or a fresh one). */
  seed: number;
}

/**
 * Per-feature statistics of the training rows (the card's `feature_stats`), arrays in feature order:
 * the data plane flags inputs far outside [min, max] (src/serving/dataplane.ts).
 */
export interface FeatureStats {
  rows: number;
  min: readonly number[];
  max: readonly number[];
  mean: readonly number[];
  std: readonly number[];
}

/** Where a model comes from: its file (the format follows from its extension) and optional card. */
export interface ModelSource {
  name: string;
  file: string;
  card: string | null;
  /** "1" when absent (the flat layout). */
  version?: string;
  /**
   * The files' contents as the repository read them once (card: null when there is none). Loaders use
   * them instead of reading `file` and `card` again, so the main thread and the worker threads load the
   * same bytes even when a file is replaced in between (hot reload).
   */
  contents?: { model: Uint8Array; card: string | null };
}

/** Options of a model's runtime (every format reads what applies to it). */
export interface RuntimeOptions {
  /** Threads for one operator (0 = the runtime's default, one per core). */
  intraOpThreads: number;
  /** Largest batch (tiled rows) of one MC run; larger work is split into chunks of samples. */
  maxRunRows: number;
  /** Run the layers before the first dropout once per row instead of once per sample (onnx/graph.ts). */
  sharedPrefix: boolean;
  /** Fold constant affine steps next to a Gemm into its weights (onnx/graph.ts foldAffine). */
  foldAffine: boolean;
  /**
   * Largest activation bytes of one MC run (tensor models: the rows × samples of one run are chosen so
   * that the run's estimated activations, from the load-time probe, fit). Absent: the sampler's default.
   */
  maxRunBytes?: number;
  /**
   * false: skip the load-time self-check runs. Only for a copy of a model already loaded and checked
   * from the same bytes with the same options (an MC worker thread's: Model.copyOptions).
   */
  selfCheck?: boolean;
}

export const DEFAULT_RUNTIME_OPTIONS: RuntimeOptions = {
  intraOpThreads: 1,
  maxRunRows: 4096,
  sharedPrefix: true,
  foldAffine: true,
};

/** A model's card (passed through) plus what the server read from the graph: GET /v1/models/{name}/card. */
export interface ModelDescription {
  [field: string]: unknown;
  name: string;
  task: Task;
  features: string[];
  labels?: string[];
  dropout: number[];
  aleatoric_std?: number | number[];
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  mc_available: boolean;
}

export interface Model {
  /**
   * 'tabular': one FP32 input [batch, features], an output [batch] or [batch, K]; predict() and
   * sample() take rows × features. 'tensor': any named inputs of any rank and datatype, the batch first,
   * and an output of any rank: predictTensors() and sampleTensors(); `features` is empty and `input` is
   * `inputs[0]`. Absent: 'tabular'.
   */
  readonly layout?: 'tabular' | 'tensor';
  /** Every data input, in the graph's order (a tabular model: [input]). */
  readonly inputs?: readonly TensorSpec[];
  /** A tensor model's output layout (dims per row, class axis). */
  readonly outputLayout?: OutputLayout;
  /**
   * A tensor model's estimated activation bytes of one row in one MC pass (the part of the graph that
   * repeats per sample), from the load-time probe: the data plane's work limit in bytes.
   */
  readonly runBytesPerRow?: number;
  readonly name: string;
  /** "1" for now (versions come with the repository's version layout). */
  readonly version: string;
  readonly task: Task;
  readonly features: readonly string[];
  /** Class labels (classification; empty for regression). */
  readonly labels: readonly string[];
  /** The input tensor: [-1, features]. */
  readonly input: TensorSpec;
  /** The output read by predict: [-1] or [-1, outputSize]. */
  readonly output: TensorSpec;
  /** Values per row of the output (classes for a classifier). */
  readonly outputSize: number;
  /** How to read a classifier's raw outputs: logits (softmax) or probabilities. */
  readonly outputKind: 'regression' | 'logits' | 'probabilities';
  /** false when the model has no dropout: sample() then throws NoDropoutError. */
  readonly mcAvailable: boolean;
  /** The V2 metadata platform, from the Open Inference Protocol's list (e.g. "onnx_onnxv1"). */
  readonly platform: string;
  /** Largest rows × samples of one sampleBatch (and of one fitsOneRun request). */
  readonly maxRunRows: number;
  /**
   * How MC samples become the served distribution (noise model, epistemic scale, temperature, interval
   * default, conformal scores); absent: DEFAULT_UNCERTAINTY (uncertainty.ts).
   */
  readonly uncertainty?: UncertaintySettings;
  /** The training rows' per-feature statistics, when the card has them (null or absent: unknown). */
  readonly featureStats?: FeatureStats | null;

  describe(): ModelDescription;
  /** Eval-mode (dropout off) raw outputs, rows × outputSize, for validated rows (rows × features). */
  predict(x: Float32Array, rows: number): Promise<Float32Array>;
  /**
   * Monte Carlo dropout: `opts.samples` stochastic passes → the statistics record and the seed used.
   * With `opts.signal`, stops between chunks once it is aborted (CancelledError).
   */
  sample(x: Float32Array, rows: number, opts: McOptions): Promise<McResult>;
  /** Tensor models: eval-mode outputs of validated input tensors (each checked against `inputs`). */
  predictTensors?(inputs: readonly InputTensor[], rows: number): Promise<TensorOutput>;
  /**
   * Tensor models: Monte Carlo dropout over validated input tensors, statistics per output element
   * (`OutputLayout`), in chunks that fit `maxRunBytes`; same seed, same answer.
   */
  sampleTensors?(inputs: readonly InputTensor[], rows: number, opts: McOptions): Promise<TensorMcResult>;
  /** Whether MC on `rows` × `samples` fits one run, and so may share a run with other requests. */
  fitsOneRun(rows: number, samples: number): boolean;
  /**
   * Several requests of one sample count in one run (the data plane coalesces them); each result equals
   * sample() with the same seed. Every job must fit one run (fitsOneRun), all together maxRunRows.
   */
  sampleBatch(jobs: readonly McJob[]): Promise<McResult[]>;
  /** Fields of the one-line "model loaded" log. */
  loadInfo(): Record<string, unknown>;
  /**
   * The runtime options under which a copy of this model (an MC worker thread's) loads from the same
   * bytes into the same model without repeating the load's checks, their outcome included.
   */
  copyOptions?(): Partial<RuntimeOptions>;
  /**
   * Give back the memory runs left behind (runtime arenas, cached buffers) while the server is quiet
   * (server/plugins/idle-gc.ts); the model keeps serving, requests arriving meanwhile are served.
   */
  releaseIdle?(): Promise<void>;
  /** Release the model's resources (sessions); the repository calls it once no request uses the model. */
  close(): Promise<void>;
}

/** Class probabilities (rows × classes, float64) of a classifier's raw eval outputs, with its temperature. */
export function classProbabilities(
  model: Pick<Model, 'outputSize' | 'outputKind' | 'uncertainty'>,
  raw: Float32Array,
  rows: number,
): Float64Array {
  const K = model.outputSize;
  const out = new Float64Array(rows * K);
  const p = new Float64Array(K);
  const temperature = model.uncertainty?.temperature ?? 1;
  for (let i = 0; i < rows; i++) {
    toProbabilities(raw, i * K, K, model.outputKind === 'logits', p, temperature);
    out.set(p, i * K);
  }
  return out;
}
