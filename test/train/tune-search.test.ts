import { describe, expect, it } from 'vitest';
import { parseCli } from '../../src/train/cli.js';
import type { Dataset } from '../../src/train/data.js';
import { DEFAULT_TRAIN_OPTIONS } from '../../src/train/train.js';
import type { Grid, TuneProgress } from '../../src/train/tune.js';
import { estimateTuning } from '../../src/train/tune-estimate.js';
import { formatEta, timeLeft, tuneProgressText } from '../../src/train/tune-progress.js';
import {
  chooseSearch,
  DEFAULT_BUDGET_STEPS,
  HALVING_ROW_EPOCHS,
  searchCalibration,
} from '../../src/train/tune-search.js';
import { Rng } from '../../src/util/rng.js';

describe('the default search from the data size (issue 22)', () => {
  it('keeps the full grid below 10⁷ fit rows × epochs and halves in 800,000 steps from there', () => {
    expect([HALVING_ROW_EPOCHS, DEFAULT_BUDGET_STEPS]).toEqual([1e7, 800_000]);
    // the UCI training splits at the default grid's 4000 epochs: the five small sets keep the grid
    for (const fitRows of [364, 741, 553, 1151, 222]) {
      expect(chooseSearch(undefined, fitRows, 4000)).toEqual({ kind: 'grid' });
    }
    // power-plant, kin8nm, naval and protein halve, their longest run at most the grid's longest length
    for (const fitRows of [6889, 5898, 8592, 32_926])
      expect(chooseSearch(undefined, fitRows, 4000)).toEqual({
        kind: 'halving',
        steps: 800_000,
        auto: true,
        maxEpochs: 4000,
      });
    expect(chooseSearch(undefined, 2500, 4000).kind).toBe('halving');
    expect(chooseSearch(undefined, 2499, 4000).kind).toBe('grid');
    // what is asked for wins: a budget (not by the rule), or the full grid
    expect(chooseSearch({ steps: 1000 }, 100, 10)).toEqual({ kind: 'halving', steps: 1000, auto: false });
    expect(chooseSearch('grid', 1_000_000, 4000)).toEqual({ kind: 'grid' });
  });

  it('serves the winner of a search halved by the rule, calibrated on the validation rows, instead of cross-fitting', () => {
    const auto = chooseSearch(undefined, 32_926, 4000);
    expect(searchCalibration(auto, 'crossfit')).toBe('winner');
    expect(searchCalibration(auto, 'validation')).toBe('validation');
    expect(searchCalibration(auto, 'holdout')).toBe('holdout');
    expect(searchCalibration(chooseSearch({ steps: 9 }, 32_926, 4000), 'crossfit')).toBe('crossfit');
    expect(searchCalibration(chooseSearch(undefined, 300, 4000), 'crossfit')).toBe('crossfit');
  });

  it('is announced by the estimate: 16,000 rows halve, with the batch and calibration the data size gives', () => {
    const rng = new Rng(5);
    const n = 16_000;
    const x = Float64Array.from({ length: n }, () => rng.normal());
    const y = x.map((v) => v + 0.1 * rng.normal());
    const data: Dataset = { task: 'regression', features: ['a'], target: 'y', x, y, labels: [], n, f: 1 };
    const grid: Grid = {
      candidates: [0.05, 0.2].map((p) => ({ dropout: p, inputDropout: 0, weightDecay: 1e-4, noise: 'homoscedastic' })),
      epochs: [2000, 4000],
      rule: {},
    };
    const opts = { ...DEFAULT_TRAIN_OPTIONS, hidden: [8], batchSize: 128 };
    const e = estimateTuning(data, opts, grid, { threads: 2, calibration: 'crossfit' });
    // 12,800 fit rows × 4000 epochs ≥ 10⁷; 2 candidates: 2·e + 1·e epochs of 100 steps in 800,000 steps,
    // e = 2666 capped at 2000 (the last rung's 2·e at most the grid's 4000 epochs)
    expect(e.search).toEqual({ kind: 'halving', steps: 800_000, auto: true, maxEpochs: 4000 });
    expect([e.calibration, e.batchSize, e.searchSteps]).toEqual(['winner', 128, 3 * 2000 * 100]);
    // no cross-fitting and no refit: the winner is the model
    expect(e.afterSteps).toBe(0);
    const asked = estimateTuning(data, opts, grid, { threads: 2, calibration: 'crossfit', budget: 'grid' });
    expect([asked.search.kind, asked.calibration, asked.searchSteps]).toEqual(['grid', 'crossfit', 2 * 4000 * 100]);
  });

  it('is the full grid with --tune-budget grid and with --tune-epochs', () => {
    const argv = ['--data', 'x.csv', '--target', 'y', '--name', 'n', '--tune'];
    expect(parseCli([...argv, '--tune-budget', 'grid']).budget).toBe('grid');
    expect(parseCli([...argv, '--tune-epochs', '5,10']).budget).toBe('grid');
    expect(() => parseCli([...argv, '--tune-budget', 'all'])).toThrow(
      '--tune-budget all: expected a positive integer number of steps, or grid',
    );
  });
});

