/**
 * The training loop: standardise, minibatch Adam with dropout, early stopping with best-weights
 * restore, then calibration (aleatoric σ, conformal scores, temperature) and metrics. Pure: no printing, no files (cli.ts does those).
 */
import { Rng, stream } from '../util/rng.js';
import { calibrateScaleAndNoise } from './calibrate.js';
import { memberSeed, mixPredictives } from './ensemble.js';
import { calibrateOnGrid } from './grid-calibration.js';
import { type Dataset, type Task, DataError, fitStandardiser, splitRows } from './data.js';
import {
  classificationMetrics,
  type Reliability,
  regressionMetrics,
  reliability,
  type ClassificationMetrics,
  type RegressionMetrics,
} from './card-metrics.js';
import { conformalScores } from '../uncertainty/intervals.js';
import {
  type Mlp,
  type MlpSpec,
  createMlp,
  createWorkspace,
  crossEntropyLoss,
  forward,
  gaussianNllLoss,
  mseLoss,
  softmaxRows,
} from './mlp.js';
import { averageProbabilities, fitTemperature } from './temperature.js';
import { createEngine, type EngineKind, type TrainEngine } from './engine.js';
import type { NoiseModel, TrainOptions } from './options.js';
import { Adam } from './optim.js';
import { logVarianceBounds, MomentSums } from '../uncertainty/moments.js';
import type { RefitCorrection } from './refit-correction.js';

export { DEFAULT_TRAIN_OPTIONS, type NoiseModel, type TrainOptions } from './options.js';

export interface EpochLog {
  epoch: number;
  trainLoss: number;
  /** NaN when the run has no validation rows (a refit on all training rows). */
  valLoss: number;
  elapsedMs: number;
  best: boolean;
}

/** Per-feature statistics of the training rows (raw units), in `features` order. */
export interface FeatureStats {
  min: number[];
  max: number[];
  mean: number[];
  /** Population standard deviation. */
  std: number[];
}

/** A fitted network with its standardisation: everything needed to predict. */
export interface FittedNetwork {
  task: Task;
  features: string[];
  target: string;
  labels: string[];
  spec: MlpSpec;
  net: Mlp;
  noise: NoiseModel;
  /** Input standardisation, float32-exact (the same numbers are written to the ONNX graph). */
  xMean: Float32Array;
  xStd: Float32Array;
  /** Regression target standardisation (mean 0, std 1 for classification). */
  yMean: number;
  yStd: number;
  history: EpochLog[];
  bestEpoch: number;
  epochsRun: number;
  /** The engine that ran the minibatch steps. */
  engine: EngineKind;
  trainRows: number;
  valRows: number;
  featureStats: FeatureStats;
  /**
   * The other members of an ensemble (--members): networks with the same architecture, options and
   * standardisation, trained with their own seeds. The model is the uniform mixture of this network and
   * these: each Monte Carlo pass is one member's, the prediction the members' average (ensemble.ts).
   */
  ensemble?: FittedNetwork[];
}

export interface TemperatureMetrics {
  rows: number;
  nll_before: number;
  nll_after: number;
  ece_before: number;
  ece_after: number;
  /** Reliability diagram of the calibration rows after scaling (for a report). */
  reliability: Reliability;
}

/** What calibration rows give a model: the served noise, conformal scores, the temperature. */
export interface Calibration {
  /**
   * The maximum-likelihood σ (target units) of y ~ N(MC mean, s²·MC variance [+ predicted variance] + σ²):
   * homoscedastic, the noise; heteroscedastic, a floor added to the predicted variance (often 0).
   */
  aleatoricStd: number;
  /** s, fitted jointly with σ: the served epistemic std is s × the MC std of the mean. */
  epistemicScale: number;
  /**
   * A target on a coarse grid (grid-calibration.ts): its step and the noise before rounding; then s and σ
   * come from the grid's likelihood and σ is matched to the 90% coverage.
   */
  grid?: TargetGrid;
  /** Sorted |y − mean| / std of the calibration rows (regression; empty for classification). */
  conformalScores: Float64Array;
  /** Logit temperature (classification; 1 for regression). */
  temperature: number;
  temperatureMetrics?: TemperatureMetrics;
  rows: number;
  /** Where the calibration rows come from (recorded in the card). */
  source: string;
  /** A cross-fitted calibration's correction for the refit, and the residual scale applied (1: none). */
  refitCorrection?: AppliedRefitCorrection;
}

/** The refit's correction as calibrateRegression applied it. */
export type AppliedRefitCorrection = RefitCorrection & { residualScale: number };

