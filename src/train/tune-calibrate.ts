/**
 * Calibration and refit of the tuned winner, one way per calibration source (a table): cross-fitted on
 * every training row, on held-out rows, or on the tuning validation rows.
 */
import { Rng, stream } from '../util/rng.js';
import { memberSeed } from './ensemble.js';
import { type Dataset, DataError, splitRows, subset } from './data.js';
import type { CALIBRATION_SOURCES, RefitCorrectionKind, TrainOptions } from './options.js';
import {
  type Calibration,
  type FittedNetwork,
  type Predictive,
  calibrate,
  calibrateRegression,
  ensemblePrediction,
  fitNetwork,
  mcPredictive,
  standardise,
} from './train.js';
import type { Candidate } from './tune.js';
import { networkFromParams, type TuneJob } from './tune-job.js';
import { runJobs } from './tune-workers.js';
import { type RefitCorrection, refitCorrection } from './refit-correction.js';

/**
 * Where the calibration rows of a tuned model come from: `crossfit` (regression; classifiers fall back to
 * `validation`), every training row predicted out of fold (crossFitFolds); `validation`, the tuning
 * validation rows scored by the winning candidate; `holdout`, rows held out of the refit; `winner`, the
 * tuning validation rows calibrating the winning candidate itself, served without a refit.
 */
export type CalibrationSource = (typeof CALIBRATION_SOURCES)[number];

/** Folds of the cross-fitted calibration. */
export const CROSS_FIT_FOLDS = 5;

/**
 * K folds of n rows for cross-fitted calibration: the permutation splitRows draws with `seed`, cut into K
 * consecutive parts of round(k·n/K)…round((k+1)·n/K) positions. With the tuner's seed and a validation
 * fraction of 1/K, fold 0 is exactly the tuning validation split and its complement, in the same order,
 * the tuning fit rows. Returns, per fold, the held-out rows and the rest (training order).
 */
export function crossFitFolds(n: number, k: number, seed: number): { held: Uint32Array; rest: Uint32Array }[] {
  if (!(Number.isInteger(k) && k >= 2 && k <= n))
    throw new DataError(`${n} rows are too few for ${k}-fold cross-fitting`);
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  new Rng(seed).shuffle(idx);
  return Array.from({ length: k }, (_, f) => {
    const a = Math.round((f * n) / k);
    const b = Math.round(((f + 1) * n) / k);
    const rest = new Uint32Array(n - (b - a));
    rest.set(idx.subarray(0, a), 0);
    rest.set(idx.subarray(b), a);
    return { held: idx.slice(a, b), rest };
  });
}

/** Out-of-fold predictives in row order: fold f's predictive belongs to rows folds[f].held. */
export function assembleOutOfFold(n: number, folds: { held: Uint32Array }[], preds: Predictive[]): Predictive {
  const mean = new Float64Array(n).fill(NaN);
  const epistemicVar = new Float64Array(n).fill(NaN);
  const hetero = preds.some((p) => p.aleatoricVar);
  const aleatoricVar = hetero ? new Float64Array(n).fill(NaN) : null;
  folds.forEach((f, k) => {
    const p = preds[k]!;
    f.held.forEach((r, j) => {
      if (!Number.isNaN(mean[r]!)) throw new Error(`row ${r} is in two folds`);
      mean[r] = p.mean[j]!;
      epistemicVar[r] = p.epistemicVar[j]!;
      if (aleatoricVar) aleatoricVar[r] = p.aleatoricVar![j]!;
    });
  });
  if (mean.some(Number.isNaN)) throw new Error('a row is in no fold');
  return { mean, epistemicVar, aleatoricVar };
}

/** The tuned winner, for its calibration and refit. */
export interface Winner {
  /** All training rows, and the tuning split of them. */
  data: Dataset;
  fit: Dataset;
  val: Dataset;
  base: TrainOptions;
  candidate: Candidate;
  /** The winner's options (epochs = the chosen training length). */
  options: TrainOptions;
  /** The winning candidate's network (trained on `fit`). */
  net: FittedNetwork;
  threads: number;
  calibrationFraction: number;
  /** Networks in the served ensemble (1: one network; more: crossfit only). */
  members: number;
  /** Crossfit: Burman's correction of the residuals for the refit, or none. */
  refitCorrection: RefitCorrectionKind;
}

interface Calibrated {
  refit: FittedNetwork;
  cal: Calibration;
  folds?: number;
  /** An ensemble's networks trained on the tuning fit rows (fold 0), for the validation metrics. */
  validationNet?: FittedNetwork;
}

/**
 * Cross-fitting (e.g. Chernozhukov et al. 2018; the CV+ idea of Barber et al. 2021): the winner's
 * settings trained on K − 1 folds predict the K-th, so every training row gets an honest predictive;
 * (s, σ) and the conformal scores are fitted on all of them instead of the one validation fifth. The
 * fold fits and the refit run on the workers; fold 0 reuses the winning candidate when it is the tuning
 * split. An ensemble (`members` > 1, ensemble.ts) repeats the folds and the refit for every member with
 * its own seed, and each fold's predictive is the mixture of its members', as the served model's is.
 */
