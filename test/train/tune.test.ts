import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { run } from '../../src/train/cli.js';
import { type Dataset, readCsvFile, splitRows, toDataset } from '../../src/train/data.js';
import { memberSeed } from '../../src/train/ensemble.js';
import { exportOnnx } from '../../src/train/export-onnx.js';
import type { ClassificationMetrics, RegressionMetrics } from '../../src/train/card-metrics.js';
import { TUNE_DEEP_FIT_ROWS } from '../../src/train/options.js';
import { customGrid, defaultGrid, type Grid, tune } from '../../src/train/tune.js';
import { assembleOutOfFold, crossFitFolds } from '../../src/train/tune-calibrate.js';
import { DEFAULT_TRAIN_OPTIONS, fitNetwork } from '../../src/train/train.js';
import { Rng, stream } from '../../src/util/rng.js';

/** y = sin(2a) + 0.5·b + ε with σ(ε) from 0.05 (a = 0) to 0.85 (|a| = 2): strongly heteroscedastic. */
function heteroData(n: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float64Array(n * 2);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const a = rng.uniform(-2, 2);
    const b = rng.normal();
    x[2 * i] = a;
    x[2 * i + 1] = b;
    y[i] = Math.sin(2 * a) + 0.5 * b + (0.05 + 0.4 * Math.abs(a)) * rng.normal();
  }
  return { task: 'regression', features: ['a', 'b'], target: 'y', x, y, labels: [], n, f: 2 };
}

const base = { ...DEFAULT_TRAIN_OPTIONS, hidden: [24], mcSamples: 30, batchSize: 64 };