/** The grid a regression target is recorded on, as calibration found it (target units). */
export interface TargetGrid {
  step: number;
  latentStd: number;
}

export interface TrainedModel extends FittedNetwork {
  aleatoricStd: number;
  epistemicScale: number;
  targetGrid?: TargetGrid;
  conformalScores: Float64Array;
  temperature: number;
  temperatureMetrics?: TemperatureMetrics;
  calibrationRows: number;
  calibrationSource: string;
  refitCorrection?: AppliedRefitCorrection;
  metrics: { validation: RegressionMetrics | ClassificationMetrics; test?: RegressionMetrics | ClassificationMetrics };
}

function expandDropout(dropout: number[], layers: number): number[] {
  if (dropout.length === 1) return Array.from({ length: layers }, () => dropout[0]!);
  if (dropout.length !== layers) {
    throw new DataError(
      `--dropout has ${dropout.length} rates but --hidden has ${layers} layers (give one rate or one per layer)`,
    );
  }
  return dropout;
}

/** Standardise rows of x into a Float32Array with float32 statistics, the way the ONNX graph does. */
export function standardise(
  x: Float64Array,
  n: number,
  f: number,
  mean: Float32Array,
  std: Float32Array,
): Float32Array {
  const out = new Float32Array(n * f);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < f; j++) out[i * f + j] = Math.fround(Math.fround(x[i * f + j]!) - mean[j]!) / std[j]!;
  }
  return out;
}

/**
 * Rows a Monte Carlo or evaluation pass runs at a time: its buffers (rows × widths, and the masks) stay
 * a few MB however many rows a validation, calibration or test set has (issue 22: 100,000 validation rows
 * of a 200-wide network held 400 MB at once).
 */
export const PASS_CHUNK_ROWS = 2048;

/** Eval-mode outputs (rows × outputs) of standardised inputs, in the network's own (standardised) units. */
export function evalForward(net: Mlp, xs: Float32Array, n: number): Float32Array {
  const f = net.spec.inputs;
  const K = net.spec.outputs;
  const ws = createWorkspace(net.spec, Math.min(n, PASS_CHUNK_ROWS));
  const out = new Float32Array(n * K);
  for (let a = 0; a < n; a += PASS_CHUNK_ROWS) {
    const rows = Math.min(PASS_CHUNK_ROWS, n - a);
    out.set(forward(net, xs.subarray(a * f, (a + rows) * f), rows, ws, null).subarray(0, rows * K), a * K);
  }
  return out;
}

/** The dropout masks of one pass, in the order they are drawn: the input's (when any), then each hidden layer's. */
interface MaskBlock {
  width: number;
  p: number;
  /** The chunk's mask (chunk rows × width). */
  mask: Float32Array;
}

/**
 * One generator per mask block of a pass over n rows, each at the block's first unit: the blocks are
 * drawn one after the other over all n rows (mcPasses' stream), so a block's start is found by drawing
 * the blocks before it once more. `rng` itself serves the last block and ends the pass where the
 * unchunked draw would.
 */
function blockCursors(rng: Rng, blocks: MaskBlock[], n: number): Rng[] {
  const cursors: Rng[] = [];
  for (const b of blocks.slice(0, -1)) {
    cursors.push(rng.clone());
    skipBlock(rng, b, n);
  }
  cursors.push(rng);
  return cursors;
}

/** Draw (and drop) block `b`'s units over n rows. */
function skipBlock(rng: Rng, b: MaskBlock, n: number): void {
  for (let a = 0; a < n; a += PASS_CHUNK_ROWS) {
    const rows = Math.min(PASS_CHUNK_ROWS, n - a);
    rng.fillDropoutMaskRange(b.mask, 0, rows * b.width, b.p);
  }
}

/**
 * A regression model's prediction (dropout off) in target units: its network's output, or for an
 * ensemble the members' average (what the exported graph's predict gives).
 */
export function ensemblePrediction(m: FittedNetwork, xs: Float32Array, n: number): Float64Array {
  const members = [m, ...(m.ensemble ?? [])];
  const K = m.spec.outputs;
  const pred = new Float64Array(n);
  for (const e of members) {
    const out = evalForward(e.net, xs, n);
    for (let i = 0; i < n; i++) pred[i]! += (out[i * K]! * e.yStd + e.yMean) / members.length;
  }
  return pred;
}

