import { describe, expect, it } from 'vitest';
import { parseCli } from '../../src/train/cli.js';
import { type Dataset, DataError } from '../../src/train/data.js';
import { DEFAULT_TRAIN_OPTIONS } from '../../src/train/train.js';
import { type Grid, type TuneProgress, tune } from '../../src/train/tune.js';
import { budgetBatchSize, halvingPlan } from '../../src/train/tune-halving.js';
import { estimateTuning } from '../../src/train/tune-estimate.js';
import { runJob } from '../../src/train/tune-job.js';
import { Rng } from '../../src/util/rng.js';

/** y = sin(2a) + 0.5·b + 0.2·ε. */
function data(n: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float64Array(n * 2);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    x[2 * i] = rng.uniform(-2, 2);
    x[2 * i + 1] = rng.normal();
    y[i] = Math.sin(2 * x[2 * i]!) + 0.5 * x[2 * i + 1]! + 0.2 * rng.normal();
  }
  return { task: 'regression', features: ['a', 'b'], target: 'y', x, y, labels: [], n, f: 2 };
}

const base = { ...DEFAULT_TRAIN_OPTIONS, hidden: [16], mcSamples: 10, batchSize: 32 };
const grid: Grid = {
  candidates: [0.005, 0.05, 0.2, 0.5].map((p) => ({
    dropout: p,
    inputDropout: 0,
    weightDecay: 1e-3,
    noise: 'homoscedastic',
  })),
  epochs: [1],
  rule: {},
};

describe('successive halving plan', () => {
  it('splits the budget over rungs of halving candidates and doubling lengths', () => {
    // 1000 rows in batches of 100: 10 steps an epoch; 4 + 2·1 + 1·2 = 8 epochs per e, e = 8000 / 80 = 100
    const p = halvingPlan(4, 1000, 100, 8000);
    expect(p.rungs).toEqual([
      { candidates: 4, from: 0, checkpoints: [50, 100] },
      { candidates: 2, from: 100, checkpoints: [200] },
      { candidates: 1, from: 200, checkpoints: [400] },
    ]);
    expect([p.steps, p.stepsPerEpoch, p.checkpoints]).toEqual([8000, 10, [50, 100, 200, 400]]);
    // 3 candidates: 3 + 2·1 + 1·2 = 7 epochs per e; the steps never exceed the budget
    const q = halvingPlan(3, 1000, 100, 8000);
    expect([q.rungs.map((r) => r.candidates), q.checkpoints, q.steps]).toEqual([[3, 2, 1], [57, 114, 228, 456], 7980]);
    expect(halvingPlan(1, 1000, 100, 8000).rungs).toEqual([{ candidates: 1, from: 0, checkpoints: [400, 800] }]);
    // the longest run at most maxEpochs: e ≤ 300 / 2² = 75, the steps under the budget
    const capped = halvingPlan(4, 1000, 100, 8000, 300);
    expect([capped.checkpoints, capped.steps]).toEqual([[37, 75, 150, 300], 6000]);
    expect(halvingPlan(4, 1000, 100, 8000, 400).checkpoints).toEqual(p.checkpoints);
    expect(() => halvingPlan(4, 1000, 100, 100)).toThrow(DataError);
    expect(() => halvingPlan(4, 1000, 100, 100)).toThrow(
      'a tuning budget of 100 steps is too small: 4 candidates need at least 160',
    );
  });
  it('picks the batch size from the fit rows', () => {
    expect([6123, 16384, 29267, 65536, 400_000].map((n) => budgetBatchSize(n, 128))).toEqual([
      128, 128, 256, 512, 1024,
    ]);
    expect(budgetBatchSize(100, 500)).toBe(500);
  });
});

