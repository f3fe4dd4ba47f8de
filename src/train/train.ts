/**
 * The training loop: standardise, minibatch Adam with dropout, early stopping with best-weights
 * restore, then aleatoric calibration and metrics. Pure: no printing, no files (cli.ts does those).
 */
import { Rng } from '../util/rng.js';
import { calibrateAleatoricStd } from './calibrate.js';
import { type Dataset, type Task, DataError, fitStandardiser, splitRows } from './data.js';
import { classificationMetrics, regressionMetrics, type ClassificationMetrics, type RegressionMetrics } from './metrics.js';
import {
  type Activation,
  type Mlp,
  type MlpSpec,
  createMlp,
  createWorkspace,
  crossEntropyLoss,
  drawMasks,
  forward,
  mseLoss,
  softmaxRows,
} from './mlp.js';
import { createEngine, type EngineKind } from './engine.js';
import { Adam } from './optim.js';

export interface TrainOptions {
  hidden: number[];
  /** One rate for every hidden layer, or one per layer. */
  dropout: number[];
  activation: Activation;
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  /** Stop after this many epochs without a better validation loss (0 = never). */
  patience: number;
  valSplit: number;
  seed: number;
  /** Monte Carlo passes used for calibration and metrics. */
  mcSamples: number;
  /** Compute engine: auto = WebAssembly SIMD for ReLU networks, JavaScript otherwise. */
  engine: 'auto' | EngineKind;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = {
  hidden: [50],
  dropout: [0.3],
  activation: 'relu',
  epochs: 300,
  batchSize: 32,
  lr: 1e-3,
  weightDecay: 1e-4,
  patience: 0,
  valSplit: 0.2,
  seed: 0,
  mcSamples: 200,
  engine: 'auto',
};

export interface EpochLog {
  epoch: number;
  trainLoss: number;
  valLoss: number;
  elapsedMs: number;
  best: boolean;
}

export interface TrainedModel {
  task: Task;
  features: string[];
  target: string;
  labels: string[];
  spec: MlpSpec;
  net: Mlp;
  /** Input standardisation, float32-exact (the same numbers are written to the ONNX graph). */
  xMean: Float32Array;
  xStd: Float32Array;
  /** Regression target standardisation (mean 0, std 1 for classification). */
  yMean: number;
  yStd: number;
  aleatoricStd: number;
  history: EpochLog[];
  bestEpoch: number;
  epochsRun: number;
  /** The engine that ran the minibatch steps. */
  engine: EngineKind;
  trainRows: number;
  valRows: number;
  metrics: { validation: RegressionMetrics | ClassificationMetrics; test?: RegressionMetrics | ClassificationMetrics };
}

function expandDropout(dropout: number[], layers: number): number[] {
  if (dropout.length === 1) return Array.from({ length: layers }, () => dropout[0]!);
  if (dropout.length !== layers) {
    throw new DataError(`--dropout has ${dropout.length} rates but --hidden has ${layers} layers (give one rate or one per layer)`);
  }
  return dropout;
}

/** Standardise rows of x into a Float32Array with float32 statistics, the way the ONNX graph does. */
export function standardise(x: Float64Array, n: number, f: number, mean: Float32Array, std: Float32Array): Float32Array {
  const out = new Float32Array(n * f);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < f; j++) out[i * f + j] = Math.fround(Math.fround(x[i * f + j]!) - mean[j]!) / std[j]!;
  }
  return out;
}

/** Eval-mode outputs (rows × outputs) of standardised inputs, in the network's own (standardised) units. */
export function evalForward(net: Mlp, xs: Float32Array, n: number): Float32Array {
  const ws = createWorkspace(net.spec, n);
  return Float32Array.from(forward(net, xs, n, ws, null));
}

/**
 * T stochastic passes (dropout on) over n standardised rows; calls `each(out)` with the rows × outputs
 * result of every pass. Masks come from a generator seeded with `seed`.
 */
export function mcPasses(net: Mlp, xs: Float32Array, n: number, samples: number, seed: number, each: (out: Float32Array) => void): void {
  const ws = createWorkspace(net.spec, n);
  const rng = new Rng(seed);
  const masks = drawMasks(net.spec, n, rng);
  for (let t = 0; t < samples; t++) {
    drawMasks(net.spec, n, rng, masks);
    each(forward(net, xs, n, ws, masks) as Float32Array);
  }
}