/**
 * T stochastic passes (dropout on) over n standardised rows; calls `each(out, start, rows)` with the
 * rows × outputs result of rows [start, start + rows) of every pass, pass by pass and in row order within
 * a pass, PASS_CHUNK_ROWS rows at a time. Masks come from a generator seeded with `seed`: per pass the
 * input mask over all n rows (when the network has input dropout), then one mask over all n rows per
 * hidden layer; the chunks draw exactly those units (blockCursors), so the outputs do not depend on the
 * chunk size.
 */
export function mcPasses(
  net: Mlp,
  xs: Float32Array,
  n: number,
  samples: number,
  seed: number,
  each: (out: Float32Array, start: number, rows: number) => void,
): void {
  const { spec } = net;
  const f = spec.inputs;
  const chunk = Math.min(n, PASS_CHUNK_ROWS);
  const ws = createWorkspace(spec, chunk);
  const rng = new Rng(seed);
  const pIn = spec.inputDropout ?? 0;
  const input: MaskBlock[] = pIn > 0 ? [{ width: f, p: pIn, mask: new Float32Array(chunk * f) }] : [];
  const hidden = spec.hidden.map((w, l) => ({ width: w, p: spec.dropout[l]!, mask: new Float32Array(chunk * w) }));
  const blocks = [...input, ...hidden];
  const masks = hidden.map((b) => b.mask);
  // the stream has always begun with one set of hidden masks that no pass used: kept, so that the
  // tuning scores and calibrations (and the shipped models' bytes) stay what they were
  for (const b of hidden) skipBlock(rng, b, n);
  const xMasked = pIn > 0 ? new Float32Array(chunk * f) : null;
  for (let t = 0; t < samples; t++) {
    const cursors = blockCursors(rng, blocks, n);
    for (let a = 0; a < n; a += chunk) {
      const rows = Math.min(chunk, n - a);
      blocks.forEach((b, k) => {
        cursors[k]!.fillDropoutMaskRange(b.mask, 0, rows * b.width, b.p);
      });
      let x = xs.subarray(a * f, (a + rows) * f);
      if (xMasked) {
        const m = input[0]!.mask;
        for (let i = 0; i < rows * f; i++) xMasked[i] = x[i]! * m[i]!;
        x = xMasked;
      }
      each(forward(net, x, rows, ws, masks) as Float32Array, a, rows);
    }
  }
}

/**
 * MC mean and epistemic std (unbiased sample std of the mean output) per row of a regression network,
 * in target units. For a heteroscedastic network this is its first output, the mean.
 */
export function mcRegression(
  m: FittedNetwork,
  xs: Float32Array,
  n: number,
  samples: number,
  seed: number,
): { mean: Float64Array; std: Float64Array } {
  const p = mcPredictive(m, xs, n, samples, seed);
  return { mean: p.mean, std: p.epistemicVar.map(Math.sqrt) };
}

/** The served regression predictive distribution per row, in target units. */
export interface Predictive {
  mean: Float64Array;
  /** Unbiased sample variance of the MC means (the epistemic part). */
  epistemicVar: Float64Array;
  /** Heteroscedastic: MC average of the predicted variance exp(log-variance); null for homoscedastic. */
  aleatoricVar: Float64Array | null;
}

/**
 * Monte Carlo predictive of a regression network, computed by the served statistics' running moments
 * (src/uncertainty/moments.ts): mean = (1/T) Σ μ_t, epistemic variance = Σ (μ_t − mean)² / (T − 1), and
 * for a heteroscedastic network aleatoric variance = (1/T) Σ exp(s_t), s_t the log-variance output in
 * target units, clamped as served (Kendall & Gal 2017, eq. 9). Memory: the running sums of every row
 * (one MomentSums per chunk of mcPasses: each row's sums see its samples in the same order as one over
 * all rows would), never the T samples.
 */
export function mcPredictive(m: FittedNetwork, xs: Float32Array, n: number, samples: number, seed: number): Predictive {
  if (!m.ensemble?.length) return memberPredictive(m, xs, n, samples, seed);
  const members = [m, ...m.ensemble];
  return mixPredictives(members.map((e, j) => memberPredictive(e, xs, n, samples, memberSeed(seed, j))));
}

