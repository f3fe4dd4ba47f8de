/**
 * The only module that imports onnxruntime-node. Everything else talks to this small interface
 * (createSession, run, inputNames/outputNames), as transformers.js does with its ONNX backend.
 */
import * as ort from 'onnxruntime-node';
import type { Datatype, TensorValues } from '../model.js';

export interface SessionOptions {
  /** Threads for one operator (0 = onnxruntime's default, one per core). */
  intraOpThreads: number;
}

/**
 * One feed: values in the array type of their datatype (model.ts TensorValues). `datatype` tells BOOL
 * from UINT8 (both Uint8Array); absent, the array type decides (a Uint8Array is UINT8).
 */
export interface Feed {
  data: TensorValues;
  dims: number[];
  datatype?: Datatype;
}

export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Run with feeds of any datatype; returns the requested float32 outputs' data and dims. */
  run(feeds: Record<string, Feed>, fetch: string[]): Promise<Record<string, { data: Float32Array; dims: number[] }>>;
  /** Run with feeds of any datatype; returns the requested outputs of any type (the tensor sampler's probe and runs). */
  runTyped(feeds: Record<string, Feed>, fetch: string[]): Promise<Record<string, TypedOutput>>;
  release(): Promise<void>;
}

/** An output as onnxruntime gives it, in the array type of its datatype (bool as Uint8Array). */
export interface TypedOutput {
  data: TensorValues;
  dims: number[];
}

/** onnxruntime's name of each datatype. */
const ORT_TYPES: Record<Datatype, ort.Tensor.Type> = {
  FP32: 'float32',
  FP16: 'float16',
  FP64: 'float64',
  INT64: 'int64',
  INT32: 'int32',
  BOOL: 'bool',
  UINT8: 'uint8',
};

/** The datatype of a feed without one, by its array type (the tabular feeds: float32 rows, int64 repeats). */
function datatypeOf(data: TensorValues): Datatype {
  if (data instanceof Float32Array) return 'FP32';
  if (data instanceof BigInt64Array) return 'INT64';
  if (data instanceof Float64Array) return 'FP64';
  if (data instanceof Int32Array) return 'INT32';
  if (data instanceof Uint16Array) return 'FP16';
  return 'UINT8';
}

function toOrtTensor(f: Feed): ort.Tensor {
  const type = ORT_TYPES[f.datatype ?? datatypeOf(f.data)];
  if (type !== 'float16') return new ort.Tensor(type, f.data as ort.Tensor.DataType, f.dims);
  // Where the runtime has Float16Array (Node 24), onnxruntime-common wraps half bits in one, which
  // onnxruntime-node 1.30's binding reads as 0 bytes ("not enough space"); the same bits as uint16 are
  // read as they are, so the tensor is made as uint16 and then called float16.
  const t = new ort.Tensor('uint16', f.data as Uint16Array, f.dims);
  (t as { type: ort.Tensor.Type }).type = 'float16';
  return t;
}

/**
 * Create a session with every graph optimisation on except EliminateDropout: that rule deletes
 * Dropout nodes even when training_mode is true (measured with onnxruntime-node 1.30), which would
 * silently turn Monte Carlo dropout into repeated eval passes. Our served graphs have no Dropout left
 * (see rewrite.ts), but sessions made from a user's file must never lose one either.
 */
export async function createSession(bytes: Uint8Array, opts: SessionOptions): Promise<OrtSession> {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    interOpNumThreads: 1,
    ...(opts.intraOpThreads > 0 ? { intraOpNumThreads: opts.intraOpThreads } : {}),
    logSeverityLevel: 3,
    extra: {
      optimization: { disable_specified_optimizers: 'EliminateDropout' },
      session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } },
    },
  } as ort.InferenceSession.SessionOptions;
  const session = await ort.InferenceSession.create(bytes, options);
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds, fetch) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, f] of Object.entries(feeds)) ortFeeds[name] = toOrtTensor(f);
      const res = await session.run(ortFeeds, fetch);
      const out: Record<string, { data: Float32Array; dims: number[] }> = {};
      for (const name of fetch) {
        const t = res[name];
        if (t?.type !== 'float32') throw new Error(`output ${name} is ${t ? t.type : 'missing'}, expected float32`);
        out[name] = { data: t.data as Float32Array, dims: [...t.dims] };
      }
      return out;
    },
    async runTyped(feeds, fetch) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, f] of Object.entries(feeds)) ortFeeds[name] = toOrtTensor(f);
      const res = await session.run(ortFeeds, fetch);
      const out: Record<string, TypedOutput> = {};
      for (const name of fetch) out[name] = { data: res[name]!.data as TensorValues, dims: [...res[name]!.dims] };
      return out;
    },
    release: () => session.release(),
  };
}
