/**
 * `--tune`: choose dropout rate, weight decay, training length and noise model on a validation split of
 * the training rows, then refit on all of them with the winner (the protocol of Hernández-Lobato & Adams
 * 2015 and Gal & Ghahramani 2016, who tune dropout and τ per split on the training rows only).
 *
 * Every candidate (a setting of dropout, input dropout, weight decay, noise) is trained once on the fit
 * rows up to the longest training length; at each checkpoint epoch its served predictive distribution
 * on the validation rows is scored, so training lengths cost nothing extra. The score is the mean
 * validation log-likelihood of what the server would serve: N(MC mean, MC variance + noise) with the
 * server's formulas (src/uncertainty). The noise σ (homoscedastic: the noise; heteroscedastic: a floor
 * added to the predicted variance) is fitted on one half of the validation rows and scored on the other
 * (both ways), so that no candidate is scored on rows it fitted anything on. The served model's epistemic
 * scale (calibrate) is not part of the score: measured on the UCI splits (scripts/uci-lab-eval.mts, test
 * LL of the served predictive, selection by σ alone / by (s, σ) cross-fitted): boston −2.398 / −2.379 (20
 * splits), yacht −0.367 / −0.376, energy −0.672 / −0.676, concrete −3.001 / −3.007 (10 splits each), a
 * wash at a fraction of the cost. Classifiers: the NLL of the
 * MC-averaged probabilities, temperature cross-fitted the same way.
 *
 * Candidates run in parallel on worker threads (tune-worker.ts). Each is deterministic (its own seeded
 * streams, float32 kernels in a fixed order), and the winner is the best score with ties going to the
 * earlier candidate and checkpoint, so the same seed gives the same choice and the same bytes however the
 * jobs are scheduled.
 */
import { DataError, type Dataset } from './data.js';
import {
  type NoiseModel,
  type RefitCorrectionKind,
  TUNE_ARCHITECTURE_RULE,
  TUNE_DEEP,
  type TrainOptions,
  tuneArchitectures,
} from './options.js';
import { stream } from '../util/rng.js';
import { type TrainedModel, evaluate, specFor, validationSplit, withCalibration } from './train.js';
import { calibrateAndRefit, calibrationFor, type CalibrationSource } from './tune-calibrate.js';
import { candidateOptions, networkFromParams, type TuneJob, type TuneJobResult } from './tune-job.js';
import { type Choice, chooseWinner } from './tune-select.js';
import { type HalvingPlan, halvingPlan, searchHalving } from './tune-halving.js';
import { largeDataTraining } from './tune-scale.js';
import {
  chooseSearch,
  HALVING_ROW_EPOCHS,
  type SearchChoice,
  type SearchOption,
  searchCalibration,
} from './tune-search.js';
import { runJobs } from './tune-workers.js';
import { ensembleMembers } from './ensemble.js';

/** One point of the grid (the training length is scored at every checkpoint of the same run). */
export interface Candidate {
  /** The rate of every hidden layer's dropout. */
  dropout: number;
  inputDropout: number;
  weightDecay: number;
  noise: NoiseModel;
  /** The hidden widths (absent: the run's options'). */
  hidden?: number[];
}

export interface Grid {
  candidates: Candidate[];
  /** Training lengths scored, ascending; the runs go to the last. */
  epochs: number[];
  /** How the grid was made (recorded in the card). */
  rule: Record<string, unknown>;
}

/** What a user's flags replace in the default grid (undefined: the default's values). */
export interface GridOverrides {
  dropout?: number[];
  decayTimesN?: number[];
  epochs?: number[];
  noise?: NoiseModel[];
  /** The architectures searched (--tune-hidden), or the one --hidden fixes. */
  hidden?: number[][];
}

/** The default grid's (dropout, c) pairs: every rate at c = 0.01, and the strongest regularisation (p 0.2, c 1). */
const DEFAULT_DROPOUT = [0.005, 0.05, 0.2];
const DEFAULT_DECAY_TIMES_N = [0.01, 1];
const DEFAULT_PAIRS: [number, number][] = [...DEFAULT_DROPOUT.map((p): [number, number] => [p, 0.01]), [0.2, 1]];
const DEFAULT_EPOCHS = [250, 500, 1000, 2000, 4000];