/** mcPredictive of one network (an ensemble's member alone). */
function memberPredictive(m: FittedNetwork, xs: Float32Array, n: number, samples: number, seed: number): Predictive {
  const K = m.spec.outputs;
  const logVarShift = 2 * Math.log(m.yStd);
  const hetero = m.noise === 'heteroscedastic';
  const bounds = hetero ? logVarianceBounds(logVarShift) : null;
  const chunks: MomentSums[] = [];
  for (let a = 0; a < n; a += PASS_CHUNK_ROWS) chunks.push(new MomentSums(Math.min(PASS_CHUNK_ROWS, n - a), bounds));
  const mean = new Float64Array(Math.min(n, PASS_CHUNK_ROWS));
  const logVar = hetero ? new Float64Array(mean.length) : undefined;
  mcPasses(m.net, xs, n, samples, seed, (out, start, rows) => {
    for (let i = 0; i < rows; i++) {
      mean[i] = out[i * K]! * m.yStd + m.yMean;
      if (logVar) logVar[i] = out[i * K + 1]! + logVarShift;
    }
    chunks[start / PASS_CHUNK_ROWS]!.add(mean, 0, logVar);
  });
  const sumsOf = (i: number): [MomentSums, number] => [chunks[Math.floor(i / PASS_CHUNK_ROWS)]!, i % PASS_CHUNK_ROWS];
  const per = (stat: (s: MomentSums, j: number) => number): Float64Array =>
    Float64Array.from({ length: n }, (_, i) => stat(...sumsOf(i)));
  return {
    mean: per((s, j) => s.mean(j)),
    epistemicVar: per((s, j) => s.variance(j)),
    aleatoricVar: hetero ? per((s, j) => s.noiseVariance(j)) : null,
  };
}

/**
 * Total predictive std per row, as served: √(s²·epistemic + aleatoric), s the epistemic scale, aleatoric
 * = σ² (homoscedastic) or the predicted variance + σ² (heteroscedastic, σ the calibrated floor).
 */
export function totalStd(p: Predictive, sigma: number, epistemicScale = 1): Float64Array {
  const a = epistemicScale * epistemicScale;
  return p.mean.map((_, i) =>
    Math.sqrt(a * p.epistemicVar[i]! + (p.aleatoricVar ? p.aleatoricVar[i]! : 0) + sigma * sigma),
  );
}

/** MC logits of every pass, samples × rows × classes (temperature scaling needs them per sample). */
export function mcLogits(m: FittedNetwork, xs: Float32Array, n: number, samples: number, seed: number): Float32Array {
  const K = m.spec.outputs;
  const out = new Float32Array(samples * n * K);
  let t = 0;
  mcPasses(m.net, xs, n, samples, seed, (o, start, rows) => {
    out.set(o.subarray(0, rows * K), (t * n + start) * K);
    if (start + rows === n) t++;
  });
  return out;
}

/** MC-averaged class probabilities (rows × classes) of logits divided by `temperature`. */
export function mcClassification(
  m: FittedNetwork,
  xs: Float32Array,
  n: number,
  samples: number,
  seed: number,
  temperature = 1,
): Float64Array {
  return averageProbabilities(mcLogits(m, xs, n, samples, seed), samples, n, m.spec.outputs, temperature);
}

/** Metrics of a trained model on a dataset (validation or test), as the model is served. */
export function evaluate(
  m: TrainedModel,
  ds: Dataset,
  seed: number,
  samples: number,
): RegressionMetrics | ClassificationMetrics {
  const xs = standardise(ds.x, ds.n, ds.f, m.xMean, m.xStd);
  const evalOut = evalForward(m.net, xs, ds.n);
  const K = m.spec.outputs;
  if (m.task === 'regression') {
    const pred = ensemblePrediction(m, xs, ds.n);
    const p = mcPredictive(m, xs, ds.n, samples, seed);
    // the served epistemic std: epistemic_scale × the MC std
    const epiStd = p.epistemicVar.map((v) => m.epistemicScale * Math.sqrt(v));
    const s2 = m.aleatoricStd ** 2;
    return regressionMetrics(
      ds.y,
      pred,
      p.mean,
      epiStd,
      p.aleatoricVar ? p.aleatoricVar.map((a) => a + s2) : s2,
      m.conformalScores.length ? m.conformalScores : undefined,
    );
  }
  const evalProbs = softmaxRows(
    evalOut.map((v) => v / m.temperature),
    ds.n,
    K,
  );
  return classificationMetrics(ds.y, evalProbs, mcClassification(m, xs, ds.n, samples, seed, m.temperature), K);
}

/** Column min, max, mean and population std of raw features. */
export function featureStats(ds: Dataset): FeatureStats {
  const st = fitStandardiser(ds.x, ds.n, ds.f);
  const min = Array.from({ length: ds.f }, () => Infinity);
  const max = Array.from({ length: ds.f }, () => -Infinity);
  const std = Array.from({ length: ds.f }, () => 0);
  for (let i = 0; i < ds.n; i++) {
    for (let j = 0; j < ds.f; j++) {
      const v = ds.x[i * ds.f + j]!;
      if (v < min[j]!) min[j] = v;
      if (v > max[j]!) max[j] = v;
      std[j]! += (v - st.mean[j]!) ** 2;
    }
  }
  return { min, max, mean: Array.from(st.mean), std: std.map((s) => Math.sqrt(s / ds.n)) };
}