async function crossFit(w: Winner): Promise<Calibrated> {
  const { data, base, options } = w;
  const K = CROSS_FIT_FOLDS;
  const folds = crossFitFolds(data.n, K, stream(base.seed, 'validationSplit'));
  const reuse0 = folds[0]!.held.length === w.val.n;
  const foldData = folds.map((f) => ({ fit: subset(data, f.rest), held: subset(data, f.held) }));
  const members = Array.from({ length: w.members }, (_, j) => ({ ...base, seed: memberSeed(base.seed, j) }));
  const jobs: TuneJob[] = [];
  const job = (b: TrainOptions, fit: Dataset): number =>
    jobs.push({ index: jobs.length, candidate: w.candidate, base: b, fit, val: null, epochs: [options.epochs] }) - 1;
  const plan = members.map((b, j) => ({
    refit: job(b, data),
    folds: foldData.map((fd, k) => (j === 0 && k === 0 && reuse0 ? -1 : job(b, fd.fit))),
  }));
  const noop = (): void => {};
  const out = await runJobs(jobs, Math.min(w.threads, jobs.length), noop, noop);
  for (const r of out)
    if (r.error || !r.params[0])
      throw new DataError(`a cross-fitting run failed: ${r.error ?? 'diverged'}; lower --lr`);
  const net = (b: TrainOptions, fit: Dataset, i: number): FittedNetwork =>
    i < 0 ? w.net : networkFromParams(fit, { ...options, seed: b.seed }, out[i]!.params[0]!, options.epochs);
  const refits = plan.map((p, j) => ({
    ...net(members[j]!, data, p.refit),
    history: out[p.refit]!.history ?? [],
  }));
  const asEnsemble = (nets: FittedNetwork[]): FittedNetwork =>
    nets.length > 1 ? { ...nets[0]!, ensemble: nets.slice(1) } : nets[0]!;
  const foldNets = foldData.map((fd, k) => asEnsemble(plan.map((p, j) => net(members[j]!, fd.fit, p.folds[k]!))));
  const preds = foldNets.map((e, k) => {
    const { held } = foldData[k]!;
    const xs = standardise(held.x, held.n, held.f, e.xMean, e.xStd);
    return mcPredictive(e, xs, held.n, base.mcSamples, stream(base.seed, 'crossFitFold', k));
  });
  const refit = asEnsemble(refits);
  const correction = w.refitCorrection === 'burman' ? burman(data, folds, foldNets, refit) : undefined;
  const what = w.members > 1 ? `the ${w.members} members of the winner's settings` : "the winner's settings";
  const cal = calibrateRegression(
    assembleOutOfFold(data.n, folds, preds),
    data.y,
    refit.yStd,
    `out-of-fold predictions on all ${data.n} training rows (${K}-fold cross-fitting: ${what} trained on the other ${K - 1} folds predict each fold; fold 1 is the tuning validation split), for the refit on all rows${correction ? ", their residuals scaled by Burman's correction for the refit (refit_correction)" : ''}`,
    correction,
  );
  const validationNet = reuse0 && w.members > 1 ? foldNets[0] : undefined;
  return { refit, cal, folds: K, ...(validationNet ? { validationNet } : {}) };
}

/** Burman's correction (refit-correction.ts) from every training row predicted by the refit and each fold's networks. */
function burman(
  data: Dataset,
  folds: { held: Uint32Array }[],
  foldNets: FittedNetwork[],
  refit: FittedNetwork,
): RefitCorrection {
  const everyRow = (m: FittedNetwork): Float64Array =>
    ensemblePrediction(m, standardise(data.x, data.n, data.f, m.xMean, m.xStd), data.n);
  return refitCorrection(
    data.y,
    everyRow(refit),
    foldNets.map(everyRow),
    folds.map((f) => f.held),
  );
}

/** Rows held out of the refit calibrate it. */
async function holdout(w: Winner): Promise<Calibrated> {
  const seed = stream(w.base.seed, 'calibrationSplit');
  const [refitRows, calRows] = splitRows(w.data, w.calibrationFraction, seed, 'calibration split');
  const refit = fitNetwork(refitRows, null, w.options);
  const source = `held-out calibration rows (${calRows.n} of the training rows, not used by the refit)`;
  return { refit, cal: calibrate(refit, calRows, w.base.mcSamples, stream(w.base.seed, 'calibration'), source) };
}

/** The tuning validation rows, scored by the winning candidate, calibrate the refit. */
async function validation(w: Winner): Promise<Calibrated> {
  const refit = fitNetwork(w.data, null, w.options);
  const source = `tuning validation rows, scored by the winning candidate trained on the other ${w.fit.n} rows (an approximation for the refit model, which also trained on them)`;
  return { refit, cal: calibrate(w.net, w.val, w.base.mcSamples, stream(w.base.seed, 'calibration'), source) };
}

/**
 * No refit: the winning candidate, trained on the fit rows, is the model, calibrated on the tuning
 * validation rows it never saw (the exact split-conformal guarantee, as holdout, with no training after
 * the search; the price: the validation rows are not trained on).
 */
async function winner(w: Winner): Promise<Calibrated> {
  const source = `tuning validation rows, scored by the winning candidate, which is the model (no refit: it trained on the other ${w.fit.n} rows)`;
  return { refit: w.net, cal: calibrate(w.net, w.val, w.base.mcSamples, stream(w.base.seed, 'calibration'), source) };
}

const CALIBRATIONS: Record<CalibrationSource, (w: Winner) => Promise<Calibrated>> = {
  crossfit: crossFit,
  holdout,
  validation,
  winner,
};

/** The calibration source a `task` gets when `requested` (classifiers: crossfit → validation). */
export const calibrationFor = (requested: CalibrationSource, task: string): CalibrationSource =>
  requested === 'crossfit' && task !== 'regression' ? 'validation' : requested;

/** The refit on all training rows and its calibration from `requested` (calibrationFor). */
export async function calibrateAndRefit(
  w: Winner,
  requested: CalibrationSource,
): Promise<Calibrated & { source: CalibrationSource }> {
  const source = calibrationFor(requested, w.data.task);
  return { ...(await CALIBRATIONS[source](w)), source };
}
