/**
 * One tuning job, what a worker does (tune-worker.ts): train a candidate to its last checkpoint and score
 * its served predictive on the validation rows at every checkpoint. Pure and deterministic.
 */
import { Rng, stream } from '../util/rng.js';
import { calibrateAleatoricStd } from './calibrate.js';
import { type Dataset, DataError } from './data.js';
import { gaussianLogLik } from '../uncertainty/scoring.js';
import { createMlp } from './mlp.js';
import { averageProbabilities, fitTemperature } from './temperature.js';
import {
  type EpochLog,
  type FittedNetwork,
  type StandardisedRows,
  type TrainOptions,
  fitNetwork,
  mcLogits,
  mcPredictive,
  specFor,
  fittedNetwork,
  standardise,
} from './train.js';
import type { Candidate } from './tune.js';

/** What one worker job needs. Datasets travel in shared memory (tune-workers.ts jobMessage). */
export interface TuneJob {
  index: number;
  candidate: Candidate;
  base: TrainOptions;
  fit: Dataset;
  /** Rows scored at each checkpoint; null: train only (a cross-fitting fold or the refit), no scores. */
  val: Dataset | null;
  epochs: number[];
  /**
   * Successive halving's later rungs: the run continues a candidate from these parameters at epoch
   * `startEpoch` (fresh optimiser moments), so `epochs` count from the candidate's first epoch.
   */
  resume?: { startEpoch: number; params: Float32Array };
  /** `fit`'s rows standardised, shared by the jobs on them (tune-workers.ts). */
  trainRows?: StandardisedRows;
}

export interface TuneJobResult {
  index: number;
  /** Validation score at each checkpoint (−Infinity when the run diverged before it). */
  scores: number[];
  /** Network parameters at each checkpoint (absent after a divergence). */
  params: (Float32Array | null)[];
  /** Per-validation-row scores at each checkpoint (absent after a divergence). */
  rowScores: (Float64Array | null)[];
  /** Regression: the validation mean squared error of the MC mean at each checkpoint. */
  mse: number[];
  /** The run's epoch log (jobs without validation rows: the refit's history for the card). */
  history?: EpochLog[];
  error?: string;
}

/** The options of a candidate's run (its hidden widths, else the base's). */
export function candidateOptions(base: TrainOptions, c: Candidate, epochs: number): TrainOptions {
  return {
    ...base,
    ...(c.hidden ? { hidden: c.hidden } : {}),
    dropout: [c.dropout],
    inputDropout: c.inputDropout,
    weightDecay: c.weightDecay,
    noise: c.noise,
    epochs,
    patience: 0,
  };
}

/**
 * Validation score of a fitted network (higher is better): the mean log-likelihood of the validation
 * rows under the served predictive distribution, with σ (homoscedastic) or the temperature
 * (classification) cross-fitted on halves of the rows.
 */
export function validationScore(m: FittedNetwork, val: Dataset, samples: number, seed: number): number {
  const { rows } = validationRowScores(m, val, samples, seed);
  let sum = 0;
  for (const v of rows) sum += v;
  return sum / rows.length;
}

/**
 * validationScore per validation row (its log-likelihood, or minus its NLL for a classifier), and for
 * regression each row's squared error of the MC mean.
 */