export interface FitHooks {
  onEpoch?: (log: EpochLog) => void;
  /** Epochs after which `onCheckpoint` sees the network (tuning scores candidate training lengths). */
  checkpoints?: number[];
  onCheckpoint?: (epoch: number, m: FittedNetwork) => void;
  /** Compute the validation loss every epoch (history, early stopping); default true. */
  trackValidation?: boolean;
  /** Start from these parameters instead of the seeded initialisation (successive halving's next rung). */
  initialParams?: Float32Array;
  /**
   * The training rows already standardised (standardisedTrainRows of the same rows): made once for every
   * run on them, in shared memory, instead of a copy per run and per tuning worker.
   */
  trainRows?: StandardisedRows;
}

/** The network spec of a run (validates the dropout rates against the layers). */
export function specFor(data: Dataset, opts: TrainOptions): MlpSpec {
  const task = data.task;
  if (task === 'classification' && opts.noise === 'heteroscedastic')
    throw new DataError('--noise heteroscedastic applies to regression only');
  const outputs = task === 'regression' ? (opts.noise === 'heteroscedastic' ? 2 : 1) : data.labels.length;
  const dropout = expandDropout(opts.dropout, opts.hidden.length);
  for (const p of dropout) if (!(p >= 0 && p < 1)) throw new DataError(`dropout rate ${p} is outside [0, 1)`);
  if (!(opts.inputDropout >= 0 && opts.inputDropout < 1))
    throw new DataError(`input dropout rate ${opts.inputDropout} is outside [0, 1)`);
  return {
    inputs: data.f,
    hidden: opts.hidden,
    outputs,
    activation: opts.activation,
    dropout,
    ...(opts.inputDropout > 0 ? { inputDropout: opts.inputDropout } : {}),
  };
}

/** Input standardisation (float32-exact) and, for regression, the target's, from `ds`'s rows. */
function standardisationOf(ds: Dataset): Pick<FittedNetwork, 'xMean' | 'xStd' | 'yMean' | 'yStd'> {
  const xs = fitStandardiser(ds.x, ds.n, ds.f);
  let yMean = 0;
  let yStd = 1;
  if (ds.task === 'regression') {
    const ys = fitStandardiser(ds.y, ds.n, 1);
    yMean = Math.fround(ys.mean[0]!);
    yStd = Math.fround(ys.std[0]!);
  }
  return { xMean: Float32Array.from(xs.mean), xStd: Float32Array.from(xs.std), yMean, yStd };
}

/** The record of network `net` (spec `spec`) trained on `trainSet`, before any epoch. */
export function fittedNetwork(
  trainSet: Dataset,
  opts: TrainOptions,
  spec: MlpSpec,
  net: Mlp,
  engine: EngineKind,
): FittedNetwork {
  const task = trainSet.task;
  return {
    task,
    features: trainSet.features,
    target: trainSet.target,
    labels: trainSet.labels,
    spec,
    net,
    noise: task === 'regression' ? opts.noise : 'homoscedastic',
    ...standardisationOf(trainSet),
    history: [],
    bestEpoch: 0,
    epochsRun: 0,
    engine,
    trainRows: trainSet.n,
    valRows: 0,
    featureStats: featureStats(trainSet),
  };
}

type LossFn = (out: Float32Array, y: Float32Array, rows: number, d: Float32Array) => number;

/** The training loss of a network (its gradient written to `d`), by task and noise model. */
function lossOf(spec: MlpSpec, task: Task, opts: TrainOptions): LossFn {
  if (task === 'classification') return (out, y, rows, d) => crossEntropyLoss(out, y, rows, spec.outputs, d);
  if (opts.noise === 'heteroscedastic') return (out, y, rows, d) => gaussianNllLoss(out, y, rows, d, opts.nllBeta);
  return (out, y, rows, d) => mseLoss(out, y, rows, 1, d);
}

/** Rows (inputs and target) in a network's units. */
export interface StandardisedRows {
  x: Float32Array;
  y: Float32Array;
}

