/**
 * The card against the graph (src/model/onnx/card-check.ts), pure: no file and no onnxruntime, a
 * GraphInfo and probed shapes written by hand. The loader's messages are these (plus the file and the
 * card's source), so they are pinned here.
 */
import { describe, expect, it } from 'vitest';
import type { Card } from '../../../src/model/card.js';
import {
  type CardMatch,
  type ProbedShapes,
  checkCard,
  checkShapes,
  probeFetches,
  uncertaintySettings,
} from '../../../src/model/onnx/card-check.js';
import { type GraphInfo, ModelFormatError } from '../../../src/model/onnx/inspect.js';

const graph = (over: Partial<GraphInfo> = {}): GraphInfo => ({
  opset: 17,
  irVersion: 8,
  producer: 'test',
  input: { name: 'x', elemType: 1, dims: [null, 3] },
  controlInputs: [],
  outputs: [
    { name: 'y', elemType: 1, dims: [null, 2] },
    { name: 'lv', elemType: 1, dims: [null, 2] },
  ],
  dropouts: [
    { name: 'd0', input: 'x', ratio: 0.1 },
    { name: 'd1', input: 'h1', ratio: 0 },
    { name: 'd2', input: 'h2', ratio: 0.3 },
  ],
  metadata: {},
  ...over,
});

const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ModelFormatError);
    return (err as Error).message;
  }
  throw new Error('no refusal');
};

describe('checkCard: the card against the inspected graph', () => {
  it('without a card, the features are x0 … x(F−1) from the graph and the first output is served', () => {
    expect(checkCard({}, graph())).toEqual({ features: ['x0', 'x1', 'x2'], outputName: 'y', logVarianceName: null });
  });

  it("takes the card's features, output roles and log-variance output", () => {
    const card: Card = { features: ['a', 'b', 'c'], output_roles: { mean: 'y', log_variance: 'lv' } };
    expect(checkCard(card, graph())).toEqual({ features: ['a', 'b', 'c'], outputName: 'y', logVarianceName: 'lv' });
  });

  it('refuses each disagreement, naming both sides', () => {
    expect(refusal(() => checkCard({ features: ['a', 'b'] }, graph()))).toBe(
      'the card lists 2 features but the graph input "x" has 3',
    );
    expect(refusal(() => checkCard({}, graph({ input: { name: 'x', elemType: 1, dims: [null, null] } })))).toBe(
      'the feature dimension of input "x" is not fixed and no model.json lists the features',
    );
    expect(refusal(() => checkCard({ dropout: [0.1, 0.2] }, graph()))).toBe(
      "the card's dropout rates [0.1, 0.2] do not match the graph's Dropout nodes [0.1, 0, 0.3]",
    );
    const stats = { rows: 5, min: [0, 0, 0], max: [1, 1, 1], mean: [0, 0, 0], std: [1, 1] };
    expect(refusal(() => checkCard({ feature_stats: stats }, graph()))).toBe(
      'feature_stats.std has 2 values for 3 features',
    );
    expect(refusal(() => checkCard({ feature_stats: { ...stats, std: [1, 1, 1], min: [0, 2, 0] } }, graph()))).toBe(
      'feature_stats: a min is above its max',
    );
    expect(refusal(() => checkCard({ output: 'z' }, graph()))).toBe('the card names output "z", the graph has y, lv');
    expect(refusal(() => checkCard({ output_roles: { mean: 'z' } }, graph()))).toBe(
      'the card names output "z" (output_roles.mean), the graph has y, lv',
    );
    expect(refusal(() => checkCard({ output_roles: { mean: 'y', log_variance: 'v' } }, graph()))).toBe(
      `the card's output_roles.log_variance names output "v", the graph has y, lv`,
    );
  });

  it('compares only the live dropout rates (a rate-0 layer needs no node), to 1e-6', () => {
    expect(() => checkCard({ dropout: [0.1, 0, 0.3000001] }, graph())).not.toThrow();
    expect(() => checkCard({ dropout: [0.1, 0.3] }, graph())).not.toThrow();
    expect(() => checkCard({ dropout: [0.1, 0.301] }, graph())).toThrow(ModelFormatError);
  });
});

