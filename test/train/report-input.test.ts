/**
 * The report page of real (tiny, seeded) trained models: the rows it plots are the ones behind the
 * card's metrics (same networks, same Monte Carlo masks), and the page has every figure with its axes
 * and finite coordinates. No browser.
 */
import { describe, expect, it } from 'vitest';
import {
  renderReport,
  type ClassificationRows,
  type RegressionRows,
  type ReportInput,
} from '../../src/report/report.js';
import { buildCard, type ModelCard } from '../../src/train/card.js';
import { type Dataset, readCsvFile, splitRows, toDataset } from '../../src/train/data.js';
import { OPSET } from '../../src/train/export-onnx.js';
import {
  classificationMetrics,
  type ClassificationMetrics,
  regressionMetrics,
  type RegressionMetrics,
} from '../../src/train/card-metrics.js';
import {
  buildReportInput,
  epistemicScale,
  regressionRows,
  reportCard,
  trainCommand,
} from '../../src/train/report-input.js';
import {
  DEFAULT_TRAIN_OPTIONS,
  type TrainedModel,
  type TrainOptions,
  train,
  validationSplit,
} from '../../src/train/train.js';
import { tune } from '../../src/train/tune.js';
import { axisLabels, checkPage, figure, figureIds } from '../report/page.js';
import { byAttr, elements, textOf } from '../report/xml.js';
import { stream } from '../../src/util/rng.js';

function dataset(file: string, target: string): Dataset {
  return toDataset(readCsvFile(file).table, { target });
}

function card(
  name: string,
  m: TrainedModel,
  opts: TrainOptions,
  data: Dataset,
  tuning?: Awaited<ReturnType<typeof tune>>,
): ModelCard {
  return buildCard(
    name,
    m,
    opts,
    { file: `data/${name}.csv`, sha256: '0'.repeat(64), rows: data.n },
    undefined,
    'test-split 0.2 of data (seeded)',
    OPSET,
    { intervalMethod: 'conformal', tuning },
  );
}

/** The trainer's regression metrics recomputed from the report's rows (served mean for the eval prediction too). */
function metricsOf(r: RegressionRows, scores: ArrayLike<number>): RegressionMetrics {
  const a = r.aleatoricStd;
  return regressionMetrics(
    r.y,
    r.mean,
    r.mean,
    r.epistemicStd,
    typeof a === 'number' ? a * a : Array.from(a, (v) => v * v),
    scores,
  );
}

const REGRESSION_KEYS = [
  'rmse_mc',
  'nll',
  'crps',
  'coverage_50',
  'coverage_90',
  'coverage_95',
  'coverage_90_epistemic_only',
  'conformal_coverage_90',
  'mean_std',
  'rows',
] as const;

function expectRegressionAgrees(
  rows: RegressionRows,
  metrics: RegressionMetrics | ClassificationMetrics | undefined,
  scores: ArrayLike<number>,
): void {
  const m = metricsOf(rows, scores) as unknown as Record<string, number>;
  const want = metrics as unknown as Record<string, number>;
  for (const k of REGRESSION_KEYS) expect(m[k], k).toBeCloseTo(want[k]!, 10);
}

function expectClassificationAgrees(
  rows: ClassificationRows,
  k: number,
  metrics: RegressionMetrics | ClassificationMetrics | undefined,
): void {
  const served = rows.probsCalibrated ?? rows.probs;
  const m = classificationMetrics(rows.labels, served, served, k) as unknown as Record<string, number>;
  const want = metrics as unknown as Record<string, number>;
  for (const key of ['nll', 'ece', 'brier', 'mc_accuracy', 'rows']) expect(m[key], key).toBeCloseTo(want[key]!, 12);
}

/** No NaN or ±Infinity anywhere in the rows the page plots. */
function expectFinite(input: ReportInput): void {
  const splits = [
    input.regression?.validation,
    input.regression?.test,
    input.classification?.validation,
    input.classification?.test,
  ].filter((s) => s !== undefined);
  for (const s of splits) {
    for (const [k, v] of Object.entries(s))
      if (typeof v !== 'number') expect(Array.from(v as ArrayLike<number>).every(Number.isFinite), k).toBe(true);
  }
}