/** MC mean and std per row of a single-output regression network, in target units. */
export function mcRegression(m: TrainedModel, xs: Float32Array, n: number, samples: number, seed: number): { mean: Float64Array; std: Float64Array } {
  const sum = new Float64Array(n);
  const sumSq = new Float64Array(n);
  mcPasses(m.net, xs, n, samples, seed, (out) => {
    for (let i = 0; i < n; i++) {
      const v = out[i]! * m.yStd + m.yMean;
      sum[i]! += v;
      sumSq[i]! += v * v;
    }
  });
  const mean = new Float64Array(n);
  const std = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    mean[i] = sum[i]! / samples;
    // unbiased sample variance, as the server reports it
    std[i] = Math.sqrt(Math.max(0, (sumSq[i]! - samples * mean[i]! * mean[i]!) / Math.max(1, samples - 1)));
  }
  return { mean, std };
}

/** MC-averaged class probabilities (rows × classes). */
export function mcClassification(m: TrainedModel, xs: Float32Array, n: number, samples: number, seed: number): Float64Array {
  const k = m.labels.length;
  const acc = new Float64Array(n * k);
  mcPasses(m.net, xs, n, samples, seed, (out) => {
    const p = softmaxRows(out, n, k);
    for (let i = 0; i < p.length; i++) acc[i]! += p[i]!;
  });
  for (let i = 0; i < acc.length; i++) acc[i]! /= samples;
  return acc;
}

/** Metrics of a trained model on a dataset (validation or test). */
export function evaluate(m: TrainedModel, ds: Dataset, seed: number, samples: number): RegressionMetrics | ClassificationMetrics {
  const xs = standardise(ds.x, ds.n, ds.f, m.xMean, m.xStd);
  const evalOut = evalForward(m.net, xs, ds.n);
  if (m.task === 'regression') {
    const pred = Float64Array.from(evalOut, (v) => v * m.yStd + m.yMean);
    const mc = mcRegression(m, xs, ds.n, samples, seed);
    return regressionMetrics(ds.y, pred, mc.mean, mc.std, m.aleatoricStd);
  }
  const k = m.labels.length;
  return classificationMetrics(ds.y, softmaxRows(evalOut, ds.n, k), mcClassification(m, xs, ds.n, samples, seed), k);
}

/**
 * Train a dropout MLP on `data` (validation rows split off with the seed), calibrate it, and measure
 * it on the validation rows and on `test` when given. `onEpoch` receives every epoch's losses.
 */
