/**
 * Loading a tensor model (issue 19), step by step, and the one place where an ONNX file is sent to the
 * tabular or the tensor loader (loadOnnx, by inspect.ts graphLayout). The steps: the graph (a fixed
 * batch of a one-input graph relaxed as the tabular path does), the card, the input specs, the check
 * inputs (tensor-check-input.ts), a probe of the output's shape on them, the task and class axis
 * (tensor-output.ts), the eval session, the Monte Carlo sampler (tensor-sampler.ts), and the load-time
 * check of both (tensor-self-check.ts, the sampler's check).
 */
import type { Card } from '../card.js';
import { ModelLoadError } from '../errors.js';
import type { InputTensor, Model, ModelSource, RuntimeOptions, TensorSpec } from '../model.js';
import type { Model as OnnxProto } from '../../onnx-proto/proto.js';
import { uncertaintySettings } from './card-check.js';
import { accumulatingLayers } from './graph-query.js';
import { ModelFormatError, type TensorGraphInfo, graphLayout, inspectTensor } from './inspect.js';
import { loadOnnxModel } from './load.js';
import { OnnxModel } from './model.js';
import type { Feed } from './ort.js';
import { PROBE_ROWS, probeTensorShapes } from './probe.js';
import { formatChecked, readModelBytes, readModelCard } from './read.js';
import { relaxBatch } from './relax-batch.js';
import { evalGraph } from './rewrite.js';
import { agreementFor } from './self-check.js';
import { SessionSet } from './sessions.js';
import { type TensorCheckInput, readTensorSample, sampleCheckInput, syntheticInput } from './tensor-check-input.js';
import { inputSpec } from './tensor-io.js';
import { TensorModel, type TensorModelInit } from './tensor-model.js';
import { type ServedOutput, checkOutputType, servedOutput } from './tensor-output.js';
import { type TensorMcSampler, createSampler } from './tensor-sampler.js';
import { checkTensorEval } from './tensor-self-check.js';

/** Rows of the sampler's load-time check (the eval check's batches are tensor-self-check.ts's). */
const MC_CHECK_ROWS = 3;

/**
 * Load an ONNX model: a graph the tabular loader serves (graphLayout) as OnnxModel, exactly as before;
 * any other as TensorModel. A file the tensor inspection cannot read goes to the tabular loader too,
 * which names the problem as it always did. Throws ModelLoadError naming the file and the problem.
 */
export async function loadOnnx(source: ModelSource, runtime: RuntimeOptions): Promise<Model> {
  const graph = await readModelBytes(source)
    .then((bytes) => inspectTensor(bytes))
    .catch(() => null);
  if (!graph || graphLayout(graph.info) === 'tabular') return new OnnxModel(await loadOnnxModel(source, runtime));
  return new TensorModel(await loadTensorModel(source, graph, runtime));
}

const feedsOf = (tensors: readonly InputTensor[], specs: readonly TensorSpec[]): Record<string, Feed> =>
  Object.fromEntries(tensors.map((t, k) => [t.name, { data: t.data, dims: t.dims, datatype: specs[k]!.datatype }]));

/** The graph, its card and its inputs, as served: ModelLoadError naming the file (and card) on a problem. */
async function readTensorGraph(
  source: ModelSource,
  model: OnnxProto,
  info: TensorGraphInfo,
  runtime: RuntimeOptions,
): Promise<{ card: Card; cardSource: string | null; specs: TensorSpec[]; relaxed: string | null; outputName: string }> {
  const { file } = source;
  // a one-input graph exported at a fixed batch is relaxed as the tabular path does (relax-batch.ts);
  // with several inputs, inputSpec refuses a fixed batch and says how to export
  const relaxed =
    info.inputs.length === 1 && typeof info.inputs[0]!.dims?.[0] === 'number'
      ? formatChecked(file, () => relaxBatch(model, info))
      : null;
  const { card, cardSource } = await readModelCard(source, info, runtime);
  const specs = formatChecked(file, () => info.inputs.map(inputSpec), cardSource);
  const outputName = card.output ?? info.outputs[0]!.name;
  const output = info.outputs.find((o) => o.name === outputName);
  if (!output)
    throw new ModelLoadError(
      file,
      `the card names output "${outputName}", the graph has ${info.outputs.map((o) => o.name).join(', ')} (card: ${cardSource})`,
    );
  formatChecked(file, () => checkOutputType(output), cardSource);
  return { card, cardSource, specs, relaxed: relaxed?.message ?? null, outputName };
}