describe('--tune', () => {
  it('picks the known best candidate: heteroscedastic noise and the longer training on heteroscedastic data', async () => {
    const data = heteroData(500, 2);
    const grid: Grid = {
      candidates: [
        { dropout: 0.05, inputDropout: 0, weightDecay: 1e-4, noise: 'homoscedastic' },
        { dropout: 0.05, inputDropout: 0, weightDecay: 1e-4, noise: 'heteroscedastic' },
      ],
      epochs: [2, 120],
      rule: {},
    };
    const r = await tune(data, base, { threads: 0, grid, calibration: 'validation', calibrationFraction: 0.2 });
    expect(r.options.noise).toBe('heteroscedastic');
    expect(r.options.epochs).toBe(120);
    expect(r.model.noise).toBe('heteroscedastic');
    // the record: every candidate × training length with its score, the chosen one the best
    expect(r.card.candidates).toHaveLength(4);
    const scores = r.card.candidates.map((c) => c.score!);
    expect(r.card.chosen).toBe(scores.indexOf(Math.max(...scores)));
    expect(r.card.candidates[r.card.chosen]).toMatchObject({ noise: 'heteroscedastic', epochs: 120 });
    // by a clear margin: the homoscedastic model cannot describe noise that grows 17-fold
    expect(scores[3]! - scores[1]!).toBeGreaterThan(0.03);
    // refit on every training row, calibrated on the tuning validation rows
    expect(r.model.trainRows).toBe(500);
    expect(r.card.refit).toEqual({ rows: 500, epochs: 120 });
    expect(r.model.conformalScores.length).toBe(100);
  });

  it('--calibration holdout: the refit leaves out a calibration fraction and is calibrated on it', async () => {
    const data = heteroData(300, 9);
    const grid: Grid = {
      candidates: [{ dropout: 0.05, inputDropout: 0, weightDecay: 1e-3, noise: 'homoscedastic' }],
      epochs: [20],
      rule: {},
    };
    const r = await tune(data, base, { threads: 0, grid, calibration: 'holdout', calibrationFraction: 0.25 });
    expect(r.model.trainRows).toBe(225);
    expect(r.model.calibrationRows).toBe(75);
    expect(r.model.conformalScores.length).toBe(75);
    expect(r.model.calibrationSource).toContain('held-out calibration rows (75');
    expect(r.card.calibration).toEqual({ source: 'holdout', rows: 75 });
    expect(r.card.refit.rows).toBe(225);
  });

  it('--calibration winner: no refit, the winning candidate is the model, calibrated on the validation rows', async () => {
    const data = heteroData(300, 9);
    const grid: Grid = {
      candidates: [{ dropout: 0.05, inputDropout: 0, weightDecay: 1e-3, noise: 'homoscedastic' }],
      epochs: [20],
      rule: {},
    };
    const r = await tune(data, base, { threads: 0, grid, calibration: 'winner', calibrationFraction: 0.2 });
    expect(r.model.trainRows).toBe(240);
    expect(r.card.refit).toEqual({ rows: 240, epochs: 20 });
    expect(r.card.calibration).toEqual({ source: 'winner', rows: 60 });
    expect(r.model.calibrationSource).toContain('no refit');
    // the served network is the one the validation metrics measured, parameter for parameter
    expect(Array.from(r.model.net.params)).toEqual(Array.from(r.validation.model.net.params));
    expect(r.model.metrics.validation).toEqual(r.validation.model.metrics.validation);
  });

  it('workers and the main thread give the same choice and the same bytes (regression and classification)', async () => {
    const data = heteroData(300, 5);
    const grid: Grid = {
      candidates: [0.01, 0.2].flatMap((p) =>
        (['homoscedastic', 'heteroscedastic'] as const).map((noise) => ({
          dropout: p,
          inputDropout: 0,
          weightDecay: 1e-3,
          noise,
        })),
      ),
      epochs: [10, 30],
      rule: {},
    };
    const bytes = async (threads: number, ds: Dataset, g: Grid) => {
      const r = await tune(ds, base, { threads, grid: g, calibration: 'validation', calibrationFraction: 0.2 });
      return {
        onnx: Buffer.from(exportOnnx(r.model, { card: JSON.stringify({ ...r.card, threads: 0 }) })),
        chosen: r.card.chosen,
      };
    };
    const inline = await bytes(0, data, grid);
    const workers = await bytes(2, data, grid);
    expect(workers.chosen).toBe(inline.chosen);
    expect(workers.onnx.equals(inline.onnx)).toBe(true);

    const wine = toDataset(readCsvFile('data/wine.csv').table, { target: 'class' });
    const cgrid: Grid = {
      candidates: [0.1, 0.5].map((p) => ({ dropout: p, inputDropout: 0, weightDecay: 1e-3, noise: 'homoscedastic' })),
      epochs: [5, 15],
      rule: {},
    };
    const a = await bytes(0, wine, cgrid);
    const b = await bytes(2, wine, cgrid);
    expect(b.chosen).toBe(a.chosen);
    expect(b.onnx.equals(a.onnx)).toBe(true);
  });

  it('classifiers: tuned by validation NLL, temperature-scaled, NLL and ECE before and after in the metrics', async () => {
    const wine = toDataset(readCsvFile('data/wine.csv').table, { target: 'class' });
    const grid: Grid = {
      candidates: [0.1, 0.5].map((p) => ({ dropout: p, inputDropout: 0, weightDecay: 1e-3, noise: 'homoscedastic' })),
      epochs: [20, 60],
      rule: {},
    };
    const r = await tune(wine, base, { threads: 0, grid, calibration: 'validation', calibrationFraction: 0.2 });
    expect(r.model.temperature).toBeGreaterThan(0);
    const t = r.model.temperatureMetrics!;
    expect(t.rows).toBe(36);
    // fitted by NLL on these rows: never worse than T = 1 there
    expect(t.nll_after).toBeLessThanOrEqual(t.nll_before + 1e-12);
    expect((r.model.metrics.validation as ClassificationMetrics).accuracy).toBeGreaterThan(0.8);
  });
});

/** y = 0.8a − 0.5b + σε, σ = 0.3: homoscedastic, nearly linear (a small network fits the mean). */
function homoData(n: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float64Array(n * 2);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const a = rng.normal();
    const b = rng.normal();
    x[2 * i] = a;
    x[2 * i + 1] = b;
    y[i] = 0.8 * a - 0.5 * b + 0.3 * rng.normal();
  }
  return { task: 'regression', features: ['a', 'b'], target: 'y', x, y, labels: [], n, f: 2 };
}

