/**
 * Lab: coverage of the served 90% interval on a nearly noise-free target recorded on a coarse grid (issue 22).
 *   npx tsx scripts/uci-lab-grid.mts [--grid 0.5] [--rows 1200] [--epochs 400] [--tune]
 */
import { parseArgs } from 'node:util';
import type { Dataset } from '../src/train/data.js';
import type { RegressionMetrics } from '../src/train/card-metrics.js';
import { DEFAULT_RUN_OPTIONS, trainDefaults } from '../src/train/options.js';
import { train } from '../src/train/train.js';
import { tune, defaultGrid } from '../src/train/tune.js';
import { Rng } from '../src/util/rng.js';

const { values } = parseArgs({
  options: {
    grid: { type: 'string', default: '0.5' },
    rows: { type: 'string', default: '1200' },
    epochs: { type: 'string', default: '400' },
    noise: { type: 'string', default: '0.01' },
    seed: { type: 'string', default: '1' },
    tune: { type: 'boolean', default: false },
    fn: { type: 'string', default: 'sin' },
  },
});
function synth(n: number, seed: number, g: number, noise: number): Dataset {
  const rng = new Rng(seed);
  const f = 3;
  const x = new Float64Array(n * f);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < f; j++) x[i * f + j] = rng.uniform(0, 1);
    const v =
      (values.fn === 'sin' ? Math.sin(2 * Math.PI * x[i * f]!) : 2 * x[i * f]!) +
      2 * x[i * f + 1]! ** 2 +
      x[i * f + 2]! +
      noise * rng.normal();
    y[i] = g > 0 ? Math.round(v / g) * g : v;
  }
  return { task: 'regression', features: ['a', 'b', 'c'], target: 'y', x, y, labels: [], n, f };
}
const g = Number(values.grid);
const n = Number(values.rows);
const data = synth(n, Number(values.seed), g, Number(values.noise));
const test = synth(2000, Number(values.seed) + 100, g, Number(values.noise));
const base = { ...trainDefaults(true), seed: 0, epochs: Number(values.epochs) };
let m: RegressionMetrics;
let extra: Record<string, unknown> = {};
if (values.tune) {
  const grid = { ...defaultGrid('regression', n), epochs: [Number(values.epochs) / 2, Number(values.epochs)] };
  const r = await tune(
    data,
    base,
    {
      threads: 1,
      grid,
      calibration: DEFAULT_RUN_OPTIONS.calibration,
      calibrationFraction: DEFAULT_RUN_OPTIONS.calibrationFraction,
    },
    test,
  );
  m = r.model.metrics.test as RegressionMetrics;
  extra = {
    sigma: r.model.aleatoricStd,
    s: r.model.epistemicScale,
    q90: r.model.conformalScores[Math.ceil((r.model.conformalScores.length + 1) * 0.9) - 1],
  };
} else {
  const r = train(data, base, test);
  m = r.metrics.test as RegressionMetrics;
  extra = {
    sigma: r.aleatoricStd,
    s: r.epistemicScale,
    q90: r.conformalScores[Math.ceil((r.conformalScores.length + 1) * 0.9) - 1],
  };
}
const pick = (k: string): number => Number((m as unknown as Record<string, number>)[k]?.toFixed(4));
console.log(
  JSON.stringify({
    g,
    n,
    rmse: pick('rmse_mc'),
    ll: -pick('nll'),
    cov50: pick('coverage_50'),
    cov90: pick('coverage_90'),
    cov95: pick('coverage_95'),
    conf50: pick('conformal_coverage_50'),
    conf90: pick('conformal_coverage_90'),
    conf95: pick('conformal_coverage_95'),
    ...extra,
  }),
);
