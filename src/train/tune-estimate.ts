/**
 * How long `--tune` will take, before it starts: the optimiser steps of the search and of the calibration
 * and refit after it (from the data size, the grid or the halving plan), at a speed measured on a short
 * run of one candidate on this machine.
 */
import { type Dataset, subset } from './data.js';
import type { TrainOptions } from './options.js';
import { fitNetwork, specFor } from './train.js';
import { afterSearchRowPasses, measureMcRowMs } from './tune-mc-cost.js';
import type { CalibrationSource } from './tune-calibrate.js';
import { CROSS_FIT_FOLDS } from './tune-calibrate.js';
import { halvingPlan } from './tune-halving.js';
import { largeDataTraining } from './tune-scale.js';
import { candidateOptions } from './tune-job.js';
import { type Grid, stepsPerEpoch } from './tune.js';
import { chooseSearch, type SearchChoice, type SearchOption, searchCalibration } from './tune-search.js';

export interface TuningEstimate {
  /** Optimiser steps of the search, and at most those of the calibration and refit after it. */
  searchSteps: number;
  afterSteps: number;
  /** Milliseconds per step measured (the mean over the candidates), and the estimated wall time of each part on the threads given. */
  stepMs: number;
  /** Milliseconds per row and Monte Carlo pass measured, and of scoring one checkpoint (the validation rows × T). */
  mcRowMs: number;
  scoreMs: number;
  searchMs: number;
  afterMs: number;
  /** Successive halving: the estimated time at the end of each rung, cumulative (tune-progress.ts PhaseEstimate). */
  searchProfile?: { steps: number; ms: number }[];
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
  run: {
    threads: number;
    calibration: CalibrationSource;
    budget?: SearchOption;
    calibrationFraction?: number;
    testRows?: number;
  },
): TuningEstimate {
  const fitRows = Math.round(data.n * (1 - base.valSplit));
  const search = chooseSearch(run.budget, fitRows, Math.max(...grid.epochs));
  const budget = search.kind === 'halving' ? search : null;
  const batchSize = budget ? largeDataTraining(fitRows, base, budget).batchSize : base.batchSize;
  const c = grid.candidates.length;
  const plan = budget ? halvingPlan(c, fitRows, batchSize, budget.steps, budget.maxEpochs) : null;
  const longest = plan ? plan.checkpoints[plan.checkpoints.length - 1]! : Math.max(...grid.epochs);
  const searchSteps = plan ? plan.steps : c * longest * stepsPerEpoch(fitRows, batchSize);
  const calibration = searchCalibration(search, run.calibration);
  const crossfit = calibration === 'crossfit' && data.task === 'regression';
  const foldRows = Math.round((data.n * (CROSS_FIT_FOLDS - 1)) / CROSS_FIT_FOLDS);
  const refitSteps = calibration === 'winner' ? 0 : longest * stepsPerEpoch(data.n, batchSize);
  const foldSteps = crossfit ? (CROSS_FIT_FOLDS - 1) * longest * stepsPerEpoch(foldRows, batchSize) : 0;
  const { stepMs, slowestMs } = gridStepMs(data, { ...base, batchSize }, grid);
  const mcRowMs = measureMcRowMs(data, specFor(data, candidateOptions({ ...base, batchSize }, grid.candidates[0]!, 1)));
  const valRows = data.n - fitRows;
  const scoreMs = mcRowMs * valRows * base.mcSamples;
  const threads = Math.max(1, run.threads);
  // each phase runs its jobs on at most as many threads as it has jobs (halving's last rung: one)
  // the time at the end of each rung (the progress line's share of time done: tune-progress.ts)
  const searchProfile: { steps: number; ms: number }[] = [];
  for (const r of plan?.rungs ?? []) {
    const steps = r.candidates * (r.checkpoints[r.checkpoints.length - 1]! - r.from) * plan!.stepsPerEpoch;
    const scores = r.candidates * r.checkpoints.length;
    const last = searchProfile[searchProfile.length - 1] ?? { steps: 0, ms: 0 };
    const ms = (stepMs * steps + scoreMs * scores) / Math.min(threads, r.candidates);
    searchProfile.push({ steps: last.steps + steps, ms: last.ms + ms });
  }
  const searchMs = plan
    ? searchProfile[searchProfile.length - 1]!.ms
    : (stepMs * searchSteps + scoreMs * c * grid.epochs.length) / Math.min(threads, c);
  const calibrationRows = crossfit
    ? data.n
    : calibration === 'holdout'
      ? Math.round(data.n * (run.calibrationFraction ?? 0))
      : valRows;
  const testRows = run.testRows ?? 0;
  const afterMcMs =
    mcRowMs * afterSearchRowPasses({ calibrationRows, validationRows: valRows, testRows }, base.mcSamples);
  // the winner is not known yet: the slowest architecture bounds the calibration and refit
  const afterMs =
    afterMcMs +
    (crossfit
      ? slowestMs * Math.max(refitSteps, (refitSteps + foldSteps) / Math.min(threads, CROSS_FIT_FOLDS))
      : slowestMs * refitSteps);
  const afterSteps = refitSteps + foldSteps;
  const profile = plan ? { searchProfile } : {};
  return {
    searchSteps,
    afterSteps,
    stepMs,
    mcRowMs,
    scoreMs,
    searchMs,
    afterMs,
    ...profile,
    batchSize,
    search,
    calibration,
  };
}