/**
 * The default grid, the same for every dataset. Dropout spans the paper's range (Gal & Ghahramani 2016
 * searched p in {0.005, 0.01, 0.05, 0.1}; 0.2 added for small noisy data), training lengths go up to
 * their 4000 epochs; weight decay is one rule of the training-set size N, λ = c/N (the prior term of
 * their derivation scales as 1/N).
 *
 * Four (dropout, c) pairs, not the 3 × 2 product: measured on the UCI lab cache (scripts/uci-lab-eval.mts,
 * rule sigma/scale/val; boston 20 splits, concrete, energy, yacht 10, wine 5), test LL with the six
 * candidates / with these four: boston −2.398 / −2.388, concrete −3.001 / −2.996, energy −0.672 / −0.672,
 * wine −0.939 / −0.942, yacht −0.367 / −0.367 (c = 1 at p 0.005 or 0.05 almost never won); the two
 * candidates saved pay for most of the cross-fitted calibration (CROSS_FIT_FOLDS).
 *
 * Each pair is tried with every architecture of `architectures` (by default tuneArchitectures of the fit
 * rows, options.ts), the first one first, so that ties go to it.
 *
 * The noise model: homoscedastic only by default; `--tune-noise homoscedastic,heteroscedastic` lets the
 * tuner choose (under the noise rule in `tune`). Measured on the UCI benchmark (width 100, 20 splits,
 * both noise models in the grid): the rule kept a heteroscedastic network on 2 of 20 concrete splits, one
 * of them the worst split of the run (test LL −3.55, RMSE 5.82, against a mean of −2.99), and on 2 of 20
 * boston splits (one with test RMSE 4.63 against a mean of 2.80); the candidates cost half the tuning time.
 */
export function defaultGrid(task: 'regression' | 'classification', fitRows: number, architectures?: number[][]): Grid {
  return gridOf(task, fitRows, {
    dropout: DEFAULT_DROPOUT,
    decayTimesN: DEFAULT_DECAY_TIMES_N,
    pairs: DEFAULT_PAIRS,
    noise: ['homoscedastic'],
    epochs: DEFAULT_EPOCHS,
    ...(architectures ? { hidden: architectures } : defaultArchitectures(task, fitRows)),
  });
}

/**
 * The default architecture for the fit rows (options.ts tuneArchitectures), and the rule in words when it
 * chose two layers (a one-layer grid's card reads as before the rule, so the shipped models stay the same).
 */
function defaultArchitectures(
  task: 'regression' | 'classification',
  fitRows: number,
): Pick<GridAxes, 'hidden' | 'hiddenRule'> {
  const hidden = tuneArchitectures(task, fitRows);
  return hidden[0] === TUNE_DEEP ? { hidden, hiddenRule: TUNE_ARCHITECTURE_RULE } : { hidden };
}

/** The grid's dimensions: the candidates are hidden × noise × (dropout, c) pairs. */
interface GridAxes {
  dropout: number[];
  decayTimesN: number[];
  pairs: [number, number][];
  noise: NoiseModel[];
  epochs: number[];
  hidden: number[][];
  /** How `hidden` was chosen when the default chose it (recorded in the card's grid rule). */
  hiddenRule?: string;
}

function gridOf(task: 'regression' | 'classification', fitRows: number, a: GridAxes): Grid {
  const noise: NoiseModel[] = task === 'regression' ? a.noise : ['homoscedastic'];
  const candidates = a.hidden.flatMap((hidden) =>
    noise.flatMap((nm) =>
      a.pairs.map(([p, c]) => ({ dropout: p, inputDropout: 0, weightDecay: c / fitRows, noise: nm, hidden })),
    ),
  );
  return {
    candidates,
    epochs: a.epochs,
    rule: {
      hidden: a.hidden,
      ...(a.hiddenRule ? { hidden_rule: a.hiddenRule } : {}),
      dropout: a.dropout,
      input_dropout: [0],
      weight_decay: 'c / N, N = fit rows',
      decay_times_n: a.decayTimesN,
      pairs: a.pairs,
      fit_rows: fitRows,
      noise: task === 'regression' ? noise : undefined,
      epochs: a.epochs,
    },
  };
}

/**
 * The default grid with a user's overrides (each replaces a dimension's values): dropout or weight decay
 * given make their product, else the default (dropout, c) pairs.
 */
