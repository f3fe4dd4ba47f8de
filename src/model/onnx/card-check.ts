/**
 * The card against the graph, pure (no file, no onnxruntime): what the card says (features, dropout
 * rates, feature statistics, outputs, task, labels, noise) must agree with what inspection found, and,
 * once the probe has run, with the shapes the graph gives. Each check throws ModelFormatError naming
 * the disagreement; what passes is what the model serves.
 */
import type { Card } from '../card.js';
import { type LogVarianceBounds, MAX_LOG_VARIANCE } from '../../uncertainty/moments.js';
import type { Model, Task } from '../model.js';
import type { UncertaintySettings } from '../uncertainty.js';
import type { Model as OnnxProto } from '../../onnx-proto/proto.js';
import { constantValues } from './graph-query.js';
import { type GraphInfo, ModelFormatError } from './inspect.js';
import { maskInputName } from './rewrite.js';
import type { MaskSpec } from './run.js';

/** What the card and the graph agree on before anything runs. */
export interface CardMatch {
  features: string[];
  /** The output served (the mean for a heteroscedastic model). */
  outputName: string;
  /** A heteroscedastic model's log-variance output, or null. */
  logVarianceName: string | null;
}

const fail = (message: string): never => {
  throw new ModelFormatError(message);
};

/** Check the card against the inspected graph: features, dropout rates, feature_stats, output names. */
export function checkCard(card: Card, info: GraphInfo): CardMatch {
  const graphF = info.input.dims?.[1] ?? null;
  if (card.features && graphF !== null && card.features.length !== graphF)
    fail(`the card lists ${card.features.length} features but the graph input "${info.input.name}" has ${graphF}`);
  const featureCount = card.features?.length ?? graphF;
  if (featureCount === null)
    fail(`the feature dimension of input "${info.input.name}" is not fixed and no model.json lists the features`);
  const features = card.features ?? Array.from({ length: featureCount! }, (_, j) => `x${j}`);
  checkDropoutRates(card, info);
  checkFeatureStats(card, features.length);
  const outputName = card.output_roles?.mean ?? card.output ?? info.outputs[0]!.name;
  const graphOutputs = info.outputs.map((o) => o.name).join(', ');
  if (!info.outputs.some((o) => o.name === outputName))
    fail(
      `the card names output "${outputName}"${card.output_roles ? ' (output_roles.mean)' : ''}, the graph has ${graphOutputs}`,
    );
  const logVarianceName = card.output_roles?.log_variance ?? null;
  if (logVarianceName !== null && !info.outputs.some((o) => o.name === logVarianceName))
    fail(`the card's output_roles.log_variance names output "${logVarianceName}", the graph has ${graphOutputs}`);
  return { features, outputName, logVarianceName };
}

/** Rate-0 layers need no Dropout node, so only the live rates are compared. */
function checkDropoutRates(card: Card, info: GraphInfo): void {
  const cardLive = card.dropout?.filter((p) => p > 0);
  const graphLive = info.dropouts.map((d) => d.ratio).filter((p) => p > 0);
  if (cardLive && (cardLive.length !== graphLive.length || cardLive.some((p, k) => Math.abs(p - graphLive[k]!) > 1e-6)))
    fail(
      `the card's dropout rates [${card.dropout!.join(', ')}] do not match the graph's Dropout nodes [${info.dropouts.map((d) => d.ratio).join(', ')}]`,
    );
}

function checkFeatureStats(card: Card, features: number): void {
  const fs = card.feature_stats;
  if (!fs) return;
  for (const key of ['min', 'max', 'mean', 'std'] as const) {
    if (fs[key].length !== features) fail(`feature_stats.${key} has ${fs[key].length} values for ${features} features`);
  }
  if (fs.min.some((v, j) => v > fs.max[j]!)) fail('feature_stats: a min is above its max');
}

/** The tensors whose shapes the probe must learn: the outputs served and every Dropout's input. */
export function probeFetches(info: GraphInfo, match: CardMatch): string[] {
  return [
    ...new Set([
      match.outputName,
      ...(match.logVarianceName !== null ? [match.logVarianceName] : []),
      ...info.dropouts.map((d) => d.input),
    ]),
  ];
}

/** What the probe learnt: the shape of each fetched tensor for `rows` rows. */
export interface ProbedShapes {
  rows: number;
  dims: Record<string, readonly number[]>;
}

