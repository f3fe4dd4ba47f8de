/**
 * What a tensor model serves from its output: the task, the class axis, the labels, how to read a
 * classifier's values, and the output's dims per row (OutputLayout). From the card when it says
 * (`task`, `class_axis`, `labels`, `output_kind`), else inferred:
 *  - task: a classifier when the card names labels or a class axis, else when the output's name says
 *    logits or probabilities (`logits`, `probs`, `class_probabilities`…), else regression: a
 *    per-element regression is the reading that never invents classes;
 *  - class axis: the last of [N, K] and [N, L, K] (tokens), axis 1 of [N, K, H, W] and higher ranks
 *    (images, volumes: PyTorch's channel-first layout).
 * The choice and its source go to the `model loaded` line.
 */
import type { Card } from '../card.js';
import type { Model, OutputLayout, Task } from '../model.js';
import { DataType } from '../../onnx-proto/proto.js';
import { ModelFormatError, type TensorInfo } from './inspect.js';

export interface ServedOutput {
  task: Task;
  labels: string[];
  outputKind: Model['outputKind'];
  layout: OutputLayout;
  /** Classes (a classifier) or values per row (regression; -1 when a dim depends on the input). */
  outputSize: number;
  /** Where the class axis came from (null: regression), for the load line. */
  classAxisFrom: 'card' | 'inferred' | null;
  /** Per output element, or one value for all (regression; [0] without a card value). */
  aleatoricStd: number[];
}

const fail = (message: string): never => {
  throw new ModelFormatError(message);
};

const LOOKS_LIKE_CLASSES = /logit|prob/i;

/** The class axis of a classifier output of `rank` (batch included) when the card gives none. */
export const inferClassAxis = (rank: number): number => (rank === 3 ? 2 : 1);

/**
 * The served output of a tensor model. `probed` is the output's dims for `rows` probe rows; `inputsFixed`
 * says whether every input's non-batch dims are fixed (then a dim the file leaves free is the probed
 * one, else it stays -1). Throws ModelFormatError naming the problem.
 */
export function servedOutput(
  card: Card,
  output: TensorInfo,
  probed: readonly number[],
  rows: number,
  inputsFixed: boolean,
): ServedOutput {
  const name = `output "${output.name}"`;
  checkOutputType(output);
  if (probed[0] !== rows)
    fail(`${name} has shape [${probed.join(', ')}] for ${rows} rows; the batch must be its first axis`);
  const dims = probed.slice(1).map((d, i) => {
    const declared = output.dims?.[i + 1];
    return typeof declared === 'number' ? declared : inputsFixed ? d : -1;
  });
  const task: Task =
    card.task ??
    (card.labels !== undefined || card.class_axis !== undefined || LOOKS_LIKE_CLASSES.test(output.name)
      ? 'classification'
      : 'regression');
  if (task === 'regression') return regressionOutput(card, output.name, dims);
  return classifierOutput(card, output.name, dims);
}

/** A tensor model's output must be float32 (checked before the probe runs it). */
export function checkOutputType(output: TensorInfo): void {
  if (output.elemType !== DataType.FLOAT)
    fail(`output "${output.name}" is not float32; a tensor model's output must be float32`);
}

function regressionOutput(card: Card, name: string, dims: number[]): ServedOutput {
  const outputSize = dims.some((d) => d < 0) ? -1 : dims.reduce((a, b) => a * b, 1);
  const alea = card.aleatoric_std;
  const aleatoricStd = alea === undefined ? [0] : Array.isArray(alea) ? alea : [alea];
  if (aleatoricStd.length !== 1 && aleatoricStd.length !== outputSize)
    fail(`aleatoric_std has ${aleatoricStd.length} values for ${outputSize} values per row of output "${name}"`);
  return {
    task: 'regression',
    labels: [],
    outputKind: 'regression',
    layout: { dims, classAxis: null },
    outputSize,
    classAxisFrom: null,
    aleatoricStd,
  };
}

function classifierOutput(card: Card, name: string, dims: number[]): ServedOutput {
  const rank = dims.length + 1;
  const shape = `[N${dims.map((d) => `, ${d < 0 ? '?' : d}`).join('')}]`;
  if (rank < 2) fail(`a classifier's output needs a class axis; output "${name}" has shape ${shape}`);
  const classAxis = card.class_axis ?? inferClassAxis(rank);
  if (classAxis >= rank)
    fail(`the card's class_axis ${classAxis} is outside output "${name}" of shape ${shape} (axes 1 … ${rank - 1})`);
  const K = dims[classAxis - 1]!;
  if (K < 2)
    fail(
      `output "${name}" has ${K < 0 ? 'a free extent' : K} on its class axis ${classAxis}; a classifier needs a fixed K ≥ 2`,
    );
  const labels = card.labels ?? Array.from({ length: K }, (_, k) => String(k));
  if (labels.length !== K) fail(`the card lists ${labels.length} labels but output "${name}" has ${K} classes`);
  const outputKind =
    card.output_kind === 'probabilities' ||
    (card.output_kind === undefined && /prob/i.test(name) && !/logit/i.test(name))
      ? 'probabilities'
      : 'logits';
  return {
    task: 'classification',
    labels,
    outputKind,
    layout: { dims, classAxis },
    outputSize: K,
    classAxisFrom: card.class_axis !== undefined ? 'card' : 'inferred',
    aleatoricStd: [0],
  };
}
