/** Model versions for the repository tests: a trained model whose answers are shifted by a known amount. */
import { readFileSync } from 'node:fs';
import { decodeModel, encodeModel, floatRaw, tensorValues } from '../../src/onnx-proto/proto.js';

/**
 * The shipped diabetes network with `delta` added to `y_mean` (the last Add of the exported graph):
 * every prediction and every Monte Carlo mean moves by exactly `delta` (in float32), the spread stays.
 */
export function shiftedDiabetes(delta: number): Uint8Array {
  const model = decodeModel(readFileSync('models/diabetes/model.onnx'));
  const init = model.graph!.initializer!.find((t) => t.name === 'y_mean');
  if (!init) throw new Error('models/diabetes/model.onnx has no y_mean initializer');
  const [mean] = tensorValues(init);
  init.raw_data = floatRaw(Float32Array.of(mean! + delta));
  delete (init as { float_data?: unknown }).float_data;
  return encodeModel(model);
}