describe('the estimate before tuning', () => {
  it('counts the steps of the search and of the calibration and refit, timed at the measured speed', () => {
    const all = data(200, 3);
    // 160 fit rows in batches of 32: 5 steps an epoch; 200 rows: 7; crossfit folds of 160 rows: 5
    const g = estimateTuning(all, base, { ...grid, epochs: [10, 20] }, { threads: 2, calibration: 'crossfit' });
    expect([g.searchSteps, g.afterSteps, g.batchSize]).toEqual([4 * 20 * 5, 20 * 7 + 4 * 20 * 5, 32]);
    expect(g.stepMs).toBeGreaterThan(0);
    expect(g.mcRowMs).toBeGreaterThan(0);
    // each checkpoint scores the 40 validation rows with 10 MC passes; after the search the MC passes of
    // the 200 cross-fitted calibration rows, then the validation rows' metrics and report
    expect(g.scoreMs).toBeCloseTo(g.mcRowMs * 40 * 10, 9);
    expect(g.searchMs).toBeCloseTo((g.stepMs * 400 + g.scoreMs * 4 * 2) / 2, 6);
    expect(g.afterMs).toBeCloseTo((g.stepMs * 540) / 2 + g.mcRowMs * (200 + 2 * 40) * 10, 6);
    // halving in 600 steps: rungs of 4 × 15, 2 × 15 and 1 × 30 epochs of 5 steps on at most 2, 2 and 1 threads
    const h = estimateTuning(all, base, grid, { threads: 2, calibration: 'validation', budget: { steps: 600 } });
    expect([h.searchSteps, h.afterSteps]).toEqual([600, 60 * 7]);
    // scores: rung 0 at 2 checkpoints of 4 candidates, rung 1 at 1 of 2, rung 2 at 1 of 1
    expect(h.searchMs).toBeCloseTo(h.stepMs * (300 / 2 + 150 / 2 + 150) + h.scoreMs * (8 / 2 + 2 / 2 + 1), 6);
    expect(h.afterMs).toBeCloseTo(h.stepMs * 420 + h.mcRowMs * (40 + 2 * 40) * 10, 6);
    // the time at the end of each rung, for the progress line
    expect(h.searchProfile!.map((r) => r.steps)).toEqual([300, 450, 600]);
    expect(h.searchProfile![0]!.ms).toBeCloseTo((h.stepMs * 300 + h.scoreMs * 8) / 2, 6);
    expect(h.searchProfile![2]!.ms).toBe(h.searchMs);
    expect(g.searchProfile).toBeUndefined();
    // test rows add their metrics' and report's passes
    const t = estimateTuning(all, base, grid, {
      threads: 2,
      calibration: 'validation',
      budget: { steps: 600 },
      testRows: 50,
    });
    expect(t.afterMs - t.stepMs * 420).toBeCloseTo(t.mcRowMs * (40 + 2 * 40 + 2 * 50) * 10, 6);
  });
});