describe('checkShapes: the probed shapes and the card', () => {
  const match: CardMatch = { features: ['a', 'b', 'c'], outputName: 'y', logVarianceName: null };
  const shapes = (dims: ProbedShapes['dims']): ProbedShapes => ({
    rows: 2,
    dims: { x: [2, 3], h1: [2, 4], h2: [2, 5, 2], ...dims },
  });

  it('numbers the masks of the live dropouts in graph order, with their row shape and size', () => {
    const served = checkShapes({}, graph(), match, shapes({ y: [2, 2] }));
    expect(served.masks).toEqual([
      { input: 'dropout_serve.mask.0', rowDims: [3], rowSize: 3, ratio: 0.1 },
      { input: 'dropout_serve.mask.1', rowDims: [5, 2], rowSize: 10, ratio: 0.3 },
    ]);
    expect(served).toMatchObject({
      task: 'regression',
      labels: [],
      outputSize: 2,
      outputIsVector: false,
      outputKind: 'regression',
      aleatoricStd: [0],
    });
    expect(checkShapes({}, graph(), match, shapes({ y: [2] }))).toMatchObject({ outputSize: 1, outputIsVector: true });
  });

  it('a classifier: labels from the card or 0 … K−1, logits unless the card says probabilities', () => {
    const three = shapes({ y: [2, 3] });
    expect(checkShapes({ task: 'classification' }, graph(), match, three)).toMatchObject({
      task: 'classification',
      labels: ['0', '1', '2'],
      outputKind: 'logits',
    });
    expect(checkShapes({ labels: ['a', 'b', 'c'], output_kind: 'probabilities' }, graph(), match, three)).toMatchObject(
      { task: 'classification', labels: ['a', 'b', 'c'], outputKind: 'probabilities' },
    );
  });

  it('refuses shapes the server cannot serve and cards that do not fit them', () => {
    expect(refusal(() => checkShapes({}, graph(), match, shapes({ y: [2, 2, 2] })))).toBe(
      'output "y" has shape [2, 2, 2] for 2 rows; [batch] or [batch, outputs] is required',
    );
    expect(refusal(() => checkShapes({}, graph(), match, shapes({ y: [1, 2] })))).toBe(
      'output "y" has shape [1, 2] for 2 rows; [batch] or [batch, outputs] is required',
    );
    const hetero = { ...match, logVarianceName: 'lv' };
    expect(refusal(() => checkShapes({}, graph(), hetero, shapes({ y: [2, 2], lv: [2, 1] })))).toBe(
      'the log-variance output "lv" has shape [2, 1] for 2 rows, the mean output "y" [2, 2]; they must match',
    );
    expect(refusal(() => checkShapes({}, graph(), match, shapes({ y: [2, 2], h2: [8, 2] })))).toBe(
      'Dropout d2: its input "h2" does not have the batch as first dimension ([8, 2] for 2 rows)',
    );
    expect(refusal(() => checkShapes({ task: 'classification' }, graph(), match, shapes({ y: [2, 1] })))).toBe(
      'a classifier needs an output with at least 2 classes; "y" has 1',
    );
    expect(refusal(() => checkShapes({ labels: ['a', 'b'] }, graph(), match, shapes({ y: [2, 3] })))).toBe(
      'the card lists 2 labels but output "y" has 3 classes',
    );
    expect(refusal(() => checkShapes({ aleatoric_std: [1, 2, 3] }, graph(), match, shapes({ y: [2, 2] })))).toBe(
      'aleatoric_std has 3 values for 2 outputs',
    );
  });

  it('a rate-0 Dropout is not probed: its input may have any shape', () => {
    expect(() => checkShapes({}, graph(), match, shapes({ y: [2, 2], h1: [7] }))).not.toThrow();
  });
});

describe('probeFetches and uncertaintySettings', () => {
  it('fetches the served outputs and every Dropout input once', () => {
    expect(probeFetches(graph(), { features: [], outputName: 'y', logVarianceName: 'lv' })).toEqual([
      'y',
      'lv',
      'x',
      'h1',
      'h2',
    ]);
    const onOutput = graph({ dropouts: [{ name: 'd', input: 'y', ratio: 0.5 }] });
    expect(probeFetches(onOutput, { features: [], outputName: 'y', logVarianceName: null })).toEqual(['y']);
  });

  it('heteroscedastic only for a regression with a log-variance output; conformal by default with scores', () => {
    const card: Card = { conformal: { scores: [0.5, 1, 2] }, temperature: 2, epistemic_scale: 1.5 };
    const reg = uncertaintySettings(card, 'regression', 'lv');
    expect(reg).toMatchObject({
      noise: 'heteroscedastic',
      epistemicScale: 1.5,
      temperature: 1,
      intervalMethod: 'conformal',
    });
    expect(Array.from(reg.conformalScores!)).toEqual([0.5, 1, 2]);
    const cls = uncertaintySettings(card, 'classification', 'lv');
    expect(cls).toMatchObject({ noise: 'homoscedastic', temperature: 2, conformalScores: null });
    expect(uncertaintySettings({}, 'regression', null)).toMatchObject({
      noise: 'homoscedastic',
      intervalMethod: 'gaussian',
      epistemicScale: 1,
    });
  });
});