describe('report of a trained regression model', () => {
  const full = dataset('data/diabetes.csv', 'target');
  const [data, test] = splitRows(full, 0.2, 0, 'test split');
  const opts: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, hidden: [16], epochs: 25, mcSamples: 30, seed: 3 };
  const model = train(data, opts, test);
  const c = card('diabetes', model, opts, full);
  const input = buildReportInput({
    command: trainCommand(['--data', 'data/diabetes.csv', '--name', 'diabetes']),
    card: c,
    model,
    validation: { model, data: validationSplit(data, opts)[1] },
    test,
    opts,
  });

  it('plots the rows behind card.metrics: the same network and masks on validation and test rows', () => {
    expect(input.regression!.validation.y).toHaveLength(model.valRows);
    expectRegressionAgrees(input.regression!.validation, c.metrics.validation, c.conformal!.scores);
    expectRegressionAgrees(input.regression!.test!, c.metrics.test, c.conformal!.scores);
    expect(input.regression!.intervalMethod).toBe('conformal');
    expect(Array.from(input.regression!.conformalScores!)).toEqual(c.conformal!.scores);
    expect(input.regression!.validation.aleatoricStd).toBe(model.aleatoricStd);
    expectFinite(input);
  });

  it('has every figure with its axis labels and finite coordinates', () => {
    const html = renderReport(input);
    const root = checkPage(html);
    expect(figureIds(root)).toEqual([
      'fig-loss',
      'fig-calibration',
      'fig-pit',
      'fig-error-std',
      'fig-predicted-actual',
      'fig-std-split',
    ]);
    expect(axisLabels(figure(root, 'loss'))).toEqual(['epoch', 'loss (MSE on the standardised target)']);
    expect(axisLabels(figure(root, 'calibration'))).toEqual([
      'nominal coverage of the central interval',
      'observed coverage',
    ]);
    expect(axisLabels(figure(root, 'pit'))).toEqual(['PIT = Φ((y − mean) / σ)', 'rows (test)']);
    expect(axisLabels(figure(root, 'error-std'))).toEqual([
      'predicted std σ (target units)',
      '|y − mean| (target units)',
    ]);
    expect(axisLabels(figure(root, 'predicted-actual'))).toEqual(['actual target', 'predicted target (MC mean)']);
    expect(axisLabels(figure(root, 'std-split'))).toEqual([
      'test rows, ordered by total σ (percentile)',
      'std (target units)',
    ]);
    // the best epoch of the run is marked; both splits and the conformal curves are drawn
    expect(textOf(figure(root, 'loss'))).toContain(`best epoch ${model.bestEpoch}`);
    expect(textOf(figure(root, 'calibration'))).toContain(`test (${test.n} rows)`);
    expect(textOf(figure(root, 'calibration'))).toContain('test, conformal interval');
    // the glance's 90% coverage is the card's conformal one
    const glance = textOf(byAttr(root, 'id', 'glance')[0]!);
    expect(glance).toContain(
      `${(((c.metrics.test as RegressionMetrics).conformal_coverage_90 ?? NaN) * 100).toFixed(1)}%of test targets inside their conformal 90% interval`,
    );
    expect(textOf(byAttr(root, 'id', 'command')[0]!)).toBe(
      'Commandnpm run train -- --data data/diabetes.csv --name diabetes',
    );
    // the same model gives the same bytes
    expect(
      renderReport(
        buildReportInput({
          command: input.command,
          card: c,
          model,
          validation: { model, data: validationSplit(data, opts)[1] },
          test,
          opts,
        }),
      ),
    ).toBe(html);
  });

  it('lists the card without what the page draws or what does not describe the model', () => {
    const rc = reportCard({ ...c, created_at: '2026-01-01T00:00:00.000Z' }) as Record<string, unknown>;
    expect(rc.created_at).toBeUndefined();
    expect(rc.history).toBeUndefined();
    expect(rc.conformal).toEqual({ score: c.conformal!.score, rows: c.conformal!.rows, source: c.conformal!.source });
    expect(rc.metrics).toEqual(c.metrics);
    const html = renderReport(input);
    expect(html).not.toContain('created_at');
    expect(html).not.toContain('history.');
  });

  it("serves the epistemic std scaled as the server does: the model's epistemicScale, else the card's epistemic_scale", () => {
    const v = validationSplit(data, opts)[1];
    const base = regressionRows(model, c, v, 30, 1);
    // the trainer fits the scale (calibrate.ts) and writes it to the card: the page uses the same value
    const s0 = epistemicScale(model, c);
    expect(s0).toBe(model.epistemicScale);
    expect(s0).toBe(c.epistemic_scale);
    const scaled = regressionRows({ ...model, epistemicScale: 2 } as TrainedModel, c, v, 30, 1);
    const byCard = regressionRows(
      { ...model, epistemicScale: undefined } as unknown as TrainedModel,
      { ...c, epistemic_scale: 0.5 } as ModelCard,
      v,
      30,
      1,
    );
    expect(Array.from(scaled.mean)).toEqual(Array.from(base.mean));
    Array.from(base.epistemicStd).forEach((e, i) => {
      expect(scaled.epistemicStd[i]).toBeCloseTo((2 / s0) * e, 10);
      expect(byCard.epistemicStd[i]).toBeCloseTo((0.5 / s0) * e, 10);
    });
    expect(Math.max(...Array.from(base.epistemicStd))).toBeGreaterThan(0);
  });
});