export function customGrid(task: 'regression' | 'classification', fitRows: number, o: GridOverrides): Grid {
  const dflt = defaultGrid(task, fitRows, o.hidden);
  if (!o.dropout && !o.decayTimesN && !o.epochs && !o.noise) return dflt;
  const dropout = o.dropout ?? DEFAULT_DROPOUT;
  const decayTimesN = o.decayTimesN ?? DEFAULT_DECAY_TIMES_N;
  const pairs =
    o.dropout || o.decayTimesN
      ? dropout.flatMap((p) => decayTimesN.map((c): [number, number] => [p, c]))
      : DEFAULT_PAIRS;
  const noise = o.noise ?? ['homoscedastic'];
  const axes = { dropout, decayTimesN, pairs, noise, epochs: o.epochs ?? DEFAULT_EPOCHS };
  const hidden = o.hidden ? { hidden: o.hidden } : defaultArchitectures(task, fitRows);
  const grid = gridOf(task, fitRows, { ...axes, ...hidden });
  return { ...grid, rule: { ...grid.rule, overridden: true } };
}

export interface TuneProgress {
  /** Optimiser steps trained so far over all runs, and in the whole search. */
  stepsDone: number;
  stepsTotal: number;
  /** Training runs finished, and in all (the grid: one per candidate; successive halving: one per rung and candidate). */
  runsDone: number;
  runs: number;
  unit: 'candidate' | 'run';
  elapsedMs: number;
  /** Best score so far (−Infinity before the first). */
  best: number;
}

export interface TuneOptions {
  /** Worker threads (0: run every candidate on this thread). */
  threads: number;
  grid?: Grid;
  calibration: CalibrationSource;
  /** Fraction of the training rows held out of the refit for calibration (calibration = holdout). */
  calibrationFraction: number;
  onProgress?: (p: TuneProgress) => void;
  /**
   * Search in this many optimiser steps by successive halving (tune-halving.ts; the minibatch size by
   * default budgetBatchSize of the fit rows), or the full grid (`'grid'`); undefined: by the data size
   * (tune-search.ts chooseSearch).
   */
  budget?: SearchOption;
  /** Networks in the served ensemble where the calibration is cross-fitted (ensembleMembers); default 1. */
  members?: number;
  /** The cross-fitted calibration's correction for the refit (refit-correction.ts); default 'burman'. */
  refitCorrection?: RefitCorrectionKind;
}

export interface TuneResult {
  model: TrainedModel;
  /**
   * The rows the validation metrics were measured on (the tuning validation split) and the network that
   * measured them: the winning candidate with the model's calibration (it never trained on those rows;
   * the refit model did). For a report of the validation rows.
   */
  validation: { model: TrainedModel; data: Dataset };
  /** The winner's options (epochs = the chosen training length). */
  options: TrainOptions;
  /** The record for the card. */
  card: {
    objective: string;
    fit_rows: number;
    validation_rows: number;
    mc_samples: number;
    grid: Record<string, unknown>;
    candidates: {
      hidden?: number[];
      dropout: number;
      input_dropout: number;
      weight_decay: number;
      noise?: NoiseModel;
      epochs: number;
      score: number | null;
    }[];
    chosen: number;
    /** The one-standard-error rule between the best heteroscedastic and homoscedastic candidates. */
    noise_rule?: {
      heteroscedastic_gain: number;
      standard_error: number;
      mse_heteroscedastic: number;
      mse_homoscedastic: number;
      kept: NoiseModel;
    };
    refit: { rows: number; epochs: number };
    calibration: { source: string; rows: number; folds?: number; members?: number };
    threads: number;
  };
}

/**
 * Runs jobs on the workers, reporting the search's progress in optimiser steps: `stepsPerEpoch` of the fit
 * rows per epoch of every job (a resumed job counts from its start).
 */
function progressRunner(
  plan: { stepsTotal: number; runs: number; stepsPerEpoch: number; unit: TuneProgress['unit'] },
  threads: number,
  onProgress: TuneOptions['onProgress'],
): (jobs: TuneJob[]) => Promise<TuneJobResult[]> {
  let stepsFinished = 0;
  let runsDone = 0;
  let best = -Infinity;
  const started = performance.now();
  return async (jobs) => {
    const inFlight = new Map<number, number>();
    const from = new Map(jobs.map((j) => [j.index, j.resume?.startEpoch ?? 0]));
    const report = (): void => {
      let steps = stepsFinished;
      for (const s of inFlight.values()) steps += s;
      const elapsedMs = performance.now() - started;
      const { stepsTotal, runs, unit } = plan;
      onProgress?.({ stepsDone: steps, stepsTotal, runsDone, runs, unit, elapsedMs, best });
    };
    const onEpoch = (index: number, epoch: number): void => {
      inFlight.set(index, (epoch - from.get(index)!) * plan.stepsPerEpoch);
      report();
    };
    const onDone = (r: TuneJobResult): void => {
      const job = jobs.find((j) => j.index === r.index)!;
      inFlight.delete(r.index);
      stepsFinished += (job.epochs[job.epochs.length - 1]! - from.get(r.index)!) * plan.stepsPerEpoch;
      runsDone++;
      for (const s of r.scores) best = Math.max(best, s);
      report();
    };
    return runJobs(jobs, Math.min(threads, jobs.length), onEpoch, onDone);
  };
}

