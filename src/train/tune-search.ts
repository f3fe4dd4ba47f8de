/**
 * The default search of `--tune` from the data size (issue 22, "bigger data in bounded time"): the full
 * grid on small data, successive halving in a budget of optimiser steps (tune-halving.ts) on large data,
 * and there the calibration on the tuning validation rows instead of cross-fitting.
 */
import type { CalibrationSource } from './tune-calibrate.js';
/**
 * Fit rows × the grid's longest training length from which `--tune` searches by successive halving
 * unless told otherwise (issue 22: the full grid's cost grows with rows × epochs). 5·10⁷ keeps the full
 * grid for every dataset up to about 12,500 fit rows at 4000 epochs (the five small UCI sets, power-plant,
 * kin8nm, naval and the shipped models: their results unchanged) and halves protein (32,926 × 4000).
 */
export const HALVING_ROW_EPOCHS = 5e7;

/**
 * The budget of the default search on large data, in optimiser steps: measured on protein split 0
 * (scripts/tune-budget.mts; docs/benchmarks.md): 400,000 steps, the batch from the data size.
 */
export const DEFAULT_BUDGET_STEPS = 400_000;

/** What the caller asks for: a budget, the full grid (`'grid'`), or the rule (undefined). */
export type SearchOption = { steps: number; batchSize?: number } | 'grid' | undefined;

/** How a tuning run searches: the full grid, or successive halving in a budget (and whether by the rule). */
export type SearchChoice = { kind: 'grid' } | { kind: 'halving'; steps: number; batchSize?: number; auto: boolean };

/**
 * The search for `fitRows` rows and the grid's longest length `longestEpochs`: the budget given, the full
 * grid when asked (`'grid'`), else the rule: halving in DEFAULT_BUDGET_STEPS when rows × epochs reach
 * HALVING_ROW_EPOCHS, the full grid below.
 */
export function chooseSearch(given: SearchOption, fitRows: number, longestEpochs: number): SearchChoice {
  if (given === 'grid') return { kind: 'grid' };
  if (given) return { kind: 'halving', ...given, auto: false };
  if (fitRows * longestEpochs >= HALVING_ROW_EPOCHS)
    return { kind: 'halving', steps: DEFAULT_BUDGET_STEPS, auto: true };
  return { kind: 'grid' };
}

/**
 * The calibration source of a search: as asked, except that a search halved by the rule (large data)
 * calibrates `crossfit` on the tuning validation rows: at that size they are thousands of rows (protein:
 * 8,231), as many as a cross-fit needs, and the K − 1 extra fits at the chosen length would cost more
 * than the search.
 */
export function searchCalibration(search: SearchChoice, asked: CalibrationSource): CalibrationSource {
  return search.kind === 'halving' && search.auto && asked === 'crossfit' ? 'validation' : asked;
}