describe('report of a trained heteroscedastic regression model', () => {
  it('gives each row its predicted aleatoric std (with the floor) and agrees with card.metrics', () => {
    const full = dataset('data/diabetes.csv', 'target');
    const [data, test] = splitRows(full, 0.2, 0, 'test split');
    const opts: TrainOptions = {
      ...DEFAULT_TRAIN_OPTIONS,
      hidden: [16],
      epochs: 15,
      mcSamples: 20,
      seed: 4,
      noise: 'heteroscedastic',
    };
    const model = train(data, opts, test);
    const c = card('diabetes', model, opts, full);
    const input = buildReportInput({
      command: 'x',
      card: c,
      model,
      validation: { model, data: validationSplit(data, opts)[1] },
      test,
      opts,
    });
    const a = input.regression!.test!.aleatoricStd;
    expect(typeof a).not.toBe('number');
    expect(new Set(Array.from(a as ArrayLike<number>)).size).toBeGreaterThan(10);
    expectRegressionAgrees(input.regression!.test!, c.metrics.test, c.conformal!.scores);
    const root = checkPage(renderReport(input));
    expect(textOf(figure(root, 'std-split'))).toContain('aleatoric (per row)');
  });
});

describe('report of a trained classifier', () => {
  const full = dataset('data/wine.csv', 'class');
  const [data, test] = splitRows(full, 0.2, 0, 'test split');
  const opts: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, hidden: [16], epochs: 30, mcSamples: 30, seed: 5 };
  const model = train(data, opts, test);
  const c = card('wine', model, opts, full);
  const input = buildReportInput({
    command: 'npm run train -- --data data/wine.csv',
    card: c,
    model,
    validation: { model, data: validationSplit(data, opts)[1] },
    test,
    opts,
  });

  it('plots the served probabilities behind card.metrics, before and after temperature scaling', () => {
    expect(model.temperature).not.toBe(1);
    const cls = input.classification!;
    expect(cls.temperature).toBe(model.temperature);
    expectClassificationAgrees(cls.validation, 3, c.metrics.validation);
    expectClassificationAgrees(cls.test!, 3, c.metrics.test);
    // before: the probabilities at T = 1 are another set, and each row of both sums to 1
    expect(Array.from(cls.test!.probs)).not.toEqual(Array.from(cls.test!.probsCalibrated!));
    for (const p of [cls.test!.probs, cls.test!.probsCalibrated!]) {
      for (let i = 0; i < test.n; i++) expect(p[3 * i]! + p[3 * i + 1]! + p[3 * i + 2]!).toBeCloseTo(1, 12);
    }
    // mutual information: non-negative, at most the entropy of the served probabilities (ln 3)
    expect(Array.from(cls.test!.mutualInformation).every((v) => v >= 0 && v <= Math.log(3))).toBe(true);
    expect(Math.max(...Array.from(cls.test!.mutualInformation))).toBeGreaterThan(0);
    expectFinite(input);
  });

  it('has every figure with its axis labels and finite coordinates', () => {
    const root = checkPage(renderReport(input));
    expect(figureIds(root)).toEqual([
      'fig-loss',
      'fig-reliability-before',
      'fig-reliability-after',
      'fig-confidence',
      'fig-confusion',
      'fig-mutual-information',
    ]);
    expect(axisLabels(figure(root, 'loss'))).toEqual(['epoch', 'loss (softmax cross-entropy)']);
    for (const id of ['reliability-before', 'reliability-after']) {
      const [x, y] = axisLabels(figure(root, id));
      expect(x).toMatch(/^confidence \(top-class probability\)/);
      expect(y).toBe('accuracy (test)');
    }
    expect(axisLabels(figure(root, 'confidence'))).toEqual(['confidence (top-class probability)', 'rows (test)']);
    expect(axisLabels(figure(root, 'confusion'))).toEqual(['predicted class', 'true class']);
    expect(axisLabels(figure(root, 'mutual-information'))[0]).toMatch(/^mutual information \(nats\)/);
    // the confusion matrix counts every test row
    const counts = elements(figure(root, 'confusion'))
      .filter(
        (e) =>
          e.name === 'text' &&
          /^\d+$/.test(textOf(e)) &&
          e.attrs['text-anchor'] === 'middle' &&
          e.attrs.fill !== '#444',
      )
      .map((e) => Number(textOf(e)));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(test.n);
    expect(textOf(figure(root, 'reliability-after'))).toContain('T = ');
  });
});

