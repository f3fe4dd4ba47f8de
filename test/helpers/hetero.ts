/** A heteroscedastic network for serving tests (random weights: the served formulas need no training). */
import { createMlp } from '../../src/train/mlp.js';
import type { FittedNetwork } from '../../src/train/train.js';
import { Rng } from '../../src/util/rng.js';

/** A heteroscedastic network (random weights, no training needed): 2 inputs, 16 ReLU, dropout 0.3, outputs μ and log σ². */
export function heteroNet(): FittedNetwork {
  const spec = { inputs: 2, hidden: [16], outputs: 2, activation: 'relu' as const, dropout: [0.3] };
  const net = createMlp(spec, new Rng(21));
  // a log-variance that varies across rows and masks: larger weights on its row of the last layer
  const last = net.layers[1]!;
  for (let j = 0; j < last.in; j++) last.w[last.in + j] = last.w[last.in + j]! * 3;
  return {
    task: 'regression',
    features: ['a', 'b'],
    target: 'y',
    labels: [],
    spec,
    net,
    noise: 'heteroscedastic',
    xMean: Float32Array.from([0.5, -1]),
    xStd: Float32Array.from([2, 0.5]),
    yMean: Math.fround(10),
    yStd: Math.fround(3.7),
    history: [],
    bestEpoch: 0,
    epochsRun: 0,
    engine: 'js',
    trainRows: 0,
    valRows: 0,
    featureStats: { min: [0, 0], max: [1, 1], mean: [0, 0], std: [1, 1] },
  };
}