/** The check input: the sample beside the model when there is one (not for a copy that skips the check), else synthetic. */
async function checkInputOf(
  file: string,
  specs: TensorSpec[],
  runtime: RuntimeOptions,
): Promise<{ input: TensorCheckInput; checkedOn: string }> {
  const sample = runtime.selfCheck === false ? null : await readTensorSample(file, specs);
  return sample
    ? { input: sampleCheckInput(specs, sample), checkedOn: sample.file }
    : { input: syntheticInput(specs), checkedOn: 'synthetic inputs (bounded smooth floats, ids 0 and 1)' };
}

/**
 * Everything a TensorModel needs, from `source` and the inspected graph. Throws ModelLoadError naming
 * the file and the problem; what it returns has passed the load-time check (unless runtime.selfCheck
 * is false: a copy of a model checked already).
 */
export async function loadTensorModel(
  source: ModelSource,
  graph: { model: OnnxProto; info: TensorGraphInfo },
  runtime: RuntimeOptions,
): Promise<TensorModelInit> {
  const started = performance.now();
  const { file } = source;
  const { model, info } = graph;
  const read = await readTensorGraph(source, model, info, runtime);
  const { card, cardSource, specs, outputName } = read;
  const step = <T>(run: () => Promise<T>): Promise<T> =>
    run().catch((err: unknown) => {
      if (!(err instanceof ModelFormatError)) throw err;
      throw new ModelLoadError(file, cardSource ? `${err.message} (card: ${cardSource})` : err.message);
    });
  const { input, checkedOn } = await step(() => checkInputOf(file, specs, runtime));
  const served = await step(() => probeOutput(model, info, specs, input, card, outputName, runtime));
  const uncertainty = uncertaintySettings(card, served.task, null);
  const set = new SessionSet(file, runtime);
  let sampler: TensorMcSampler | null = null;
  try {
    const evalSession = await set.create('eval', evalGraph(model, info));
    sampler = await step(() =>
      createSampler({
        name: source.name,
        model,
        dropouts: info.dropouts,
        controlInputs: info.controlInputs,
        inputs: specs,
        outputName,
        layout: served.layout,
        runtime,
        probeInputs: input(PROBE_ROWS),
        task: served.task,
        outputKind: served.outputKind,
        uncertainty,
        aleatoricStd: served.aleatoricStd,
      }),
    );
    const init: TensorModelInit = {
      ...{ name: source.name, version: source.version ?? '1', file, cardPath: source.card },
      ...{ card: { ...card, name: source.name }, info, inputs: specs, outputName, served, uncertainty },
      ...{ evalSession, sampler, runtime, batchRelaxed: read.relaxed, loadMs: 0 },
      checkedOn: runtime.selfCheck === false ? null : checkedOn,
    };
    if (runtime.selfCheck !== false) await step(() => checkLoaded(new TensorModel(init), model, input, sampler));
    return { ...init, loadMs: performance.now() - started };
  } catch (err) {
    await sampler?.close();
    await set.releaseAll();
    throw err;
  }
}

/** The probe's output shape on PROBE_ROWS check rows → the served task, class axis and layout. */
async function probeOutput(
  model: OnnxProto,
  info: TensorGraphInfo,
  specs: TensorSpec[],
  input: TensorCheckInput,
  card: Card,
  outputName: string,
  runtime: RuntimeOptions,
): Promise<ServedOutput> {
  const probed = await probeTensorShapes(model, info, [outputName], feedsOf(input(PROBE_ROWS), specs), runtime);
  const outputInfo = info.outputs.find((o) => o.name === outputName)!;
  const inputsFixed = specs.every((s) => s.shape.slice(1).every((d) => d >= 0));
  return servedOutput(card, outputInfo, probed.dims[outputName]!, PROBE_ROWS, inputsFixed);
}

/**
 * The load-time check through the model's own predictTensors: its eval graph treats rows independently
 * (tensor-self-check.ts), and the sampler's MC graph with masks of 1 equals it, both within the
 * depth-scaled float32 tolerance (self-check.ts agreementFor).
 */
async function checkLoaded(
  m: TensorModel,
  model: OnnxProto,
  input: TensorCheckInput,
  sampler: TensorMcSampler | null,
): Promise<void> {
  const agree = agreementFor(accumulatingLayers(model.graph!));
  await checkTensorEval((x, rows) => m.predictTensors(x, rows), input, agree);
  if (!sampler) return;
  const x = input(MC_CHECK_ROWS);
  const evalOut = await m.predictTensors(x, MC_CHECK_ROWS);
  await sampler.check(x, MC_CHECK_ROWS, evalOut.data, agree);
}