export function train(data: Dataset, opts: TrainOptions, test?: Dataset, onEpoch?: (log: EpochLog) => void): TrainedModel {
  const task = data.task;
  const outputs = task === 'regression' ? 1 : data.labels.length;
  const dropout = expandDropout(opts.dropout, opts.hidden.length);
  for (const p of dropout) if (!(p >= 0 && p < 1)) throw new DataError(`dropout rate ${p} is outside [0, 1)`);
  const spec: MlpSpec = { inputs: data.f, hidden: opts.hidden, outputs, activation: opts.activation, dropout };

  // Separate streams so that changing one (e.g. epochs) does not reshuffle the others.
  const [trainSet, valSet] = splitRows(data, opts.valSplit, opts.seed * 7919 + 1, 'validation split');
  if (task === 'classification') {
    const present = new Set(trainSet.y);
    if (present.size < 2) throw new DataError('the training split holds a single class; add rows or change --seed/--val-split');
  }
  const initRng = new Rng(opts.seed * 7919 + 2);
  const shuffleRng = new Rng(opts.seed * 7919 + 3);
  const dropoutRng = new Rng(opts.seed * 7919 + 4);

  const xs = fitStandardiser(trainSet.x, trainSet.n, trainSet.f);
  const xMean = Float32Array.from(xs.mean);
  const xStd = Float32Array.from(xs.std);
  let yMean = 0;
  let yStd = 1;
  if (task === 'regression') {
    const ys = fitStandardiser(trainSet.y, trainSet.n, 1);
    yMean = Math.fround(ys.mean[0]!);
    yStd = Math.fround(ys.std[0]!);
  }
  const xTrain = standardise(trainSet.x, trainSet.n, trainSet.f, xMean, xStd);
  const xVal = standardise(valSet.x, valSet.n, valSet.f, xMean, xStd);
  const target = (ds: Dataset): Float32Array =>
    task === 'regression' ? Float32Array.from(ds.y, (v) => (v - yMean) / yStd) : Float32Array.from(ds.y);
  const yTrain = target(trainSet);
  const yVal = target(valSet);

  const net = createMlp(spec, initRng);
  const batch = Math.min(opts.batchSize, trainSet.n);
  // the engine may move net.params and net.grads into its own memory: create it before the optimiser
  const engine = createEngine(net, batch, xVal, valSet.n, opts.engine);
  const adam = new Adam(net.params.length, { lr: opts.lr, weightDecay: opts.weightDecay });
  const { xb, masks, dOut } = engine;
  const yb = new Float32Array(batch);
  const order = new Uint32Array(trainSet.n);
  for (let i = 0; i < order.length; i++) order[i] = i;
  const valD = new Float32Array(valSet.n * outputs);
  const valLoss = (): number => {
    const out = engine.evalOutputs();
    return task === 'regression' ? mseLoss(out, yVal, valSet.n, 1, valD) : crossEntropyLoss(out, yVal, valSet.n, outputs, valD);
  };

  const history: EpochLog[] = [];
  let best = Infinity;
  let bestEpoch = 0;
  let bestParams = net.params.slice();
  let sinceBest = 0;
  const start = performance.now();
  let epoch = 0;
  for (epoch = 1; epoch <= opts.epochs; epoch++) {
    shuffleRng.shuffle(order);
    let lossSum = 0;
    for (let s = 0; s < trainSet.n; s += batch) {
      // PyTorch's DataLoader keeps the short last batch (drop_last=False); so do we
      const rows = Math.min(batch, trainSet.n - s);
      const f = spec.inputs;
      for (let r = 0; r < rows; r++) {
        const i = order[s + r]!;
        // an index loop: subarray() + set() allocated a view per row
        for (let j = 0; j < f; j++) xb[r * f + j] = xTrain[i * f + j]!;
        yb[r] = yTrain[i]!;
      }
      drawMasks(spec, rows, dropoutRng, masks);
      const out = engine.forward(rows);
      const loss = task === 'regression' ? mseLoss(out, yb, rows, 1, dOut) : crossEntropyLoss(out, yb, rows, outputs, dOut);
      lossSum += loss * rows;
      engine.backward(rows);
      adam.step(net.params, net.grads);
      engine.paramsChanged();
    }
    const vl = valLoss();
    const improved = vl < best;
    if (improved) {
      best = vl;
      bestEpoch = epoch;
      bestParams = net.params.slice();
      sinceBest = 0;
    } else sinceBest++;
    const log: EpochLog = { epoch, trainLoss: lossSum / trainSet.n, valLoss: vl, elapsedMs: performance.now() - start, best: improved };
    history.push(log);
    onEpoch?.(log);
    if (!Number.isFinite(log.trainLoss)) throw new DataError(`training diverged at epoch ${epoch} (loss ${log.trainLoss}); lower --lr`);
    if (opts.patience > 0 && sinceBest >= opts.patience) break;
  }
  const epochsRun = Math.min(epoch, opts.epochs);
  // Early stopping restores the best weights; without it we keep the final weights, like a plain loop.
  if (opts.patience > 0) net.params.set(bestParams);

  const model: TrainedModel = {
    task,
    features: data.features,
    target: data.target,
    labels: data.labels,
    spec,
    net,
    xMean,
    xStd,
    yMean,
    yStd,
    aleatoricStd: 0,
    history,
    bestEpoch,
    epochsRun,
    engine: engine.kind,
    trainRows: trainSet.n,
    valRows: valSet.n,
    metrics: { validation: undefined as unknown as RegressionMetrics },
  };
  const calSeed = opts.seed * 7919 + 5;
  if (task === 'regression') {
    const mc = mcRegression(model, xVal, valSet.n, opts.mcSamples, calSeed);
    const residuals = Float64Array.from(valSet.y, (v, i) => v - mc.mean[i]!);
    const epiVar = Float64Array.from(mc.std, (s) => s * s);
    model.aleatoricStd = calibrateAleatoricStd(residuals, epiVar, yStd);
  }
  model.metrics.validation = evaluate(model, valSet, calSeed + 1, opts.mcSamples);
  if (test) model.metrics.test = evaluate(model, test, calSeed + 2, opts.mcSamples);
  return model;
}