describe('cross-fitted calibration', () => {
  it('folds: every row held out exactly once, the rest its complement; fold 0 is the tuning validation split, rows in the same order', () => {
    for (const n of [10, 37, 308]) {
      const folds = crossFitFolds(n, 5, stream(0, 'validationSplit'));
      const count = new Uint8Array(n);
      for (const f of folds) {
        for (const r of f.held) count[r]!++;
        expect(f.held.length + f.rest.length).toBe(n);
        const held = new Set(f.held);
        for (const r of f.rest) expect(held.has(r)).toBe(false);
        expect(new Set(f.rest).size).toBe(f.rest.length);
        expect(Math.abs(f.held.length - n / 5)).toBeLessThan(1);
      }
      expect(Array.from(count).every((c) => c === 1)).toBe(true);
      // the tuner's split (splitRows, same seed, fraction 1/5): same rows, same order
      const ds = homoData(n, 1);
      const [fit, val] = splitRows(ds, 0.2, stream(0, 'validationSplit'), 'validation split');
      expect(Array.from(folds[0]!.held, (r) => ds.y[r])).toEqual(Array.from(val.y));
      expect(Array.from(folds[0]!.rest, (r) => ds.y[r])).toEqual(Array.from(fit.y));
    }
    expect(() => crossFitFolds(3, 5, 1)).toThrow(/too few/);
  });

  it('out-of-fold predictives land on their rows', () => {
    const folds = crossFitFolds(11, 3, 4);
    const preds = folds.map((f, k) => ({
      mean: Float64Array.from(f.held, (r) => r + 0.5),
      epistemicVar: Float64Array.from(f.held, () => k),
      aleatoricVar: null,
    }));
    const p = assembleOutOfFold(11, folds, preds);
    expect(Array.from(p.mean)).toEqual(Array.from({ length: 11 }, (_, i) => i + 0.5));
    for (let k = 0; k < 3; k++) for (const r of folds[k]!.held) expect(p.epistemicVar[r]).toBe(k);
    expect(p.aleatoricVar).toBeNull();
    expect(() => assembleOutOfFold(11, [folds[0]!, folds[0]!, folds[1]!, folds[2]!], [...preds, preds[0]!])).toThrow(
      /two folds/,
    );
  });

  it('tune: calibrated on every training row out of fold; the refit is the plain fit on all rows; workers and inline give the same bytes', async () => {
    const data = heteroData(300, 9);
    const grid: Grid = {
      candidates: [0.01, 0.1].map((p) => ({
        dropout: p,
        inputDropout: 0,
        weightDecay: 1e-3,
        noise: 'homoscedastic' as const,
      })),
      epochs: [10, 30],
      rule: {},
    };
    const run1 = async (threads: number) =>
      tune(data, base, { threads, grid, calibration: 'crossfit', calibrationFraction: 0.2 });
    const a = await run1(0);
    expect(a.card.calibration).toEqual({ source: 'crossfit', rows: 300, folds: 5 });
    expect(a.model.calibrationRows).toBe(300);
    expect(a.model.conformalScores.length).toBe(300);
    expect(a.model.calibrationSource).toContain('5-fold cross-fitting');
    expect(a.model.trainRows).toBe(300);
    const direct = fitNetwork(data, null, a.options);
    expect(Array.from(a.model.net.params)).toEqual(Array.from(direct.net.params));
    expect(a.model.history.map((h) => h.trainLoss)).toEqual(direct.history.map((h) => h.trainLoss));
    // the refit's correction (on by default) shrinks the residuals, so σ, by √ratio; off, it is not there
    const off = await tune(data, base, {
      threads: 0,
      grid,
      calibration: 'crossfit',
      calibrationFraction: 0.2,
      refitCorrection: 'off',
    });
    expect(off.model.refitCorrection).toBeUndefined();
    expect(Array.from(off.model.net.params)).toEqual(Array.from(a.model.net.params));
    const rc = a.model.refitCorrection!;
    expect(rc.ratio).toBeLessThan(1);
    expect(rc.residualScale).toBe(Math.sqrt(rc.ratio));
    expect(a.model.aleatoricStd).toBeLessThan(off.model.aleatoricStd);
    expect(a.model.calibrationSource).toContain("Burman's correction");
    const b = await run1(2);
    const bytes = (r: typeof a) =>
      Buffer.from(exportOnnx(r.model, { card: JSON.stringify({ ...r.card, threads: 0 }) }));
    expect(bytes(b).equals(bytes(a))).toBe(true);
    // classifiers keep the validation-row temperature
    const wine = toDataset(readCsvFile('data/wine.csv').table, { target: 'class' });
    const c = await tune(wine, base, {
      threads: 0,
      grid: { ...grid, epochs: [5] },
      calibration: 'crossfit',
      calibrationFraction: 0.2,
    });
    expect(c.card.calibration).toEqual({ source: 'validation', rows: 36 });
  });

  it('--members 2: member 0 is the one-network refit, member 1 its own seed; calibrated on the mixture; workers and inline give the same bytes', async () => {
    const data = heteroData(300, 9);
    const grid: Grid = {
      candidates: [{ dropout: 0.1, inputDropout: 0, weightDecay: 1e-3, noise: 'homoscedastic' as const }],
      epochs: [20],
      rule: {},
    };
    const opts = { grid, calibration: 'crossfit' as const, calibrationFraction: 0.2 };
    const one = await tune(data, base, { ...opts, threads: 0 });
    const two = await tune(data, base, { ...opts, threads: 0, members: 2 });
    expect(two.card.calibration).toEqual({ source: 'crossfit', rows: 300, folds: 5, members: 2 });
    expect(two.model.ensemble?.length).toBe(1);
    expect(Array.from(two.model.net.params)).toEqual(Array.from(one.model.net.params));
    const second = fitNetwork(data, null, { ...two.options, seed: memberSeed(base.seed, 1) });
    expect(Array.from(two.model.ensemble![0]!.net.params)).toEqual(Array.from(second.net.params));
    expect(two.model.aleatoricStd).not.toBe(one.model.aleatoricStd); // the mixture's calibration, not member 0's
    expect(two.model.calibrationSource).toContain('the 2 members');
    const bytes = (r: typeof one) => Buffer.from(exportOnnx(r.model, {}));
    expect(bytes(await tune(data, base, { ...opts, threads: 2, members: 2 })).equals(bytes(two))).toBe(true);
    // large data (calibrated on 'winner') and classifiers serve one network whatever is asked
    const winner = await tune(data, base, { ...opts, calibration: 'winner', threads: 0, members: 2 });
    expect(winner.model.ensemble).toBeUndefined();
  });

  it('calibrates better than the validation fifth: test log-likelihood on fresh rows (homoscedastic data, σ = 0.3, 8 seeds)', async () => {
    const grid: Grid = {
      candidates: [{ dropout: 0.01, inputDropout: 0, weightDecay: 1e-3, noise: 'homoscedastic' }],
      epochs: [200],
      rule: {},
    };
    const test = homoData(4000, 99);
    const ll = { crossfit: [] as number[], validation: [] as number[] };
    const width = { crossfit: [] as number[], validation: [] as number[] };
    for (let seed = 0; seed < 8; seed++) {
      const data = homoData(250, 100 + seed);
      for (const calibration of ['crossfit', 'validation'] as const) {
        const r = await tune(
          data,
          { ...base, seed },
          { threads: 0, grid, calibration, calibrationFraction: 0.2 },
          test,
        );
        const m = r.model.metrics.test as RegressionMetrics;
        ll[calibration].push(-m.nll);
        width[calibration].push(m.interval_width_90);
      }
    }
    // the oracle: N(f(x), 0.3²), 90% width 2·1.645·0.3; cross-fitting uses 5× the rows for (s, σ)
    const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / v.length;
    const widthError = (v: number[]) => Math.sqrt(mean(v.map((w) => (w - 2 * 1.6449 * 0.3) ** 2)));
    expect(mean(ll.crossfit)).toBeGreaterThan(mean(ll.validation) + 0.005);
    expect(widthError(width.crossfit)).toBeLessThan(0.6 * widthError(width.validation));
  });
});

