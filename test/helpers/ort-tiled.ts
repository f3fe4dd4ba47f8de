/** onnxruntime's own Dropout as an independent sampler: one row tiled T times, run in train mode. */
import * as ort from 'onnxruntime-node';

/**
 * A session of `bytes` that keeps its Dropout nodes (EliminateDropout off) and a function running one
 * row of `input` tiled T times with training_mode = true, returning the graph's outputs by name.
 */
export async function tiledTrainRuns(bytes: Uint8Array): Promise<{
  run: (row: readonly number[], T: number) => Promise<Record<string, Float32Array>>;
  release: () => Promise<void>;
}> {
  const session = await ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: 'all',
    extra: { optimization: { disable_specified_optimizers: 'EliminateDropout' } },
  } as ort.InferenceSession.SessionOptions);
  const run = async (row: readonly number[], T: number): Promise<Record<string, Float32Array>> => {
    const F = row.length;
    const tiled = new Float32Array(T * F);
    for (let t = 0; t < T; t++) tiled.set(row, F * t);
    const out = await session.run({
      input: new ort.Tensor('float32', tiled, [T, F]),
      training_mode: new ort.Tensor('bool', [true], []),
    });
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  };
  return { run, release: () => session.release() };
}
