/**
 * The model formats the server can load, by file extension. A format is a Model implementation and a
 * loader; the repository discovers `models/<name>/model<extension>` for each (src/serving/repository.ts),
 * and the MC worker threads load models through loadModel too. To add a format: implement Model in
 * src/model/<format>/ and add an entry here.
 */
import type { Model, ModelSource, RuntimeOptions } from './model.js';
import { loadOnnx } from './onnx/tensor-load.js';

export interface ModelFormat {
  /** The file extension, with its dot: a model folder holds `model<extension>`. */
  extension: string;
  load(source: ModelSource, runtime: RuntimeOptions): Promise<Model>;
}

export const FORMATS: readonly ModelFormat[] = [
  // tabular graphs (one float32 [batch, features]) load as OnnxModel, any other as TensorModel (issue 19)
  { extension: '.onnx', load: loadOnnx },
];

/** The format of a file by its extension; ONNX, the first, for any other file (as MODEL_PATH always was). */
export function formatOf(file: string): ModelFormat {
  return FORMATS.find((f) => file.endsWith(f.extension)) ?? FORMATS[0]!;
}

/** Load a model in its format. Throws ModelLoadError naming the file and the problem. */
export function loadModel(source: ModelSource, runtime: RuntimeOptions): Promise<Model> {
  return formatOf(source.file).load(source, runtime);
}