/** Standardised rows of `ds` (inputs and target) in the network's units. */
function standardisedRows(
  m: Pick<FittedNetwork, 'task' | 'xMean' | 'xStd' | 'yMean' | 'yStd'>,
  ds: Dataset,
): StandardisedRows {
  const x = standardise(ds.x, ds.n, ds.f, m.xMean, m.xStd);
  const y = m.task === 'regression' ? Float32Array.from(ds.y, (v) => (v - m.yMean) / m.yStd) : Float32Array.from(ds.y);
  return { x, y };
}

/**
 * A training set's rows standardised by its own statistics, as fitNetwork trains on them, in shared
 * memory (FitHooks.trainRows: one copy for every candidate and worker).
 */
export function standardisedTrainRows(ds: Dataset): StandardisedRows {
  const { x, y } = standardisedRows({ task: ds.task, ...standardisationOf(ds) }, ds);
  const share = (a: Float32Array): Float32Array => {
    const out = new Float32Array(new SharedArrayBuffer(a.byteLength));
    out.set(a);
    return out;
  };
  return { x: share(x), y: share(y) };
}

/** What one epoch of minibatch steps works with. */
interface EpochState {
  spec: MlpSpec;
  net: Mlp;
  engine: TrainEngine;
  adam: Adam;
  loss: LossFn;
  x: Float32Array;
  y: Float32Array;
  rows: number;
  batch: number;
  order: Uint32Array;
  yb: Float32Array;
  /** The input-dropout mask of a batch (null: no input dropout). */
  inMask: Float32Array | null;
  shuffleRng: Rng;
  dropoutRng: Rng;
}

/** One epoch: shuffle, then a step per minibatch; the mean training loss. */
function trainEpoch(e: EpochState): number {
  const { spec, engine, x, y, batch, order, yb, inMask } = e;
  const { xb, dOut } = engine;
  const f = spec.inputs;
  e.shuffleRng.shuffle(order);
  let lossSum = 0;
  for (let s = 0; s < e.rows; s += batch) {
    // PyTorch's DataLoader keeps the short last batch (drop_last=False); so do we
    const rows = Math.min(batch, e.rows - s);
    for (let r = 0; r < rows; r++) {
      const i = order[s + r]!;
      // an index loop: subarray() + set() allocated a view per row
      for (let j = 0; j < f; j++) xb[r * f + j] = x[i * f + j]!;
      yb[r] = y[i]!;
    }
    if (inMask) {
      // input dropout: the masked rows are the first layer's input, forward and backward
      e.dropoutRng.fillDropoutMaskRange(inMask, 0, rows * f, spec.inputDropout!);
      for (let k = 0; k < rows * f; k++) xb[k]! *= inMask[k]!;
    }
    engine.drawMasks(e.dropoutRng, rows);
    const out = engine.forward(rows);
    lossSum += e.loss(out, yb, rows, dOut) * rows;
    engine.backward(rows);
    e.adam.step(e.net.params, e.net.grads);
    engine.paramsChanged();
  }
  return lossSum / e.rows;
}

/** The minibatch state of a run: the network on its engine, the optimiser, the buffers and the streams. */
function epochState(
  m: FittedNetwork,
  trainSet: Dataset,
  xVal: Float32Array,
  valRows: number,
  opts: TrainOptions,
  trainRows: StandardisedRows | undefined,
): EpochState {
  const spec = m.spec;
  const { x, y } = trainRows ?? standardisedRows(m, trainSet);
  const batch = Math.min(opts.batchSize, trainSet.n);
  // the engine may move net.params and net.grads into its own memory: create it before the optimiser
  const engine = createEngine(m.net, batch, xVal, valRows, opts.engine);
  const adam = new Adam(m.net.params.length, { lr: opts.lr, weightDecay: opts.weightDecay }, engine.adamKernel);
  const order = new Uint32Array(trainSet.n);
  for (let i = 0; i < order.length; i++) order[i] = i;
  const inMask = (spec.inputDropout ?? 0) > 0 ? new Float32Array(batch * spec.inputs) : null;
  const [shuffleRng, dropoutRng] = [new Rng(stream(opts.seed, 'shuffle')), new Rng(stream(opts.seed, 'dropout'))];
  const loss = lossOf(spec, trainSet.task, opts);
  return {
    spec,
    net: m.net,
    engine,
    adam,
    loss,
    x,
    y,
    rows: trainSet.n,
    batch,
    order,
    yb: new Float32Array(batch),
    inMask,
    shuffleRng,
    dropoutRng,
  };
}

/**
 * Fit a network on `trainSet` (minibatch Adam with dropout) with `valSet` for the validation loss,
 * early stopping and checkpoints (null: no validation rows, e.g. a refit on all training rows).
 * Standardisation statistics come from `trainSet`.
 */