describe('the tuning progress line', () => {
  const p: TuneProgress = {
    stepsDone: 250,
    stepsTotal: 1000,
    runsDone: 1,
    runs: 4,
    unit: 'candidate',
    elapsedMs: 30_000,
    best: -1.23456,
  };

  it('shows the time left: the search at its speed so far, then the estimated calibration and refit', () => {
    // 250 steps in 30 s: 90 s left of the search; the estimate gave those steps 20 s (a quarter of 80 s),
    // so the run goes 1.5× slower than estimated and the calibration and refit's 60 s become 90 s
    expect(timeLeft(p, { searchMs: 80_000, afterMs: 60_000 })).toEqual({ searchMs: 90_000, afterMs: 90_000 });
    expect(tuneProgressText(p, { searchMs: 80_000, afterMs: 60_000 })).toBe(
      'tuning: candidate 1/4 done  best score -1.2346  25% of 1000 steps  ETA 1m30s  then calibration and refit ≈ 1m30s: 3m00s left',
    );
    // without an estimate (--quiet): the search's ETA alone; before the first step: unknown
    expect(tuneProgressText(p, null)).toBe(
      'tuning: candidate 1/4 done  best score -1.2346  25% of 1000 steps  ETA 1m30s',
    );
    expect(tuneProgressText({ ...p, stepsDone: 0, best: -Infinity }, { searchMs: 1, afterMs: 1 })).toBe(
      'tuning: candidate 1/4 done  best score -  0% of 1000 steps  ETA ?  then calibration and refit ≈ ?: ? left',
    );
    expect([formatEta(850), formatEta(12_500), formatEta(187_000)]).toEqual(['850ms', '12.5s', '3m07s']);
  });

  it("follows the estimate's profile of the search when its phases cost differently a step", () => {
    // successive halving: the first rung scores more checkpoints a step, 60 s for its 500 steps, the rest 20 s
    const estimate = {
      searchMs: 80_000,
      afterMs: 60_000,
      searchProfile: [
        { steps: 500, ms: 60_000 },
        { steps: 1000, ms: 80_000 },
      ],
    };
    // 250 steps in 30 s: on time (the profile gave them 30 s), so 50 s of search and 60 s after are left;
    // steps alone would have said 90 s of search
    expect(timeLeft(p, estimate)).toEqual({ searchMs: 50_000, afterMs: 60_000 });
    // 750 steps in 140 s: twice the 70 s the profile gave them, so twice its last 10 s and its 60 s after
    expect(timeLeft({ ...p, stepsDone: 750, elapsedMs: 140_000 }, estimate)).toEqual({
      searchMs: 20_000,
      afterMs: 120_000,
    });
    expect(timeLeft({ ...p, stepsDone: 1000, elapsedMs: 80_000 }, estimate)).toEqual({ searchMs: 0, afterMs: 60_000 });
  });
});
