/**
 * The default search of `--tune` from the data size (issue 22, "bigger data in bounded time"): the full
 * grid on small data, successive halving in a budget of optimiser steps (tune-halving.ts) on large data,
 * and there no refit: the winner is served, calibrated on the tuning validation rows (`winner`). How the
 * halved search trains (batch size, learning rate): tune-scale.ts.
 */
import type { CalibrationSource } from './tune-calibrate.js';
/**
 * Fit rows × the grid's longest training length from which `--tune` searches by successive halving
 * unless told otherwise (issue 22: the full grid's cost grows with rows × epochs). 10⁷ keeps the full
 * grid for every dataset up to 2,500 fit rows at 4000 epochs (the five small UCI sets, at most wine's
 * 1,151, and the shipped models: their results unchanged to the bit) and halves power-plant (6,889 × 4000),
 * kin8nm, naval and protein (32,926 × 4000). Measured, power-plant split 0 (scripts/tune-budget.mts): the
 * full grid −2.8045 in 235 CPU s, the halved search −2.8101 in 56 CPU s; without it the 20 power-plant
 * splits alone would take about 40 minutes of the UCI bench's 2 cores.
 */
export const HALVING_ROW_EPOCHS = 1e7;

/**
 * The budget of the default search on large data, in optimiser steps, with the longest run at most the
 * grid's longest length (power-plant: 432,000 steps, 500 to 4000 epochs, the grid's checkpoints).
 * Measured on protein split 0 (scripts/tune-budget.mts; docs/benchmarks.md), lr 0.004, batch 256, no
 * refit: 800,000 steps −2.827 in 288 CPU s (the full grid: −2.829 in 978 s), where 400,000 steps with the
 * refit had given −2.831; with the refit 600,000 steps gave −2.854 (the refit at the winner's length is
 * not the network that was validated).
 */
export const DEFAULT_BUDGET_STEPS = 800_000;

/** What the caller asks for: a budget, the full grid (`'grid'`), or the rule (undefined). */
export type SearchOption = { steps: number; batchSize?: number } | 'grid' | undefined;

/** How a tuning run searches: the full grid, or successive halving in a budget (and whether by the rule). */
export type SearchChoice =
  | { kind: 'grid' }
  | { kind: 'halving'; steps: number; batchSize?: number; auto: boolean; maxEpochs?: number };

/**
 * The search for `fitRows` rows and the grid's longest length `longestEpochs`: the budget given, the full
 * grid when asked (`'grid'`), else the rule: halving in DEFAULT_BUDGET_STEPS when rows × epochs reach
 * HALVING_ROW_EPOCHS, the full grid below.
 */
export function chooseSearch(given: SearchOption, fitRows: number, longestEpochs: number): SearchChoice {
  if (given === 'grid') return { kind: 'grid' };
  if (given) return { kind: 'halving', ...given, auto: false };
  if (fitRows * longestEpochs >= HALVING_ROW_EPOCHS)
    return { kind: 'halving', steps: DEFAULT_BUDGET_STEPS, auto: true, maxEpochs: longestEpochs };
  return { kind: 'grid' };
}

/**
 * The calibration source of a search: as asked, except that a search halved by the rule (large data)
 * turns `crossfit` into `winner`: no refit, the winning candidate served and calibrated on the tuning
 * validation rows. At that size they are thousands of rows (protein: 8,231; power-plant 1,722), as many
 * as a cross-fit needs; the K − 1 extra fits and the refit at the chosen length would cost more than the
 * search, and the time goes to the search instead (twice the steps for the same wall time on 2 cores).
 */
export function searchCalibration(search: SearchChoice, asked: CalibrationSource): CalibrationSource {
  return search.kind === 'halving' && search.auto && asked === 'crossfit' ? 'winner' : asked;
}
