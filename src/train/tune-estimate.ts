/**
 * How long `--tune` will take, before it starts: the optimiser steps of the search and of the calibration
 * and refit after it (from the data size, the grid or the halving plan), at a speed measured on a short
 * run of one candidate on this machine.
 */
import { type Dataset, subset } from './data.js';
import type { TrainOptions } from './options.js';
import { fitNetwork } from './train.js';
import type { CalibrationSource } from './tune-calibrate.js';
import { CROSS_FIT_FOLDS } from './tune-calibrate.js';
import { budgetBatchSize, halvingPlan } from './tune-halving.js';
import { candidateOptions } from './tune-job.js';
import { type Grid, stepsPerEpoch } from './tune.js';
import { chooseSearch, type SearchChoice, type SearchOption, searchCalibration } from './tune-search.js';

export interface TuningEstimate {
  /** Optimiser steps of the search, and at most those of the calibration and refit after it. */
  searchSteps: number;
  afterSteps: number;
  /** Milliseconds per step measured (the mean over the candidates), and the estimated wall time of each part on the threads given. */
  stepMs: number;
  searchMs: number;
  afterMs: number;
  batchSize: number;
  /** The search the data size gives (tune-search.ts), and the calibration source it runs with. */
  search: SearchChoice;
  calibration: CalibrationSource;
}

/** Batches of rows the speed is measured on, and the epochs measured after a first one (warm-up). */
const PROBE_BATCHES = 16;
const PROBE_EPOCHS = 2;

/** Milliseconds per optimiser step of `opts`'s network on rows of `fit` (a short run after a warm-up epoch). */
export function measureStepMs(fit: Dataset, opts: TrainOptions): number {
  const rows = Math.min(fit.n, PROBE_BATCHES * opts.batchSize);
  const probe = subset(
    fit,
    Array.from({ length: rows }, (_, i) => i),
  );
  const elapsed: number[] = [];
  fitNetwork(
    probe,
    null,
    { ...opts, epochs: 1 + PROBE_EPOCHS, patience: 0 },
    { onEpoch: (l) => elapsed.push(l.elapsedMs) },
  );
  return (elapsed[PROBE_EPOCHS]! - elapsed[0]!) / (PROBE_EPOCHS * stepsPerEpoch(rows, opts.batchSize));
}

/**
 * Milliseconds per step of the grid's candidates: the mean over candidates (each architecture measured
 * once; a step's cost is the network's, not its dropout's or weight decay's), and the slowest.
 */
function gridStepMs(data: Dataset, base: TrainOptions, grid: Grid): { stepMs: number; slowestMs: number } {
  const byArchitecture = new Map<string, number>();
  const perCandidate = grid.candidates.map((cand) => {
    const opts = candidateOptions(base, cand, 1);
    const key = opts.hidden.join(',');
    if (!byArchitecture.has(key)) byArchitecture.set(key, measureStepMs(data, opts));
    return byArchitecture.get(key)!;
  });
  const stepMs = perCandidate.reduce((a, b) => a + b, 0) / perCandidate.length;
  return { stepMs, slowestMs: Math.max(...perCandidate) };
}

/**
 * The estimate for tuning `data` (the training rows) with `grid`, or successive halving in `budget`
 * steps, on `threads` workers, then calibrating from `calibration` and refitting (at most the longest
 * training length: the chosen one is not known yet).
 */
export function estimateTuning(
  data: Dataset,
  base: TrainOptions,
  grid: Grid,
  run: { threads: number; calibration: CalibrationSource; budget?: SearchOption },
): TuningEstimate {
  const fitRows = Math.round(data.n * (1 - base.valSplit));
  const search = chooseSearch(run.budget, fitRows, Math.max(...grid.epochs));
  const budget = search.kind === 'halving' ? search : null;
  const batchSize = budget ? (budget.batchSize ?? budgetBatchSize(fitRows, base.batchSize)) : base.batchSize;
  const c = grid.candidates.length;
  const plan = budget ? halvingPlan(c, fitRows, batchSize, budget.steps) : null;
  const longest = plan ? plan.checkpoints[plan.checkpoints.length - 1]! : Math.max(...grid.epochs);
  const searchSteps = plan ? plan.steps : c * longest * stepsPerEpoch(fitRows, batchSize);
  const calibration = searchCalibration(search, run.calibration);
  const crossfit = calibration === 'crossfit' && data.task === 'regression';
  const foldRows = Math.round((data.n * (CROSS_FIT_FOLDS - 1)) / CROSS_FIT_FOLDS);
  const refitSteps = longest * stepsPerEpoch(data.n, batchSize);
  const foldSteps = crossfit ? (CROSS_FIT_FOLDS - 1) * longest * stepsPerEpoch(foldRows, batchSize) : 0;
  const { stepMs, slowestMs } = gridStepMs(data, { ...base, batchSize }, grid);
  const threads = Math.max(1, run.threads);
  // each phase runs its jobs on at most as many threads as it has jobs (halving's last rung: one)
  const searchMs = plan
    ? plan.rungs.reduce((a, r) => {
        const steps = r.candidates * (r.checkpoints[r.checkpoints.length - 1]! - r.from) * plan.stepsPerEpoch;
        return a + (stepMs * steps) / Math.min(threads, r.candidates);
      }, 0)
    : (stepMs * searchSteps) / Math.min(threads, c);
  // the winner is not known yet: the slowest architecture bounds the calibration and refit
  const afterMs = crossfit
    ? slowestMs * Math.max(refitSteps, (refitSteps + foldSteps) / Math.min(threads, CROSS_FIT_FOLDS))
    : slowestMs * refitSteps;
  return { searchSteps, afterSteps: refitSteps + foldSteps, stepMs, searchMs, afterMs, batchSize, search, calibration };
}