/** The steps of one epoch of `rows` rows in minibatches of `batchSize`. */
export const stepsPerEpoch = (rows: number, batchSize: number): number => Math.ceil(rows / Math.min(batchSize, rows));

/**
 * The search: every candidate to the grid's last training length, or successive halving within
 * `budget`. Returns one result per candidate over the training lengths scored (`epochs`).
 */
async function search(
  jobs: TuneJob[],
  grid: Grid,
  base: TrainOptions,
  tuneOpts: TuneOptions,
  budget: Halving | undefined,
): Promise<{ results: TuneJobResult[]; epochs: number[]; halving?: HalvingPlan }> {
  const fitRows = jobs[0]!.fit.n;
  const spe = stepsPerEpoch(fitRows, base.batchSize);
  if (budget) {
    const plan = halvingPlan(grid.candidates.length, fitRows, base.batchSize, budget.steps, budget.maxEpochs);
    const runs = plan.rungs.reduce((a, r) => a + r.candidates, 0);
    const run = progressRunner(
      { stepsTotal: plan.steps, runs, stepsPerEpoch: spe, unit: 'run' as const },
      tuneOpts.threads,
      tuneOpts.onProgress,
    );
    return { results: await searchHalving(jobs, plan, run), epochs: plan.checkpoints, halving: plan };
  }
  const epochs = jobs[0]!.epochs;
  const stepsTotal = jobs.length * epochs[epochs.length - 1]! * spe;
  const run = progressRunner(
    { stepsTotal, runs: jobs.length, stepsPerEpoch: spe, unit: 'candidate' as const },
    tuneOpts.threads,
    tuneOpts.onProgress,
  );
  return { results: await run(jobs), epochs };
}

/** A search by successive halving, as chooseSearch gives it. */
type Halving = Extract<SearchChoice, { kind: 'halving' }>;

/** The options of a budgeted search: its batch size and learning rate (tune-scale.ts largeDataTraining). */
function withBudgetBatch(base: TrainOptions, budget: Halving, fitRows: number): TrainOptions {
  return { ...base, ...largeDataTraining(fitRows, base, budget) };
}

/** The grid's record with the successive-halving plan the search followed. */
function withHalving(grid: Grid, plan: HalvingPlan, budget: Halving): Grid {
  const rungs = plan.rungs.map((r) => ({ candidates: r.candidates, from_epoch: r.from, checkpoints: r.checkpoints }));
  const halving = {
    budget_steps: budget.steps,
    ...(budget.auto ? { chosen_by: `the data size: fit rows × longest grid epochs ≥ ${HALVING_ROW_EPOCHS}` } : {}),
    steps: plan.steps,
    batch_size: plan.batchSize,
    rungs,
  };
  return { ...grid, rule: { ...grid.rule, epochs: plan.checkpoints, successive_halving: halving } };
}

/** The card's record of a tuning run: the grid, every candidate's scores, the choice, refit and calibration. */
function tuningRecord(
  grid: Grid,
  epochs: number[],
  results: TuneJobResult[],
  choice: Choice,
  run: { fit: Dataset; val: Dataset; base: TrainOptions; refitRows: number; threads: number },
  calibration: TuneResult['card']['calibration'],
): TuneResult['card'] {
  const reg = run.fit.task === 'regression';
  const candidates = grid.candidates.flatMap((c, i) =>
    epochs.map((e, k) => ({
      ...(c.hidden ? { hidden: c.hidden } : {}),
      dropout: c.dropout,
      input_dropout: c.inputDropout,
      weight_decay: c.weightDecay,
      ...(reg ? { noise: c.noise } : {}),
      epochs: e,
      score: Number.isFinite(results[i]!.scores[k]!) ? results[i]!.scores[k]! : null,
    })),
  );
  return {
    objective: reg
      ? 'mean validation log-likelihood of the served predictive N(MC mean, MC variance [+ predicted variance] + σ²), nats; σ cross-fitted on halves of the validation rows; a heteroscedastic winner must beat the best homoscedastic candidate by more than one standard error and have no larger validation MSE (noise_rule)'
      : 'minus the mean validation NLL of the MC-averaged probabilities, temperature cross-fitted on halves of the validation rows',
    fit_rows: run.fit.n,
    validation_rows: run.val.n,
    mc_samples: run.base.mcSamples,
    grid: grid.rule,
    candidates,
    chosen: choice.candidate * epochs.length + choice.checkpoint,
    ...(choice.noiseRule ? { noise_rule: choice.noiseRule } : {}),
    refit: { rows: run.refitRows, epochs: epochs[choice.checkpoint]! },
    calibration,
    threads: run.threads,
  };
}