describe('report of a tuned model', () => {
  it("shows every candidate and the choice; the validation rows are the winner's (the refit trained on them)", async () => {
    const full = dataset('data/diabetes.csv', 'target');
    const [data, test] = splitRows(full, 0.2, 0, 'test split');
    const base: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, hidden: [8], batchSize: 64, mcSamples: 20, seed: 6 };
    const fitRows = Math.round(data.n * 0.8);
    const grid = {
      candidates: [0.05, 0.2].map((dropout) => ({
        dropout,
        inputDropout: 0,
        weightDecay: 1 / fitRows,
        noise: 'homoscedastic' as const,
      })),
      epochs: [10, 20],
      rule: { test: true },
    };
    const tuning = await tune(
      data,
      base,
      { threads: 0, grid, calibration: 'validation', calibrationFraction: 0.2 },
      test,
    );
    const c = card('diabetes', tuning.model, tuning.options, full, tuning);
    const input = buildReportInput({
      command: 'x',
      card: c,
      model: tuning.model,
      validation: tuning.validation,
      test,
      opts: tuning.options,
    });
    expectRegressionAgrees(input.regression!.validation, c.metrics.validation, c.conformal!.scores);
    expectRegressionAgrees(input.regression!.test!, c.metrics.test, c.conformal!.scores);
    // the refit model on the validation rows gives other numbers (it trained on them)
    const refitRows = regressionRows(tuning.model, c, tuning.validation.data, 20, stream(6, 'validationMetrics'));
    expect(metricsOf(refitRows, c.conformal!.scores).rmse_mc).not.toBeCloseTo(
      (c.metrics.validation as RegressionMetrics).rmse_mc,
      6,
    );

    expect(input.tuning!.candidates).toHaveLength(4);
    expect(input.tuning!.chosen).toBe(c.tuning!.chosen);
    expect(input.tuning!.lowerIsBetter).toBe(false);
    expect(input.tuning!.candidates.map((t) => t.score)).toEqual(c.tuning!.candidates.map((t) => t.score));
    // a refit has no validation loss: no best epoch to mark
    expect(input.bestEpoch).toBeUndefined();
    const root = checkPage(renderReport(input));
    expect(figureIds(root)).toEqual([
      'fig-loss',
      'fig-tuning',
      'fig-calibration',
      'fig-pit',
      'fig-error-std',
      'fig-predicted-actual',
      'fig-std-split',
    ]);
    expect(axisLabels(figure(root, 'tuning'))).toEqual(['validation log-likelihood (nats) (higher is better)']);
    expect(elements(byAttr(root, 'id', 'tuning-table')[0]!).filter((e) => e.name === 'tr')).toHaveLength(5);
    expect(elements(root).filter((e) => e.name === 'tr' && e.attrs.class === 'chosen')).toHaveLength(1);
    expect(textOf(figure(root, 'loss'))).not.toContain('best epoch');
    expect(textOf(figure(root, 'loss'))).toContain(
      'No validation loss: the final fit used every training row for the training length the tuning candidates chose',
    );
    expect(textOf(figure(root, 'loss'))).not.toContain('validation (');
    expect(textOf(figure(root, 'loss'))).toContain(`${tuning.options.epochs} epochs run, final train loss`);
    const other = textOf(byAttr(root, 'id', 'other-table')[0]!);
    expect(other).toContain('tuning.candidates4');
    expect(other).not.toContain('threads');
    // --calibration winner: the model is the candidate itself, with no training history of its own
    const noRefit = checkPage(renderReport({ ...input, history: [] }));
    expect(textOf(figure(noRefit, 'loss'))).toContain(
      'No loss curve: the model is the winning tuning candidate itself',
    );
  });
});
