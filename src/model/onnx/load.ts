/**
 * Loading an ONNX model, step by step: read the file, its graph and its card (read.ts: inspection and a
 * relaxed fixed batch), check the card against the graph (card-check.ts, pure), probe the graph with two
 * rows for its shapes (probe.ts) and check them, fold affine steps (fold.ts), create the eval and Monte
 * Carlo sessions and self-check them at every run shape requests produce (sessions.ts). Everything is
 * computed here, then the model is constructed once (OnnxModel).
 */
import type { Model as OnnxProto } from '../../onnx-proto/proto.js';
import { ModelLoadError } from '../errors.js';
import type { ModelSource, RuntimeOptions } from '../model.js';
import {
  type CardMatch,
  type ServedShape,
  checkCard,
  checkShapes,
  logVarianceBoundsOf,
  probeFetches,
  uncertaintySettings,
} from './card-check.js';
import { checkInputFor, readSampleInput } from './check-input.js';
import { foldAffine } from './fold.js';
import { accumulatingLayers } from './graph-query.js';
import { ModelFormatError } from './inspect.js';
import type { OnnxModelInit } from './model.js';
import { probeShapes } from './probe.js';
import { type ReadModel, formatChecked, readOnnx } from './read.js';
import type { GraphIo } from './run.js';
import { type SelfCheckOptions, agreementFor } from './self-check.js';
import {
  LiveSessions,
  SessionSet,
  byteCappedRows,
  checkModelSessions,
  createModelSessions,
  graphsOf,
} from './sessions.js';

/**
 * Everything an OnnxModel needs, from `source.file` (and `source.card` when it exists). Throws
 * ModelLoadError naming the file and the problem; what it returns has passed the self-check (the MC
 * graphs with all-ones masks equal the eval graph).
 */
export async function loadOnnxModel(source: ModelSource, opts: RuntimeOptions): Promise<OnnxModelInit> {
  const started = performance.now();
  const { file } = source;
  const read = await readOnnx(source, opts);
  const { model, info, card, cardSource } = read;
  const match = formatChecked(file, () => checkCard(card, info), cardSource);
  // read before foldAffine, which folds y_std into the last Gemm
  const logVarianceBounds = match.logVarianceName !== null ? logVarianceBoundsOf(model) : null;
  const F = match.features.length;
  const probed = await probeShapes(model, info, probeFetches(info, match), F, opts).catch((err: unknown) => {
    throw err instanceof ModelFormatError ? new ModelLoadError(file, err.message) : err;
  });
  const served = formatChecked(file, () => checkShapes(card, info, match, probed), cardSource);
  // the self-check runs on rows like real ones, within float32's tolerance for this graph's depth; a copy
  // that skips it (an MC worker's, RuntimeOptions.selfCheck) reads no sample file
  const check = opts.selfCheck === false ? {} : await selfCheckOptions(file, F, model, card.feature_stats);
  const foldedNodes = opts.foldAffine ? foldAffine(model) : 0;
  const io: GraphIo = { inputName: info.input.name, outputName: match.outputName, features: F, masks: served.masks };
  const runtime = { ...opts, maxRunRows: await byteCappedRows(model, info, io, opts) };
  const set = new SessionSet(file, opts);
  try {
    const built = await createModelSessions(set, model, info, io, opts);
    const { sessions, sharedPrefixSkipped } = await checkModelSessions(
      set,
      built,
      { ...io, outputSize: served.outputSize },
      runtime,
      check,
    );
    return {
      ...modelInit(source, read, match, served),
      logVarianceBounds: served.task === 'regression' ? logVarianceBounds : null,
      sessions: new LiveSessions(sessions, graphsOf(set, sessions), opts),
      runtime,
      loadMs: performance.now() - started,
      foldedNodes,
      sharedPrefixSkipped,
    };
  } catch (err) {
    await set.releaseAll();
    throw err;
  }
}

/** The self-check's rows (the sample beside the model, the card's feature statistics, else a bounded range) and tolerance. */
async function selfCheckOptions(
  file: string,
  features: number,
  model: OnnxProto,
  featureStats: Parameters<typeof checkInputFor>[1],
): Promise<Partial<SelfCheckOptions>> {
  const sample = await readSampleInput(file, features).catch((err: unknown) => {
    throw err instanceof ModelFormatError ? new ModelLoadError(file, err.message) : err;
  });
  return { input: checkInputFor(sample, featureStats), agree: agreementFor(accumulatingLayers(model.graph!)) };
}

/** The parts of an OnnxModelInit that come from the file, the card and the probe. */
function modelInit(
  source: ModelSource,
  read: ReadModel,
  match: CardMatch,
  served: ServedShape,
): Omit<
  OnnxModelInit,
  'sessions' | 'logVarianceBounds' | 'runtime' | 'loadMs' | 'foldedNodes' | 'sharedPrefixSkipped'
> {
  const { name, file, card: cardPath } = source;
  const { task } = served;
  return {
    name,
    version: source.version ?? '1',
    file,
    cardPath,
    card: { ...read.card, name },
    info: read.info,
    task,
    features: match.features,
    labels: served.labels,
    outputName: match.outputName,
    logVarianceName: task === 'regression' ? match.logVarianceName : null,
    uncertainty: uncertaintySettings(read.card, task, match.logVarianceName),
    outputSize: served.outputSize,
    outputIsVector: served.outputIsVector,
    outputKind: served.outputKind,
    aleatoricStd: served.aleatoricStd,
    masks: served.masks,
    batchRelaxed: read.relaxed?.message ?? null,
  };
}