describe('train CLI with --tune', () => {
  let stderr = '';
  beforeEach(() => {
    stderr = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
      stderr += String(s);
      return true;
    });
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  });
  afterEach(() => vi.restoreAllMocks());

  it('records the grid, every candidate, the choice, calibration and feature statistics; same seed → same bytes', async () => {
    const a = mkdtempSync(join(tmpdir(), 'tune-a-'));
    const b = mkdtempSync(join(tmpdir(), 'tune-b-'));
    const args = [
      '--data',
      'data/diabetes.csv',
      '--target',
      'target',
      '--name',
      't',
      '--tune',
      '--tune-epochs',
      '5,15',
      '--tune-dropout',
      '0.05,0.2',
      '--tune-weight-decay',
      '1',
      '--tune-noise',
      'homoscedastic,heteroscedastic',
      '--tune-hidden',
      '200/50,50',
      '--mc-samples',
      '20',
      '--threads',
      '2',
      '--test-split',
      '0.2',
    ];
    expect(await run([...args, '--out', a])).toBe(0);
    expect(await run([...args, '--out', b, '--quiet'])).toBe(0);
    expect(readFileSync(join(a, 't', 'model.onnx')).equals(readFileSync(join(b, 't', 'model.onnx')))).toBe(true);
    expect(stderr).toContain(
      'tuning t: regression, 354 rows × 10 features, 88 test rows; 8 candidates × 2 training lengths on 2 thread(s)',
    );
    expect(stderr).toMatch(/tuning: candidate 8\/8 done {2}best score -?\d/);
    // 283 fit rows in batches of 128: 3 steps an epoch; 8 candidates (4 × 2 architectures) × 15 epochs
    expect(stderr).toMatch(
      /estimate: the full grid: 360 steps ≈ \d+(\.\d)?m?s on 2 thread\(s\), then calibration and refit ≤ \d+ steps/,
    );
    expect(stderr).toMatch(/tuning: candidate 8\/8 done {2}best score -?\d\.\d+ {2}100% of 360 steps {2}ETA 0ms/);
    const card = JSON.parse(readFileSync(join(a, 't', 'model.json'), 'utf8'));
    expect(card.tuning.candidates).toHaveLength(16);
    expect(card.tuning.grid.hidden).toEqual([[200], [50, 50]]);
    expect(card.tuning.candidates[8]).toMatchObject({ hidden: [50, 50], dropout: 0.05, epochs: 5 });
    expect(card.tuning.candidates[0]).toEqual({
      hidden: [200],
      dropout: 0.05,
      input_dropout: 0,
      weight_decay: 1 / 283,
      noise: 'homoscedastic',
      epochs: 5,
      score: expect.any(Number),
    });
    expect(card.tuning.candidates[card.tuning.chosen].dropout).toBe(card.dropout[0]);
    // the chosen architecture is the model's
    expect(card.training.hidden).toEqual(card.tuning.candidates[card.tuning.chosen].hidden);
    expect(card.training).toMatchObject({ tuned: true, epochs: card.tuning.refit.epochs, train_rows: 354 });
    expect(card.noise).toMatch(/^(homo|hetero)scedastic$/);
    expect(card.output_roles.mean).toBe('prediction');
    expect(card.interval_method).toBe('conformal');
    // cross-fitted calibration (the default): every training row scored out of fold
    expect(card.conformal.rows).toBe(354);
    expect(card.tuning.calibration).toEqual({ source: 'crossfit', rows: 354, folds: 5 });
    expect(card.calibration.source).toContain('out-of-fold predictions on all 354 training rows');
    // Burman's correction for the refit, recorded with its terms
    const rc = card.calibration.refit_correction;
    expect(rc.ratio).toBeCloseTo(Math.min(1, Math.max(0.5, (rc.cv_mse + rc.refit_mse - rc.folds_mse) / rc.cv_mse)), 12);
    expect(rc.residual_scale).toBeCloseTo(Math.sqrt(rc.ratio), 12);
    expect(rc.refit_mse).toBeLessThan(rc.cv_mse);
    expect(card.conformal.scores).toEqual([...card.conformal.scores].sort((x: number, y: number) => x - y));
    expect(card.feature_stats.min).toHaveLength(10);
    expect(card.feature_stats.rows).toBe(354);
    expect(card.feature_stats.min[0]).toBeLessThanOrEqual(card.feature_stats.mean[0]);
    expect(card.history.epoch.at(-1)).toBe(card.tuning.refit.epochs);
  });

  it('the default grid: four (dropout, c) pairs at width 200; --tune-epochs alone keeps them, --tune-dropout makes the product, --hidden fixes the architecture, --tune-hidden lists them', async () => {
    const g = defaultGrid('regression', 200);
    const pairs = [
      [0.005, 0.01],
      [0.05, 0.01],
      [0.2, 0.01],
      [0.2, 1],
    ];
    expect(g.candidates.map((c) => [c.hidden, c.dropout, c.weightDecay * 200])).toEqual(
      pairs.map((p) => [[200], ...p]),
    );
    // two architectures: every pair with each, the first architecture first
    expect(defaultGrid('regression', 200, [[200], [50, 50]]).candidates.map((c) => [c.hidden, c.dropout])).toEqual([
      ...pairs.map((p) => [[200], p[0]]),
      ...pairs.map((p) => [[50, 50], p[0]]),
    ]);
    expect(defaultGrid('regression', 200, [[7]]).candidates.map((c) => c.hidden)).toEqual([[7], [7], [7], [7]]);
    // the architecture by the fit rows: two layers of 50 for regression from TUNE_DEEP_FIT_ROWS, the rule in the card
    expect(defaultGrid('regression', TUNE_DEEP_FIT_ROWS - 1).rule).toMatchObject({ hidden: [[200]] });
    expect(defaultGrid('regression', TUNE_DEEP_FIT_ROWS - 1).rule).not.toHaveProperty('hidden_rule');
    const deep = defaultGrid('regression', TUNE_DEEP_FIT_ROWS);
    expect(deep.candidates.map((c) => [c.hidden, c.dropout])).toEqual(pairs.map((p) => [[50, 50], p[0]]));
    expect(deep.rule.hidden_rule).toBe(`200; 50,50 for regression from ${TUNE_DEEP_FIT_ROWS} fit rows`);
    expect(defaultGrid('classification', 10 * TUNE_DEEP_FIT_ROWS).rule.hidden).toEqual([[200]]);
    expect(customGrid('regression', TUNE_DEEP_FIT_ROWS, { epochs: [5] }).rule.hidden).toEqual([[50, 50]]);
    expect(customGrid('regression', TUNE_DEEP_FIT_ROWS, { hidden: [[9]] }).rule).not.toHaveProperty('hidden_rule');
    const args = [
      '--data',
      'data/diabetes.csv',
      '--target',
      'target',
      '--name',
      'g',
      '--tune',
      '--tune-epochs',
      '2',
      '--mc-samples',
      '10',
      '--threads',
      '0',
      '--out',
      mkdtempSync(join(tmpdir(), 'tune-g-')),
    ];
    const candidates = async (extra: string[]): Promise<string | undefined> => {
      stderr = '';
      expect(await run([...args, ...extra])).toBe(0);
      return /(\d+) candidates × 1 training lengths/.exec(stderr)?.[1];
    };
    expect(await candidates([])).toBe('4');
    expect(await candidates(['--tune-dropout', '0.1,0.3'])).toBe('4');
    expect(await candidates(['--tune-dropout', '0.1,0.3,0.4'])).toBe('6');
    expect(await candidates(['--hidden', '16'])).toBe('4');
    expect(await candidates(['--tune-hidden', '200/50,50'])).toBe('8');
    expect(await candidates(['--tune-hidden', '8/8,8/4,4,4', '--tune-dropout', '0.1'])).toBe('6');
  });

  it('rejects options that --tune chooses, and tuning options without --tune', async () => {
    const base = ['--data', 'data/diabetes.csv', '--target', 'target', '--name', 'n', '--out', tmpdir()];
    expect(await run([...base, '--tune', '--dropout', '0.1'])).toBe(2);
    expect(stderr).toContain('--dropout is chosen by --tune');
    expect(await run([...base, '--tune-epochs', '10'])).toBe(2);
    expect(stderr).toContain('--tune-epochs needs --tune');
    expect(await run([...base, '--tune-hidden', '50,50'])).toBe(2);
    expect(stderr).toContain('--tune-hidden needs --tune');
    expect(await run([...base, '--tune', '--tune-hidden', '50/0'])).toBe(2);
    expect(stderr).toContain('--tune-hidden 0: expected positive integer widths (≤ 4096)');
    expect(await run([...base, '--tune', '--tune-hidden', '50', '--hidden', '20'])).toBe(2);
    expect(stderr).toContain('give --hidden or --tune-hidden, not both');
    expect(await run([...base, '--noise', 'sometimes'])).toBe(2);
    expect(stderr).toContain('--noise sometimes: expected homoscedastic or heteroscedastic');
  });
});
