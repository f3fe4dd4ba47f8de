/**
 * The only module that imports onnxruntime-node. Everything else talks to this small interface
 * (createSession, run, inputNames/outputNames), as transformers.js does with its ONNX backend.
 */
import * as ort from 'onnxruntime-node';

export interface SessionOptions {
  /** Threads for one operator (0 = onnxruntime's default, one per core). */
  intraOpThreads: number;
}

export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Run with float32 (or int64) feeds; returns the requested float32 outputs' data and dims. */
  run(
    feeds: Record<string, { data: Float32Array | BigInt64Array; dims: number[] }>,
    fetch: string[],
  ): Promise<Record<string, { data: Float32Array; dims: number[] }>>;
  release(): Promise<void>;
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
      for (const [name, f] of Object.entries(feeds))
        ortFeeds[name] =
          f.data instanceof BigInt64Array
            ? new ort.Tensor('int64', f.data, f.dims)
            : new ort.Tensor('float32', f.data, f.dims);
      const res = await session.run(ortFeeds, fetch);
      const out: Record<string, { data: Float32Array; dims: number[] }> = {};
      for (const name of fetch) {
        const t = res[name];
        if (t?.type !== 'float32') throw new Error(`output ${name} is ${t ? t.type : 'missing'}, expected float32`);
        out[name] = { data: t.data as Float32Array, dims: [...t.dims] };
      }
      return out;
    },
    release: () => session.release(),
  };
}
