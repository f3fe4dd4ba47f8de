/**
 * Loading an ONNX model: read the file and its card, inspect the graph, serve a fixed batch when the
 * graph allows it (relaxBatch), probe it with two rows (the batch must come first), fold affine steps,
 * create the eval and Monte Carlo sessions and self-check them at every run shape requests produce
 * (graph.ts selfCheck). Everything is computed here, then the model is constructed once (OnnxModel).
 */
import { readFile } from 'node:fs/promises';
import type { Model as OnnxProto } from '../../onnx/proto.js';
import { readCard } from '../card.js';
import { ModelLoadError } from '../errors.js';
import { type LogVarianceBounds, MAX_LOG_VARIANCE } from '../mc.js';
import type { ModelSource, RuntimeOptions } from '../model.js';
import type { UncertaintySettings } from '../uncertainty.js';
import {
  type BatchRelaxation,
  type GraphInfo,
  ModelFormatError,
  type ServingRuns,
  constantValues,
  evalGraph,
  foldAffine,
  inputTilePoint,
  inspect,
  maskInputName,
  mcGraph,
  probeGraph,
  relaxBatch,
  selfCheck,
  sharedPrefixPoint,
} from './graph.js';
import type { OnnxModelInit } from './model.js';
import { type OrtSession, type SessionOptions, createSession } from './ort.js';
import { type GraphIo, type MaskSpec, type McGraphSession, runChunk, runEval } from './run.js';

function firstLine(s: string): string {
  return s.split('\n')[0]!.slice(0, 300);
}

/**
 * Everything an OnnxModel needs, from `source.file` (and `source.card` when it exists). Throws
 * ModelLoadError naming the file and the problem; what it returns has passed the self-check (the MC
 * graphs with all-ones masks equal the eval graph).
 */