describe('--tune-budget', () => {
  it('continues a candidate from its parameters for the rung', () => {
    const d = data(80, 1);
    const job = { index: 0, candidate: grid.candidates[0]!, base, fit: d, val: d, epochs: [3] };
    const first = runJob(job);
    const seen: number[] = [];
    const next = runJob({ ...job, epochs: [5], resume: { startEpoch: 3, params: first.params[0]! } }, (e) =>
      seen.push(e),
    );
    expect(seen).toEqual([4, 5]);
    // two more epochs from the rung's parameters, not from the initialisation: closer to a 5-epoch run's fit than a 2-epoch run's
    const two = runJob({ ...job, epochs: [2] });
    expect(next.scores[0]!).toBeGreaterThan(two.scores[0]!);
  });

  it('takes the architecture as one more candidate dimension: each run resumes its own network', async () => {
    const all = data(200, 3);
    const arch: Grid = {
      candidates: [[16], [8, 8]].flatMap((hidden) =>
        [0.05, 0.3].map((p) => ({
          dropout: p,
          inputDropout: 0,
          weightDecay: 1e-3,
          noise: 'homoscedastic' as const,
          hidden,
        })),
      ),
      epochs: [1],
      rule: {},
    };
    const opts = { threads: 0, grid: arch, calibration: 'validation' as const, calibrationFraction: 0.2 };
    const r = await tune(all, base, { ...opts, budget: { steps: 600 } });
    // 4 candidates × 4 checkpoints, each with its architecture
    expect(r.card.candidates.map((c) => c.hidden)).toEqual([...Array(8).fill([16]), ...Array(8).fill([8, 8])]);
    const chosen = r.card.candidates[r.card.chosen]!;
    expect(r.options.hidden).toEqual(chosen.hidden);
    expect(r.model.spec.hidden).toEqual(chosen.hidden);
    // a rung resumed from parameters of the wrong network would fail or score otherwise: every candidate
    // that continued has a finite score at each of its later checkpoints
    const later = r.card.candidates.filter((c) => c.epochs > 15);
    expect(later.filter((c) => c.score !== null).length).toBe(3);
    for (const c of later.filter((x) => x.score !== null)) expect(Number.isFinite(c.score)).toBe(true);
  });

  it('keeps the better half at each rung, reports every step, and chooses the same on workers as inline', async () => {
    const all = data(200, 2);
    const progress: TuneProgress[] = [];
    const opts = {
      threads: 0,
      grid,
      calibration: 'validation' as const,
      calibrationFraction: 0.2,
      budget: { steps: 600 },
    };
    const r = await tune(all, base, { ...opts, onProgress: (p) => progress.push(p) });
    const halving = r.card.grid.successive_halving as {
      rungs: { candidates: number; checkpoints: number[] }[];
      steps: number;
      batch_size: number;
    };
    // 160 fit rows in batches of 32: 5 steps an epoch; e = floor(600 / (8·5)) = 15
    expect(halving).toMatchObject({ steps: 600, batch_size: 32 });
    expect(halving.rungs.map((g) => g.checkpoints)).toEqual([[7, 15], [30], [60]]);
    const scores = (c: number) => r.card.candidates.slice(4 * c, 4 * c + 4).map((x) => x.score);
    const bestAfter = (c: number, k: number) => Math.max(...(scores(c).slice(0, k) as number[]));
    const ranked = (k: number, among: number[]) =>
      [...among].sort((a, b) => bestAfter(b, k) - bestAfter(a, k) || a - b);
    const second = [0, 1, 2, 3].filter((c) => scores(c)[2] !== null);
    expect(second).toEqual(ranked(2, [0, 1, 2, 3]).slice(0, 2).sort());
    const third = [0, 1, 2, 3].filter((c) => scores(c)[3] !== null);
    expect(third).toEqual(ranked(3, second).slice(0, 1));
    const finite = r.card.candidates.map((x) => x.score ?? -Infinity);
    expect(r.card.candidates[r.card.chosen]!.score).toBe(Math.max(...finite));
    const last = progress[progress.length - 1]!;
    expect([last.stepsDone, last.stepsTotal, last.runsDone, last.runs, last.unit]).toEqual([600, 600, 7, 7, 'run']);
    const onWorkers = await tune(all, base, { ...opts, threads: 2 });
    expect(onWorkers.card.candidates).toEqual(r.card.candidates);
    expect(Array.from(onWorkers.model.net.params)).toEqual(Array.from(r.model.net.params));
  });

  it('is a --tune option, exclusive with --tune-epochs; --batch-size given overrides the data-size rule', () => {
    const argv = ['--data', 'x.csv', '--target', 'y', '--name', 'n'];
    expect(() => parseCli([...argv, '--tune-budget', '1000'])).toThrow('--tune-budget needs --tune');
    expect(() => parseCli([...argv, '--tune', '--tune-budget', '1000', '--tune-epochs', '5'])).toThrow(
      'give --tune-budget or --tune-epochs, not both',
    );
    expect(() => parseCli([...argv, '--tune', '--tune-budget', '1.5'])).toThrow(
      '--tune-budget 1.5: expected a positive integer',
    );
    expect(parseCli([...argv, '--tune', '--tune-budget', '1000']).budget).toEqual({
      steps: 1000,
      batchSize: undefined,
    });
    expect(parseCli([...argv, '--tune', '--tune-budget', '1000', '--batch-size', '64']).budget).toEqual({
      steps: 1000,
      batchSize: 64,
    });
    expect(parseCli([...argv, '--tune']).budget).toBeUndefined();
  });
});