export function fitNetwork(
  trainSet: Dataset,
  valSet: Dataset | null,
  opts: TrainOptions,
  hooks: FitHooks = {},
): FittedNetwork {
  const spec = specFor(trainSet, opts);
  if (trainSet.task === 'classification' && new Set(trainSet.y).size < 2)
    throw new DataError('the training split holds a single class; add rows or change --seed/--val-split');
  const net = createMlp(spec, new Rng(stream(opts.seed, 'init')));
  if (hooks.initialParams) net.params.set(hooks.initialParams);
  const fitted = fittedNetwork(trainSet, opts, spec, net, 'js');
  fitted.valRows = valSet ? valSet.n : 0;
  const trackValidation = fitted.valRows > 0 && (hooks.trackValidation ?? true);
  // the engine holds the validation rows only when it computes their loss
  const valRows = trackValidation ? fitted.valRows : 0;
  const val = trackValidation ? standardisedRows(fitted, valSet!) : { x: new Float32Array(0), y: new Float32Array(0) };
  const e = epochState(fitted, trainSet, val.x, valRows, opts, hooks.trainRows);
  fitted.engine = e.engine.kind;
  const valD = new Float32Array(valRows * spec.outputs);
  const valLoss = (): number => (trackValidation ? e.loss(e.engine.evalOutputs(), val.y, valRows, valD) : NaN);
  const checkpoints = new Set(hooks.checkpoints ?? []);
  let best = Infinity;
  let bestParams = net.params.slice();
  let sinceBest = 0;
  const start = performance.now();
  let epoch = 0;
  for (epoch = 1; epoch <= opts.epochs; epoch++) {
    const trainLoss = trainEpoch(e);
    const vl = valLoss();
    const improved = vl < best;
    if (improved) {
      best = vl;
      fitted.bestEpoch = epoch;
      if (opts.patience > 0) bestParams = net.params.slice();
      sinceBest = 0;
    } else sinceBest++;
    const log: EpochLog = { epoch, trainLoss, valLoss: vl, elapsedMs: performance.now() - start, best: improved };
    fitted.history.push(log);
    hooks.onEpoch?.(log);
    if (!Number.isFinite(log.trainLoss))
      throw new DataError(`training diverged at epoch ${epoch} (loss ${log.trainLoss}); lower --lr`);
    if (checkpoints.has(epoch)) {
      fitted.epochsRun = epoch;
      hooks.onCheckpoint?.(epoch, fitted);
    }
    if (opts.patience > 0 && sinceBest >= opts.patience) break;
  }
  fitted.epochsRun = Math.min(epoch, opts.epochs);
  if (!trackValidation) fitted.bestEpoch = fitted.epochsRun;
  // Early stopping restores the best weights; without it we keep the final weights, like a plain loop.
  if (opts.patience > 0 && trackValidation) net.params.set(bestParams);
  return fitted;
}

/**
 * Calibrate a fitted network on rows it did not train on: the epistemic scale s and the aleatoric σ
 * (regression, jointly by maximum likelihood of y ~ N(MC mean, s²·MC variance [+ predicted variance] +
 * σ²)), the split-conformal scores |y − mean| / std with the served std (regression), the logit
 * temperature (classification). `samples` MC passes with masks seeded by `seed`.
 */
export function calibrate(m: FittedNetwork, cal: Dataset, samples: number, seed: number, source: string): Calibration {
  const xs = standardise(cal.x, cal.n, cal.f, m.xMean, m.xStd);
  if (m.task === 'regression') {
    const p = mcPredictive(m, xs, cal.n, samples, seed);
    return calibrateRegression(p, cal.y, m.yStd, source);
  }
  const K = m.spec.outputs;
  const logits = mcLogits(m, xs, cal.n, samples, seed);
  const temperature = fitTemperature(logits, samples, cal.n, K, cal.y);
  const before = classificationMetrics(
    cal.y,
    averageProbabilities(logits, samples, cal.n, K, 1),
    averageProbabilities(logits, samples, cal.n, K, 1),
    K,
  );
  const afterProbs = averageProbabilities(logits, samples, cal.n, K, temperature);
  const after = classificationMetrics(cal.y, afterProbs, afterProbs, K);
  return {
    aleatoricStd: 0,
    epistemicScale: 1,
    conformalScores: new Float64Array(0),
    temperature,
    temperatureMetrics: {
      rows: cal.n,
      nll_before: before.nll,
      nll_after: after.nll,
      ece_before: before.ece,
      ece_after: after.ece,
      reliability: reliability(cal.y, afterProbs, K),
    },
    rows: cal.n,
    source,
  };
}