export function validationRowScores(
  m: FittedNetwork,
  val: Dataset,
  samples: number,
  seed: number,
): { rows: Float64Array; sqErrors: Float64Array | null } {
  const xs = standardise(val.x, val.n, val.f, m.xMean, m.xStd);
  // halves by position: the validation rows are already in random order
  const halves = [0, 1].map((h) => Array.from({ length: val.n }, (_, i) => i).filter((i) => i % 2 === h));
  if (m.task === 'regression') {
    const p = mcPredictive(m, xs, val.n, samples, seed);
    const known = p.aleatoricVar ? p.epistemicVar.map((e, i) => e + p.aleatoricVar![i]!) : p.epistemicVar;
    const ll = new Float64Array(val.n);
    for (const [a, b] of [
      [halves[0]!, halves[1]!],
      [halves[1]!, halves[0]!],
    ] as const) {
      const sigma = calibrateAleatoricStd(
        a.map((i) => val.y[i]! - p.mean[i]!),
        a.map((i) => known[i]!),
        m.yStd,
      );
      for (const i of b) ll[i] = gaussianLogLik(val.y[i]!, p.mean[i]!, Math.sqrt(known[i]! + sigma * sigma));
    }
    return { rows: ll, sqErrors: Float64Array.from(val.y, (y, i) => (y - p.mean[i]!) ** 2) };
  }
  const K = m.spec.outputs;
  const logits = mcLogits(m, xs, val.n, samples, seed);
  const out = new Float64Array(val.n);
  for (const [a, b] of [
    [halves[0]!, halves[1]!],
    [halves[1]!, halves[0]!],
  ] as const) {
    const pick = (rows: number[]): Float32Array => {
      const sel = new Float32Array(samples * rows.length * K);
      for (let s = 0; s < samples; s++)
        rows.forEach((r, j) => {
          sel.set(logits.subarray((s * val.n + r) * K, (s * val.n + r + 1) * K), (s * rows.length + j) * K);
        });
      return sel;
    };
    const t = fitTemperature(
      pick(a),
      samples,
      a.length,
      K,
      a.map((i) => val.y[i]!),
    );
    const p = averageProbabilities(pick(b), samples, b.length, K, t);
    b.forEach((i, j) => {
      out[i] = Math.log(Math.max(p[j * K + val.y[i]!]!, 1e-12));
    });
  }
  return { rows: out, sqErrors: null };
}

/** Run one candidate to the last checkpoint, scoring it at every checkpoint. Pure and deterministic. */
export function runJob(job: TuneJob, onEpoch?: (epoch: number) => void): TuneJobResult {
  const epochs = job.epochs;
  const scores = epochs.map(() => -Infinity);
  const params: (Float32Array | null)[] = epochs.map(() => null);
  const rowScores: (Float64Array | null)[] = epochs.map(() => null);
  const mse = epochs.map(() => NaN);
  const start = job.resume?.startEpoch ?? 0;
  const opts = candidateOptions(job.base, job.candidate, epochs[epochs.length - 1]! - start);
  const common = {
    checkpoints: epochs.map((e) => e - start),
    initialParams: job.resume?.params,
    trainRows: job.trainRows,
    onEpoch: onEpoch ? (l: EpochLog) => onEpoch(start + l.epoch) : undefined,
  };
  try {
    const val = job.val;
    if (!val) {
      const m = fitNetwork(job.fit, null, opts, {
        ...common,
        onCheckpoint: (epoch, net) => {
          const k = epochs.indexOf(start + epoch);
          scores[k] = 0;
          params[k] = Float32Array.from(net.net.params);
        },
      });
      return { index: job.index, scores, params, rowScores, mse, history: m.history };
    }
    fitNetwork(job.fit, val, opts, {
      ...common,
      trackValidation: false,
      onCheckpoint: (epoch, m) => {
        const k = epochs.indexOf(start + epoch);
        const { rows, sqErrors } = validationRowScores(m, val, job.base.mcSamples, stream(job.base.seed, 'tuneScore'));
        if (sqErrors) mse[k] = sqErrors.reduce((a, b) => a + b, 0) / sqErrors.length;
        const score = rows.reduce((a, b) => a + b, 0) / rows.length;
        scores[k] = Number.isFinite(score) ? score : -Infinity;
        params[k] = Float32Array.from(m.net.params);
        rowScores[k] = rows;
      },
    });
    return { index: job.index, scores, params, rowScores, mse };
  } catch (err) {
    if (err instanceof DataError) return { index: job.index, scores, params, rowScores, mse, error: err.message };
    throw err;
  }
}

/** Rebuild a candidate's network at a checkpoint from its parameters (standardisation from the fit rows, as the run computed it). */
export function networkFromParams(
  fit: Dataset,
  opts: TrainOptions,
  params: Float32Array,
  epochs: number,
): FittedNetwork {
  const spec = specFor(fit, opts);
  const net = createMlp(spec, new Rng(0));
  net.params.set(params);
  const engine = opts.engine === 'js' ? 'js' : 'wasm';
  return { ...fittedNetwork(fit, opts, spec, net, engine), bestEpoch: epochs, epochsRun: epochs };
}
