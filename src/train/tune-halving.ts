/**
 * `--tune-budget`: the search in a budget of optimiser steps, by successive halving (Jamieson & Talwalkar
 * 2016; Li et al. 2018, Hyperband's inner loop). Every candidate trains to a first length and is scored;
 * the better half continues (from its parameters) to twice the length, and so on until one is left. With
 * the default grid's 4 candidates the rungs train 4 × e, 2 × e more and 1 × 2e more epochs: 8e epochs
 * where the full grid to the same longest length (4e) trains 16e.
 *
 * The default on large data (tune-search.ts chooseSearch; small data keep the full grid). Measured on
 * split 0, seed 0, 2 threads, shared machine (scripts/tune-budget.mts; CPU seconds of the whole tune, test
 * LL of the served predictive), cross-fitted, lr 0.001: power-plant, the full grid 235 s CPU, −2.8045 /
 * budget 400,000 steps 112 s, −2.8155; protein, budget 400,000 steps 509 s, −2.8475 / 800,000 steps
 * 917 s, −2.8353 (issue 22: the full grid −2.829 in 978 s). Most of such a run's time was the cross-fitted
 * calibration and refit after the search, at the chosen length: the default now has neither.
 *
 * The batch size and the training lengths follow from the data size: the budget is in steps, so a larger
 * dataset gets fewer epochs of the same number of steps, and a larger batch (budgetBatchSize).
 */
import { DataError } from './data-error.js';
import type { TuneJob, TuneJobResult } from './tune-job.js';

/** One rung: how many candidates train, from which epoch, to which checkpoints (the last is its length). */
export interface Rung {
  candidates: number;
  from: number;
  checkpoints: number[];
}

export interface HalvingPlan {
  batchSize: number;
  stepsPerEpoch: number;
  rungs: Rung[];
  /** Every rung's checkpoints, ascending: the training lengths the card lists. */
  checkpoints: number[];
  /** Optimiser steps of the whole search. */
  steps: number;
}

/** Rows per epoch at which the batch grows past the tuner's 128: 128 steps an epoch. */
const ROWS_PER_BATCH_DOUBLING = 128 * 128;
const MAX_BUDGET_BATCH = 1024;

/**
 * The minibatch size of a budgeted search: `base` (128) up to 128 steps an epoch, then doubled for every
 * doubling of the fit rows, at most 1024 (a heuristic: past that, a step costs more without a better
 * gradient for these small networks).
 */
export function budgetBatchSize(fitRows: number, base: number): number {
  const doublings = Math.max(0, Math.round(Math.log2(fitRows / ROWS_PER_BATCH_DOUBLING)));
  return Math.max(base, Math.min(MAX_BUDGET_BATCH, base * 2 ** doublings));
}

/**
 * Successive halving's rungs for `candidates` in `budgetSteps` optimiser steps (see the file comment),
 * with the longest run at most `maxEpochs` (the search halved by the data size: the grid's longest length).
 */
export function halvingPlan(
  candidates: number,
  fitRows: number,
  batchSize: number,
  budgetSteps: number,
  maxEpochs = Number.POSITIVE_INFINITY,
): HalvingPlan {
  const stepsPerEpoch = Math.ceil(fitRows / Math.min(batchSize, fitRows));
  const counts = [candidates];
  while (counts[counts.length - 1]! > 1) counts.push(Math.ceil(counts[counts.length - 1]! / 2));
  // epochs per e: all candidates for e, then rung k's survivors for 2^(k−1)·e more
  const perE = counts.reduce((a, n, k) => a + (k === 0 ? n : n * 2 ** (k - 1)), 0);
  // the last rung trains its survivor to e · 2^(rungs − 1)
  const e = Math.min(
    Math.floor(budgetSteps / (stepsPerEpoch * perE)),
    Math.floor(maxEpochs / 2 ** (counts.length - 1)),
  );
  if (e < 2) {
    throw new DataError(
      `a tuning budget of ${budgetSteps} steps is too small: ${candidates} candidates need at least ${2 * perE * stepsPerEpoch} (${stepsPerEpoch} steps an epoch)`,
    );
  }
  const rungs = counts.map((n, k) => ({
    candidates: n,
    from: k === 0 ? 0 : e * 2 ** (k - 1),
    checkpoints: k === 0 ? [Math.floor(e / 2), e] : [e * 2 ** k],
  }));
  const steps = rungs.reduce((a, r) => a + r.candidates * (r.checkpoints[r.checkpoints.length - 1]! - r.from), 0);
  return {
    batchSize,
    stepsPerEpoch,
    rungs,
    checkpoints: rungs.flatMap((r) => r.checkpoints),
    steps: steps * stepsPerEpoch,
  };
}

/** A candidate's best score so far (−Infinity when none is finite). */
const bestScore = (r: TuneJobResult): number => Math.max(-Infinity, ...r.scores.filter(Number.isFinite));

/**
 * Run the plan: each rung's candidates as jobs (`run`), the better half (best score so far, ties to the
 * earlier candidate) on to the next. Returns one result per candidate over all the plan's checkpoints
 * (−Infinity and null where it stopped before them).
 */
export async function searchHalving(
  jobs: TuneJob[],
  plan: HalvingPlan,
  run: (jobs: TuneJob[]) => Promise<TuneJobResult[]>,
): Promise<TuneJobResult[]> {
  const all = plan.checkpoints;
  const results: TuneJobResult[] = jobs.map((j) => ({
    index: j.index,
    scores: all.map(() => -Infinity),
    params: all.map(() => null),
    rowScores: all.map(() => null),
    mse: all.map(() => Number.NaN),
  }));
  let alive = jobs.map((j) => j.index);
  for (const rung of plan.rungs) {
    alive = alive.slice(0, rung.candidates);
    const rungJobs = alive.map((i) => {
      const last = rung.from > 0 ? results[i]!.params[all.indexOf(rung.from)] : null;
      return {
        ...jobs[i]!,
        epochs: rung.checkpoints,
        ...(last ? { resume: { startEpoch: rung.from, params: last } } : {}),
      };
    });
    // a candidate that diverged has no parameters to continue from: it stops here
    const runnable = rungJobs.filter((j) => rung.from === 0 || j.resume);
    for (const r of (await run(runnable)).filter(Boolean)) {
      const into = results[r.index]!;
      rung.checkpoints.forEach((c, k) => {
        const at = all.indexOf(c);
        into.scores[at] = r.scores[k]!;
        into.params[at] = r.params[k]!;
        into.rowScores[at] = r.rowScores[k]!;
        into.mse[at] = r.mse[k]!;
      });
      if (r.error) into.error = r.error;
    }
    alive = [...alive].sort((a, b) => bestScore(results[b]!) - bestScore(results[a]!) || a - b);
  }
  return results;
}