/**
 * Regression calibration from a predictive on calibration rows `y`: (s, σ) by maximum likelihood
 * (calibrateScaleAndNoise; homoscedastic: σ is the noise; heteroscedastic: σ is a floor added to the
 * predicted variance, 0 when the predicted variances already fit the rows, which guards against
 * over-confident rows), then the conformal scores with the served std.
 */
export function calibrateRegression(
  p: Predictive,
  y: ArrayLike<number>,
  yScale: number,
  source: string,
  correction?: RefitCorrection,
): Calibration {
  const residuals = Float64Array.from({ length: p.mean.length }, (_, i) => y[i]! - p.mean[i]!);
  const gaussian = calibrateScaleAndNoise(residuals, p.epistemicVar, p.aleatoricVar, yScale);
  const grid = calibrateOnGrid(residuals, y, p.epistemicVar, p.aleatoricVar, yScale, gaussian);
  // the refit's correction (refit-correction.ts) scales every residual; not on a grid, whose rounding
  // sets the residuals and does not shrink with more rows
  const scale = grid || !correction ? 1 : Math.sqrt(correction.ratio);
  const scaled = scale === 1 ? residuals : residuals.map((r) => r * scale);
  const { epistemicScale, sigma } =
    grid ?? (scale === 1 ? gaussian : calibrateScaleAndNoise(scaled, p.epistemicVar, p.aleatoricVar, yScale));
  const std = totalStd(p, sigma, epistemicScale);
  return {
    aleatoricStd: sigma,
    epistemicScale,
    ...(grid ? { grid: { step: grid.step, latentStd: grid.latentStd } } : {}),
    ...(correction ? { refitCorrection: { ...correction, residualScale: scale } } : {}),
    conformalScores: conformalScores(scale === 1 ? y : scaled.map((r, i) => p.mean[i]! + r), p.mean, std),
    temperature: 1,
    rows: p.mean.length,
    source,
  };
}

/** A fitted network with its calibration: the model the CLI exports. */
export function withCalibration(m: FittedNetwork, c: Calibration): TrainedModel {
  return {
    ...m,
    aleatoricStd: c.aleatoricStd,
    epistemicScale: c.epistemicScale,
    ...(c.grid ? { targetGrid: c.grid } : {}),
    conformalScores: c.conformalScores,
    temperature: c.temperature,
    ...(c.temperatureMetrics ? { temperatureMetrics: c.temperatureMetrics } : {}),
    calibrationRows: c.rows,
    calibrationSource: c.source,
    ...(c.refitCorrection ? { refitCorrection: c.refitCorrection } : {}),
    metrics: { validation: undefined as unknown as RegressionMetrics },
  };
}

/**
 * The training rows and the validation rows of a run (`opts.valSplit` of `data`, seeded): the one place
 * the split is made (train, tune, and the report of the validation rows use it).
 */
export function validationSplit(data: Dataset, opts: Pick<TrainOptions, 'valSplit' | 'seed'>): [Dataset, Dataset] {
  return splitRows(data, opts.valSplit, stream(opts.seed, 'validationSplit'), 'validation split');
}

/**
 * Train a dropout MLP on `data` (validation rows split off with the seed: validationSplit), calibrate it
 * on the validation rows, and measure it on them and on `test` when given. `onEpoch` receives every
 * epoch's losses.
 */
export function train(
  data: Dataset,
  opts: TrainOptions,
  test?: Dataset,
  onEpoch?: (log: EpochLog) => void,
): TrainedModel {
  const [trainSet, valSet] = validationSplit(data, opts);
  return trainOnSplit(trainSet, valSet, opts, test, onEpoch);
}

/** train() on rows already split (validationSplit): fit on `trainSet`, calibrate and validate on `valSet`. */
export function trainOnSplit(
  trainSet: Dataset,
  valSet: Dataset,
  opts: TrainOptions,
  test?: Dataset,
  onEpoch?: (log: EpochLog) => void,
): TrainedModel {
  const fitted = fitNetwork(trainSet, valSet, opts, { onEpoch });
  const calSeed = stream(opts.seed, 'calibration');
  const model = withCalibration(
    fitted,
    calibrate(fitted, valSet, opts.mcSamples, calSeed, 'validation rows (not used for gradient steps)'),
  );
  model.metrics.validation = evaluate(model, valSet, stream(opts.seed, 'validationMetrics'), opts.mcSamples);
  if (test) model.metrics.test = evaluate(model, test, stream(opts.seed, 'testMetrics'), opts.mcSamples);
  return model;
}
