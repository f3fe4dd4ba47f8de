/**
 * `--tune` against `--tune-budget` on one published UCI split (issue 22, "bigger data in bounded time"):
 * the trainer's own tune() with the CLI's --tune defaults and the seed the benchmark gives the split, the
 * wall and CPU time of the whole tuning (search, calibration, refit) and the test scores of the served
 * predictive in the target's units (the trainer's test metrics: the served formulas, its own MC seed).
 *
 *   npx tsx scripts/tune-budget.mts --dataset power-plant --split 0 [--budget 400000|grid] [--threads 2] [--calibration validation|winner] [--lr 0.004] [--tune-hidden 200]
 *
 * Without --budget the trainer's default: the full grid on small data, successive halving on large data.
 * (there at 4 × the learning rate, the winner served without a refit); with --budget, --lr and --calibration
 * as given (the CLI's defaults: 0.001, crossfit).
 * --tune-hidden: the architectures searched, as the CLI's flag (200: the grid before issue 22's depth).
 *
 * Prints one JSON line. CPU seconds are the process's (worker threads included), for a shared machine.
 */
import { parseArgs } from 'node:util';
import { loadUci, splitCsv } from '../bench/uci.js';
import { parseCsv, toDataset } from '../src/train/data.js';
import type { RegressionMetrics } from '../src/train/card-metrics.js';
import { DEFAULT_RUN_OPTIONS, RUN_OPTIONS, trainDefaults } from '../src/train/options.js';
import { customGrid, tune } from '../src/train/tune.js';
import type { CalibrationSource } from '../src/train/tune-calibrate.js';

const { values } = parseArgs({
  options: {
    dataset: { type: 'string', default: 'power-plant' },
    split: { type: 'string', default: '0' },
    budget: { type: 'string' },
    threads: { type: 'string', default: '2' },
    calibration: { type: 'string' },
    lr: { type: 'string' },
    'tune-hidden': { type: 'string' },
  },
});
const split = Number(values.split);
const ds = loadUci('data/uci', values.dataset!);
const data = toDataset(parseCsv(splitCsv(ds, ds.train(split)), 'train'), { target: 'y', task: 'regression' });
const test = toDataset(parseCsv(splitCsv(ds, ds.test(split)), 'test'), {
  target: 'y',
  task: 'regression',
  features: data.features,
});
const base = { ...trainDefaults(true), seed: split, ...(values.lr ? { lr: Number(values.lr) } : {}) };
// --budget grid: the full grid at any size; absent: the trainer's rule (tune-search.ts)
const budget =
  values.budget === 'grid' ? ('grid' as const) : values.budget ? { steps: Number(values.budget) } : undefined;
const hidden = values['tune-hidden'] ? RUN_OPTIONS.tuneHidden.parse!(values['tune-hidden'], 'tune-hidden') : undefined;
const grid = customGrid('regression', Math.round(data.n * (1 - base.valSplit)), { hidden });
const started = performance.now();
const cpu = process.cpuUsage();
const r = await tune(
  data,
  base,
  {
    threads: Number(values.threads),
    grid,
    calibration: (values.calibration as CalibrationSource | undefined) ?? DEFAULT_RUN_OPTIONS.calibration,
    calibrationFraction: DEFAULT_RUN_OPTIONS.calibrationFraction,
    budget,
  },
  test,
);
const c = process.cpuUsage(cpu);
const m = r.model.metrics.test as RegressionMetrics;
const halving = r.card.grid.successive_halving as { budget_steps: number; chosen_by?: string } | undefined;
const round = (v: number, d = 4): number => Number(v.toFixed(d));
const line = {
  dataset: values.dataset,
  split,
  search: halving
    ? `budget ${halving.budget_steps} steps${halving.chosen_by ? ' (by the data size)' : ''}`
    : 'full grid',
  calibration: r.card.calibration.source,
  train_rows: data.n,
  wall_s: round((performance.now() - started) / 1000, 1),
  cpu_s: round((c.user + c.system) / 1e6, 1),
  test_ll: round(-m.nll),
  test_rmse: round(m.rmse_mc),
  coverage_90: round(m.coverage_90),
  chosen: {
    hidden: r.options.hidden,
    dropout: r.options.dropout[0],
    weight_decay_n: round(r.options.weightDecay * r.card.fit_rows),
    epochs: r.options.epochs,
  },
  batch_size: r.options.batchSize,
  lr: r.options.lr,
};
process.stdout.write(`${JSON.stringify(line)}\n`);