export async function loadOnnxModel(source: ModelSource, opts: RuntimeOptions): Promise<OnnxModelInit> {
  const started = performance.now();
  const { name, file, card: cardPath } = source;
  let bytes: Uint8Array;
  try {
    bytes = source.contents?.model ?? (await readFile(file));
  } catch (err) {
    throw new ModelLoadError(
      file,
      `cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  let inspected;
  try {
    inspected = inspect(bytes);
  } catch (err) {
    if (err instanceof ModelFormatError) throw new ModelLoadError(file, err.message);
    throw err;
  }
  const { model, info } = inspected;
  // before anything reads the input's dims or builds a graph: it rewrites `model` and `info`
  let relaxed: BatchRelaxation | null;
  try {
    relaxed = relaxBatch(model, info);
  } catch (err) {
    if (err instanceof ModelFormatError) throw new ModelLoadError(file, err.message);
    throw err;
  }
  const embedded = info.metadata['dropout_serve.card'];
  const { card, source: cardSource } = await readCard(
    cardPath,
    embedded ? { text: embedded, source: 'metadata_props dropout_serve.card' } : undefined,
    source.contents?.card,
  );
  const fail = (msg: string): never => {
    throw new ModelLoadError(file, cardSource ? `${msg} (card: ${cardSource})` : msg);
  };

  const graphF = info.input.dims?.[1] ?? null;
  if (card.features && graphF !== null && card.features.length !== graphF) {
    fail(`the card lists ${card.features.length} features but the graph input "${info.input.name}" has ${graphF}`);
  }
  const featureCount = card.features?.length ?? graphF;
  if (featureCount === null)
    fail(`the feature dimension of input "${info.input.name}" is not fixed and no model.json lists the features`);
  const features = card.features ?? Array.from({ length: featureCount! }, (_, j) => `x${j}`);
  // rate-0 layers need no Dropout node, so only the live rates are compared
  const cardLive = card.dropout?.filter((p) => p > 0);
  const graphLive = info.dropouts.map((d) => d.ratio).filter((p) => p > 0);
  if (
    cardLive &&
    (cardLive.length !== graphLive.length || cardLive.some((p, k) => Math.abs(p - graphLive[k]!) > 1e-6))
  ) {
    fail(
      `the card's dropout rates [${card.dropout!.join(', ')}] do not match the graph's Dropout nodes [${info.dropouts.map((d) => d.ratio).join(', ')}]`,
    );
  }
  const fs = card.feature_stats;
  if (fs) {
    for (const key of ['min', 'max', 'mean', 'std'] as const) {
      if (fs[key].length !== features.length)
        fail(`feature_stats.${key} has ${fs[key].length} values for ${features.length} features`);
    }
    if (fs.min.some((v, j) => v > fs.max[j]!)) fail('feature_stats: a min is above its max');
  }
  const outputName = card.output_roles?.mean ?? card.output ?? info.outputs[0]!.name;
  const graphOutputs = info.outputs.map((o) => o.name).join(', ');
  if (!info.outputs.some((o) => o.name === outputName))
    fail(
      `the card names output "${outputName}"${card.output_roles ? ' (output_roles.mean)' : ''}, the graph has ${graphOutputs}`,
    );
  const logVarianceName = card.output_roles?.log_variance ?? null;
  if (logVarianceName !== null && !info.outputs.some((o) => o.name === logVarianceName))
    fail(`the card's output_roles.log_variance names output "${logVarianceName}", the graph has ${graphOutputs}`);
  // read before foldAffine, which folds y_std into the last Gemm
  const logVarianceBounds = logVarianceName !== null ? logVarianceBoundsOf(model) : null;

  const sessions: OrtSession[] = [];
  const tryCreate = async (graph: () => Uint8Array): Promise<OrtSession | null> => {
    try {
      const s = await createSession(graph(), opts);
      sessions.push(s);
      return s;
    } catch {
      return null;
    }
  };
  const create = async (what: string, graphBytes: Uint8Array): Promise<OrtSession> => {
    try {
      const s = await createSession(graphBytes, opts);
      sessions.push(s);
      return s;
    } catch (err) {
      throw new ModelLoadError(file, `onnxruntime cannot load the ${what} graph: ${firstLine((err as Error).message)}`);
    }
  };
  try {
    // Probe with two rows: the batch dimension must come first in the output and every dropout input.
    const probe = await create('probe', probeGraph(model, info));
    const zeros = { data: new Float32Array(2 * features.length), dims: [2, features.length] };
    let probeOut;
    try {
      probeOut = await probe.run({ [info.input.name]: zeros }, [
        ...new Set([
          outputName,
          ...(logVarianceName !== null ? [logVarianceName] : []),
          ...info.dropouts.map((d) => d.input),
        ]),
      ]);
    } catch (err) {
      throw new ModelLoadError(
        file,
        `a test run with ${features.length} features failed: ${firstLine((err as Error).message)}`,
      );
    }
    await probe.release();
    sessions.splice(sessions.indexOf(probe), 1);
    const outDims = probeOut[outputName]!.dims;
    if (outDims[0] !== 2 || outDims.length > 2)
      fail(
        `output "${outputName}" has shape [${outDims.join(', ')}] for 2 rows; [batch] or [batch, outputs] is required`,
      );
    const outputIsVector = outDims.length === 1;
    const outputSize = outputIsVector ? 1 : outDims[1]!;
    if (logVarianceName !== null) {
      const lvDims = probeOut[logVarianceName]!.dims;
      if (lvDims.join(',') !== outDims.join(','))
        fail(
          `the log-variance output "${logVarianceName}" has shape [${lvDims.join(', ')}] for 2 rows, the mean output "${outputName}" [${outDims.join(', ')}]; they must match`,
        );
    }
    // masks for the live dropouts (rate > 0), in graph order, as graph.ts numbers them
    const masks: MaskSpec[] = info.dropouts
      .filter((d) => d.ratio > 0)
      .map((d, k) => {
        const dims = probeOut[d.input]!.dims;
        if (dims[0] !== 2)
          fail(
            `Dropout ${d.name}: its input "${d.input}" does not have the batch as first dimension ([${dims.join(', ')}] for 2 rows)`,
          );
        const rowDims = dims.slice(1);
        return { input: maskInputName(k), rowDims, rowSize: rowDims.reduce((a, b) => a * b, 1), ratio: d.ratio };
      });

    const task = card.task ?? (card.labels ? 'classification' : 'regression');
    let labels: string[] = [];
    if (task === 'classification') {
      if (outputSize < 2)
        fail(`a classifier needs an output with at least 2 classes; "${outputName}" has ${outputSize}`);
      labels = card.labels ?? Array.from({ length: outputSize }, (_, k) => String(k));
      if (labels.length !== outputSize)
        fail(`the card lists ${labels.length} labels but output "${outputName}" has ${outputSize} classes`);
    }
    const alea =
      card.aleatoric_std === undefined
        ? [0]
        : Array.isArray(card.aleatoric_std)
          ? card.aleatoric_std
          : [card.aleatoric_std];
    if (task === 'regression' && alea.length !== 1 && alea.length !== outputSize)
      fail(`aleatoric_std has ${alea.length} values for ${outputSize} outputs`);
    // a classifier's output is read as logits unless the card says otherwise
    const outputKind =
      task === 'regression'
        ? 'regression'
        : !card.output_kind || card.output_kind === 'logits'
          ? 'logits'
          : 'probabilities';

    // Sub/Div before and Mul/Add after a Gemm fold into its weights (graph.ts foldAffine)
    const foldedNodes = opts.foldAffine ? foldAffine(model) : 0;
    const evalSession = await create('eval', evalGraph(model, info));
    let mcPlain: McGraphSession | null = null;
    let mcShared: McGraphSession | null = null;
    if (masks.length) {
      mcPlain = { session: await create('Monte Carlo', mcGraph(model, info, inputTilePoint(info))), tileRanks: [2] };
      const point = opts.sharedPrefix ? sharedPrefixPoint(model, info) : null;
      if (point) {
        // the tensors repeated after the prefix must be float32 with the batch first; a graph that
        // fails that, or that onnxruntime rejects, is skipped: the plain MC graph serves instead
        const ranks = await tensorRanks(model, info, point.tensors, zeros, opts);
        const session = ranks ? await tryCreate(() => mcGraph(model, info, point)) : null;
        if (ranks && session) mcShared = { session, tileRanks: ranks };
      }
    }
    const io: GraphIo = { inputName: info.input.name, outputName, features: features.length, masks };
    const scores = card.conformal?.scores;
    const uncertainty: UncertaintySettings = {
      noise: task === 'regression' && logVarianceName !== null ? 'heteroscedastic' : 'homoscedastic',
      epistemicScale: card.epistemic_scale ?? 1,
      temperature: task === 'classification' ? (card.temperature ?? 1) : 1,
      intervalMethod: card.interval_method ?? (scores?.length ? 'conformal' : 'gaussian'),
      conformalScores: task === 'regression' && scores?.length ? Float64Array.from(scores) : null,
    };
    // the MC graphs with masks of 1 must equal the eval graph at every run shape requests produce: the
    // plain graph is required (a model whose MC graph fails would fail at request time), the
    // shared-prefix one is an optimisation and is dropped when it fails
    const runs = (graphs: ServingRuns['mcGraphs']): ServingRuns => ({
      features: features.length,
      outputSize,
      maxRunRows: opts.maxRunRows,
      evalRun: (x, rows) => runEval(io, evalSession, x, rows),
      mcGraphs: graphs,
    });
    const runOnes = (g: McGraphSession) => (x: Float32Array, rows: number, s: number) =>
      runChunk(
        io,
        g,
        x,
        masks.map((m) => new Float32Array(s * rows * m.rowSize)),
        s,
        rows,
        (b) => b.fill(1),
      );
    // a copy of a model the main thread has checked (an MC worker's: RuntimeOptions.selfCheck) skips it
    const check = opts.selfCheck === false ? async (_: ServingRuns) => {} : selfCheck;
    try {
      await check(runs(mcPlain ? [{ label: 'plain', runOnes: runOnes(mcPlain) }] : []));
    } catch (err) {
      if (err instanceof ModelFormatError) throw new ModelLoadError(file, err.message);
      throw err;
    }
    let sharedPrefixSkipped: string | null = null;
    if (mcShared) {
      try {
        await check(runs([{ label: 'shared-prefix', runOnes: runOnes(mcShared) }]));
      } catch (err) {
        if (!(err instanceof ModelFormatError)) throw err;
        sharedPrefixSkipped = err.message;
        await mcShared.session.release().catch(() => undefined);
        sessions.splice(sessions.indexOf(mcShared.session), 1);
        mcShared = null;
      }
    }
    return {
      name,
      version: source.version ?? '1',
      file,
      cardPath,
      card: { ...card, name },
      info,
      task,
      features,
      labels,
      outputName,
      logVarianceName: task === 'regression' ? logVarianceName : null,
      logVarianceBounds: task === 'regression' ? logVarianceBounds : null,
      uncertainty,
      outputSize,
      outputIsVector,
      outputKind,
      aleatoricStd: alea,
      masks,
      evalSession,
      mcPlain,
      mcShared,
      runtime: opts,
      loadMs: performance.now() - started,
      foldedNodes,
      batchRelaxed: relaxed?.message ?? null,
      sharedPrefixSkipped,
    };
  } catch (err) {
    await Promise.all(sessions.map((s) => s.release().catch(() => undefined)));
    throw err;
  }
}

/**
 * Ranks of `tensors` in the eval graph, probed with two rows; null unless every one is float32 with the
 * batch as first dimension (only those can be repeated per sample).
 */
async function tensorRanks(
  model: OnnxProto,
  info: GraphInfo,
  tensors: string[],
  zeros: { data: Float32Array; dims: number[] },
  opts: SessionOptions,
): Promise<number[] | null> {
  let probe: OrtSession | null = null;
  try {
    probe = await createSession(probeGraph(model, info, tensors), opts);
    const out = await probe.run(
      { [info.input.name]: zeros },
      tensors.filter((t) => t !== info.input.name),
    );
    const ranks = tensors.map((t) =>
      t === info.input.name ? 2 : out[t]!.dims[0] === 2 ? out[t]!.dims.length : Number.NaN,
    );
    return ranks.some(Number.isNaN) ? null : ranks;
  } catch {
    return null;
  } finally {
    await probe?.release();
  }
}

/**
 * The clamp of a heteroscedastic model's log-variance output in target units²: the trainer clamps its
 * standardised log-variance to ±MAX_LOG_VARIANCE (src/train/mlp.ts), and its export adds 2·log(y_std)
 * (src/train/export-onnx.ts), so the bounds are ±MAX_LOG_VARIANCE + 2·log(y_std), y_std the graph's
 * `y_std` constant. A graph without one (not exported by the trainer) is taken as standardised: ±MAX.
 */
function logVarianceBoundsOf(model: OnnxProto): LogVarianceBounds {
  const yStd = constantValues(model, 'y_std');
  const centre = yStd && yStd.length === 1 && yStd[0]! > 0 ? 2 * Math.log(yStd[0]!) : 0;
  return { lo: centre - MAX_LOG_VARIANCE, hi: centre + MAX_LOG_VARIANCE };
}