/**
 * Tune on `data` (the training rows): split off validation rows (opts.valSplit, seeded), run the grid,
 * pick the best candidate and training length, calibrate, refit on all rows with the winner, and measure
 * on `test` when given.
 */
export async function tune(
  data: Dataset,
  given: TrainOptions,
  tuneOpts: TuneOptions,
  test?: Dataset,
): Promise<TuneResult> {
  const [fit, val] = validationSplit(data, given);
  const grid = tuneOpts.grid ?? defaultGrid(data.task, fit.n);
  if (grid.epochs.length === 0 || grid.candidates.length === 0) throw new DataError('the tuning grid is empty');
  const gridEpochs = [...grid.epochs].sort((a, b) => a - b);
  const searchChoice = chooseSearch(tuneOpts.budget, fit.n, gridEpochs[gridEpochs.length - 1]!);
  const budget = searchChoice.kind === 'halving' ? searchChoice : undefined;
  const base = budget ? withBudgetBatch(given, budget, fit.n) : given;
  for (const c of grid.candidates) specFor(fit, candidateOptions(base, c, gridEpochs[0]!)); // bad settings fail here, not in a worker
  const jobs: TuneJob[] = grid.candidates.map((candidate, index) => ({
    index,
    candidate,
    base,
    fit,
    val,
    epochs: gridEpochs,
  }));
  const threads = Math.min(tuneOpts.threads, jobs.length);
  const { results, epochs, halving } = await search(jobs, grid, base, tuneOpts, budget);
  const choice = chooseWinner(grid.candidates, results);
  if (choice.candidate < 0) throw new DataError('every tuning candidate diverged; lower --lr');
  const candidate = grid.candidates[choice.candidate]!;
  const chosenEpochs = epochs[choice.checkpoint]!;
  const options = candidateOptions(base, candidate, chosenEpochs);
  const net = networkFromParams(fit, options, results[choice.candidate]!.params[choice.checkpoint]!, chosenEpochs);
  const { calibrationFraction } = tuneOpts;
  const source = calibrationFor(searchCalibration(searchChoice, tuneOpts.calibration), data.task);
  const members = ensembleMembers(tuneOpts.members ?? 1, data.task, source);
  const winner = {
    data,
    fit,
    val,
    base,
    candidate,
    options,
    net,
    threads: tuneOpts.threads,
    calibrationFraction,
    members,
    refitCorrection: tuneOpts.refitCorrection ?? 'burman',
  };
  const { refit, cal, folds, validationNet } = await calibrateAndRefit(winner, source);

  const model = withCalibration({ ...refit, valRows: val.n }, cal);
  // validation metrics: the winner (an ensemble: its members on the fit rows), which never saw these
  // rows, with the calibration the model carries
  const validationModel: TrainedModel = { ...withCalibration(validationNet ?? net, cal), metrics: model.metrics };
  model.metrics.validation = evaluate(validationModel, val, stream(base.seed, 'validationMetrics'), base.mcSamples);
  if (test) model.metrics.test = evaluate(model, test, stream(base.seed, 'testMetrics'), base.mcSamples);
  const run = { fit, val, base, refitRows: refit.trainRows, threads };
  const calibration = { source, rows: cal.rows, ...(folds ? { folds } : {}), ...(members > 1 ? { members } : {}) };
  return {
    model,
    validation: { model: validationModel, data: val },
    options,
    card: tuningRecord(
      halving && budget ? withHalving(grid, halving, budget) : grid,
      epochs,
      results,
      choice,
      run,
      calibration,
    ),
  };
}