/** What the model serves, from the card and the probed shapes. */
export interface ServedShape {
  task: Task;
  labels: string[];
  outputSize: number;
  /** true when the output holds one value per row with no trailing dimension ([batch]). */
  outputIsVector: boolean;
  outputKind: Model['outputKind'];
  /** Per output (one value for all outputs when the card gives one). */
  aleatoricStd: number[];
  /** The mask input of each live dropout, in graph order, as rewrite.ts numbers them. */
  masks: MaskSpec[];
}

/** Check the probed shapes (the batch first everywhere) and the card's task, labels and noise against them. */
export function checkShapes(card: Card, info: GraphInfo, match: CardMatch, probed: ProbedShapes): ServedShape {
  const { outputName, logVarianceName } = match;
  const N = probed.rows;
  const outDims = probed.dims[outputName]!;
  if (outDims[0] !== N || outDims.length > 2)
    fail(
      `output "${outputName}" has shape [${outDims.join(', ')}] for ${N} rows; [batch] or [batch, outputs] is required`,
    );
  const outputIsVector = outDims.length === 1;
  const outputSize = outputIsVector ? 1 : outDims[1]!;
  if (logVarianceName !== null) {
    const lvDims = probed.dims[logVarianceName]!;
    if (lvDims.join(',') !== outDims.join(','))
      fail(
        `the log-variance output "${logVarianceName}" has shape [${lvDims.join(', ')}] for ${N} rows, the mean output "${outputName}" [${outDims.join(', ')}]; they must match`,
      );
  }
  const masks = info.dropouts
    .filter((d) => d.ratio > 0)
    .map((d, k): MaskSpec => {
      const dims = probed.dims[d.input]!;
      if (dims[0] !== N)
        fail(
          `Dropout ${d.name}: its input "${d.input}" does not have the batch as first dimension ([${dims.join(', ')}] for ${N} rows)`,
        );
      const rowDims = dims.slice(1);
      return { input: maskInputName(k), rowDims, rowSize: rowDims.reduce((a, b) => a * b, 1), ratio: d.ratio };
    });
  return { ...servedTask(card, outputName, outputSize), outputSize, outputIsVector, masks };
}

/** The task, labels, output kind and aleatoric std the card gives for an output of `outputSize` values. */
function servedTask(
  card: Card,
  outputName: string,
  outputSize: number,
): Pick<ServedShape, 'task' | 'labels' | 'outputKind' | 'aleatoricStd'> {
  const task = card.task ?? (card.labels ? 'classification' : 'regression');
  let labels: string[] = [];
  if (task === 'classification') {
    if (outputSize < 2) fail(`a classifier needs an output with at least 2 classes; "${outputName}" has ${outputSize}`);
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
  return { task, labels, outputKind, aleatoricStd: alea };
}

/** Noise model, epistemic scale, temperature, interval default and conformal scores, from the card. */
export function uncertaintySettings(card: Card, task: Task, logVarianceName: string | null): UncertaintySettings {
  const scores = card.conformal?.scores;
  return {
    noise: task === 'regression' && logVarianceName !== null ? 'heteroscedastic' : 'homoscedastic',
    epistemicScale: card.epistemic_scale ?? 1,
    temperature: task === 'classification' ? (card.temperature ?? 1) : 1,
    intervalMethod: card.interval_method ?? (scores?.length ? 'conformal' : 'gaussian'),
    conformalScores: task === 'regression' && scores?.length ? Float64Array.from(scores) : null,
  };
}

/**
 * The clamp of a heteroscedastic model's log-variance output in target units²: the trainer clamps its
 * standardised log-variance to ±MAX_LOG_VARIANCE (src/train/mlp.ts), and its export adds 2·log(y_std)
 * (src/train/export-onnx.ts), so the bounds are ±MAX_LOG_VARIANCE + 2·log(y_std), y_std the graph's
 * `y_std` constant. A graph without one (not exported by the trainer) is taken as standardised: ±MAX.
 * Read it before foldAffine, which folds y_std into the last Gemm.
 */
export function logVarianceBoundsOf(model: OnnxProto): LogVarianceBounds {
  const yStd = constantValues(model, 'y_std');
  const centre = yStd && yStd.length === 1 && yStd[0]! > 0 ? 2 * Math.log(yStd[0]!) : 0;
  return { lo: centre - MAX_LOG_VARIANCE, hi: centre + MAX_LOG_VARIANCE };
}
