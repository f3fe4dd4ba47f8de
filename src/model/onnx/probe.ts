/**
 * The probe: run the eval graph with extra outputs on a few rows of zeros to learn tensor shapes that
 * the file may not declare (the outputs served, each Dropout's input, the tensors the shared prefix
 * hands on). The only load step besides the sessions that runs onnxruntime.
 */
import type { Model as OnnxProto } from '../../onnx-proto/proto.js';
import type { ProbedShapes } from './card-check.js';
import { type GraphInfo, ModelFormatError } from './inspect.js';
import { type Feed, type OrtSession, type SessionOptions, createSession } from './ort.js';
import { probeGraph } from './rewrite.js';

/** Rows of a probe run: more than one, so a dimension equal to the batch shows as the batch. */
export const PROBE_ROWS = 2;

const firstLine = (s: string): string => s.split('\n')[0]!.slice(0, 300);

const zeros = (info: GraphInfo, features: number) => ({
  [info.input.name]: { data: new Float32Array(PROBE_ROWS * features), dims: [PROBE_ROWS, features] },
});

/**
 * The shapes of `fetch` (tensors of the graph: outputs or intermediates) for PROBE_ROWS rows of zeros.
 * Throws ModelFormatError when onnxruntime cannot load the probe graph or the run fails.
 */
export function probeShapes(
  model: OnnxProto,
  info: GraphInfo,
  fetch: string[],
  features: number,
  opts: SessionOptions,
): Promise<ProbedShapes> {
  return probeRun(model, info, fetch, zeros(info, features), opts, `${features} features`);
}

/**
 * Ranks of `tensors` in the eval graph, probed with PROBE_ROWS rows; null unless every one is float32
 * with the batch as first dimension (only those can be repeated per sample), or when the probe fails.
 */
export async function tensorRanks(
  model: OnnxProto,
  info: GraphInfo,
  tensors: string[],
  features: number,
  opts: SessionOptions,
): Promise<number[] | null> {
  let probe: OrtSession | null = null;
  try {
    probe = await createSession(probeGraph(model, info, tensors), opts);
    const out = await probe.run(
      zeros(info, features),
      tensors.filter((t) => t !== info.input.name),
    );
    const ranks = tensors.map((t) =>
      t === info.input.name ? 2 : out[t]!.dims[0] === PROBE_ROWS ? out[t]!.dims.length : Number.NaN,
    );
    return ranks.some(Number.isNaN) ? null : ranks;
  } catch {
    return null;
  } finally {
    await probe?.release();
  }
}

/**
 * A tensor model's probe (tensor-load.ts): the shapes of `fetch` for the PROBE_ROWS rows of `feeds`
 * (its check input: every data input, each in its datatype). Throws ModelFormatError when onnxruntime
 * cannot load the probe graph or the run fails.
 */
export function probeTensorShapes(
  model: OnnxProto,
  info: GraphInfo,
  fetch: string[],
  feeds: Record<string, Feed>,
  opts: SessionOptions,
): Promise<ProbedShapes> {
  const shapes = Object.entries(feeds)
    .map(([name, f]) => `${name} [${f.dims.join(', ')}]`)
    .join(', ');
  return probeRun(model, info, fetch, feeds, opts, shapes);
}

/** One probe run of `feeds`; `what` names them in the error of a failed run. */
async function probeRun(
  model: OnnxProto,
  info: GraphInfo,
  fetch: string[],
  feeds: Record<string, Feed>,
  opts: SessionOptions,
  what: string,
): Promise<ProbedShapes> {
  let probe: OrtSession;
  try {
    probe = await createSession(probeGraph(model, info), opts);
  } catch (err) {
    throw new ModelFormatError(`onnxruntime cannot load the probe graph: ${firstLine((err as Error).message)}`);
  }
  try {
    const out = await probe.run(feeds, fetch);
    return { rows: PROBE_ROWS, dims: Object.fromEntries(fetch.map((t) => [t, out[t]!.dims])) };
  } catch (err) {
    throw new ModelFormatError(`a test run with ${what} failed: ${firstLine((err as Error).message)}`);
  } finally {
    await probe.release();
  }
}
