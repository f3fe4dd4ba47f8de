import { describe, expect, it } from 'vitest';
import {
  renderReport,
  type ClassificationRows,
  type RegressionRows,
  type ReportInput,
} from '../../src/report/report.js';
import { Rng } from '../../src/util/rng.js';
import { axisLabels, checkPage, figure, figureIds } from './page.js';
import { byAttr, elements, textOf, type XmlElement } from './xml.js';

const HOSTILE = `<script>alert("x")</script> & 'y' ]]> \u0000`;

function regressionRows(n: number, rng: Rng, heteroscedastic = false): RegressionRows {
  const y: number[] = [];
  const mean: number[] = [];
  const epistemicStd: number[] = [];
  const aleatoric: number[] = [];
  for (let i = 0; i < n; i++) {
    const m = rng.uniform(50, 300);
    const e = rng.uniform(5, 25);
    const a = heteroscedastic ? rng.uniform(20, 80) : 55;
    mean.push(m);
    epistemicStd.push(e);
    aleatoric.push(a);
    y.push(m + Math.hypot(e, a) * rng.normal());
  }
  return { y, mean, epistemicStd, aleatoricStd: heteroscedastic ? aleatoric : 55 };
}

function classificationRows(n: number, k: number, rng: Rng, calibrated: boolean): ClassificationRows {
  const labels: number[] = [];
  const probs: number[] = [];
  const probsCalibrated: number[] = [];
  const mutualInformation: number[] = [];
  for (let i = 0; i < n; i++) {
    const label = rng.int(k);
    labels.push(label);
    const logits = Array.from({ length: k }, (_, j) => (j === label ? 2.5 : 0) + 1.5 * rng.normal());
    for (const t of [1, 1.7]) {
      const e = logits.map((v) => Math.exp(v / t));
      const s = e.reduce((a, b) => a + b);
      (t === 1 ? probs : probsCalibrated).push(...e.map((v) => v / s));
    }
    mutualInformation.push(rng.uniform(0, 0.3) ** 2);
  }
  return { labels, probs, ...(calibrated ? { probsCalibrated } : {}), mutualInformation };
}

const history = Array.from({ length: 80 }, (_, i) => ({
  epoch: i + 1,
  trainLoss: 1 / (1 + i / 10) + 0.3,
  valLoss: 1 / (1 + i / 12) + 0.35,
}));

function regressionInput(opts: { test?: boolean; heteroscedastic?: boolean; tuning?: boolean } = {}): ReportInput {
  const rng = new Rng(11);
  return {
    name: 'diabetes',
    task: 'regression',
    command: 'npm run train -- --data data/diabetes.csv --target target --name diabetes',
    card: {
      name: 'diabetes',
      task: 'regression',
      target: 'target',
      features: ['age', 'bmi'],
      metrics: {
        validation: { rmse: 57.4, coverage_90: 0.915, rows: 71 },
        ...(opts.test !== false ? { test: { rmse: 50.9, coverage_90: 0.943, rows: 88 } } : {}),
      },
      training: { hidden: [50], dropout: [0.3], lr: 0.001, loss: 'MSE on the standardised target' },
      created_at: '2026-11-27T11:30:29.172Z',
    },
    history,
    bestEpoch: 40,
    ...(opts.tuning
      ? {
          tuning: {
            metric: 'validation NLL',
            candidates: [
              { settings: { hidden: [50], dropout: 0.1, lr: 0.001 }, score: 5.49 },
              { settings: { hidden: [50], dropout: 0.3, lr: 0.001 }, score: 5.468 },
              { settings: { hidden: [100], dropout: 0.3, lr: 0.001 }, score: 5.483 },
            ],
            chosen: 1,
          },
        }
      : {}),
    regression: {
      validation: regressionRows(71, rng, opts.heteroscedastic),
      ...(opts.test !== false ? { test: regressionRows(88, rng, opts.heteroscedastic) } : {}),
    },
  };
}

function classificationInput(opts: { temperature?: boolean; test?: boolean } = {}): ReportInput {
  const rng = new Rng(12);
  const calibrated = opts.temperature !== false;
  return {
    name: 'wine',
    task: 'classification',
    command: 'npm run train -- --data data/wine.csv --target class --name wine',
    card: {
      name: 'wine',
      task: 'classification',
      target: 'class',
      labels: ['class_0', 'class_1', 'class_2'],
      metrics: { validation: { accuracy: 0.9, ece: 0.05 } },
    },
    history,
    bestEpoch: 80,
    classification: {
      labels: ['class_0', 'class_1', 'class_2'],
      ...(calibrated ? { temperature: 1.7 } : {}),
      validation: classificationRows(28, 3, rng, calibrated),
      ...(opts.test !== false ? { test: classificationRows(120, 3, rng, calibrated) } : {}),
    },
  };
}

describe('renderReport: regression', () => {
  it('has every required plot with labelled axes', () => {
    const html = renderReport(regressionInput({ tuning: true }));
    const root = checkPage(html);
    expect(figureIds(root)).toEqual([
      'fig-loss',
      'fig-tuning',
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
    expect(axisLabels(figure(root, 'tuning'))).toEqual(['validation NLL (lower is better)']);
    // the best epoch is marked, the calibration plot has validation and test curves
    expect(textOf(figure(root, 'loss'))).toContain('best epoch 40');
    const calibration = textOf(figure(root, 'calibration'));
    expect(calibration).toContain('validation (71 rows)');
    expect(calibration).toContain('test (88 rows)');
    expect(textOf(figure(root, 'std-split'))).toContain('aleatoric (constant)');
    // the tuning table lists every candidate, the chosen one marked
    const chosen = elements(root).filter((e) => e.name === 'tr' && e.attrs.class === 'chosen');
    expect(chosen.map(textOf)).toEqual(['2 (chosen)500.35.468']);
    expect(elements(byAttr(root, 'id', 'tuning-table')[0]!).filter((e) => e.name === 'tr')).toHaveLength(4);
    expect(textOf(figure(root, 'tuning'))).toContain('Same for every candidate: lr 0.001.');
    // best first in the chart and the table
    const bodyRows = elements(figure(root, 'tuning')).filter(
      (e) => e.name === 'tr' && e.children.some((c) => typeof c !== 'string' && c.name === 'td'),
    );
    expect(bodyRows.map((r) => textOf(r.children[0] as XmlElement))).toEqual(['2 (chosen)', '3', '1']);
    // card tables and command
    expect(textOf(byAttr(root, 'id', 'metrics-table')[0]!)).toContain('coverage_90');
    expect(textOf(byAttr(root, 'id', 'settings-table')[0]!)).toContain('MSE on the standardised target');
    expect(textOf(byAttr(root, 'id', 'command')[0]!)).toContain('npm run train -- --data data/diabetes.csv');
  });

  it('draws every calibration level for both splits and a PIT bar per bin', () => {
    const root = checkPage(renderReport(regressionInput()));
    const cal = figure(root, 'calibration');
    // 20 levels × 2 splits, + 2 legend points? (legend uses lines and a box here)
    expect(elements(cal).filter((e) => e.name === 'circle')).toHaveLength(40);
    const pitBars = elements(figure(root, 'pit')).filter(
      (e) => e.name === 'rect' && e.attrs['clip-path'] === undefined && e.attrs.height !== undefined,
    );
    // clip rect + uniform band + 9 bins (√88 ≈ 9) + legend box
    expect(pitBars).toHaveLength(1 + 1 + 9 + 1);
    const scatter = elements(figure(root, 'error-std')).filter((e) => e.name === 'circle');
    expect(scatter.length).toBeGreaterThanOrEqual(88);
  });

  it('adds the conformal intervals to the calibration curve, and the glance reports the default interval', () => {
    const input = regressionInput();
    const v = input.regression!.validation;
    // scores of the validation rows: the conformal curve covers at least the level there
    const std = Array.from(v.epistemicStd, (e) => Math.hypot(e, 55));
    const scores = Array.from(v.y, (y, i) => Math.abs(y - v.mean[i]!) / std[i]!).sort((a, b) => a - b);
    const gaussian = checkPage(renderReport(input));
    input.regression = { ...input.regression!, conformalScores: scores, intervalMethod: 'conformal' };
    const root = checkPage(renderReport(input));
    const cal = figure(root, 'calibration');
    // 20 levels × 2 splits, Gaussian (filled) and conformal (open)
    expect(elements(cal).filter((e) => e.name === 'circle')).toHaveLength(80);
    expect(
      elements(cal).filter((e) => e.name === 'g' && e.attrs.fill === 'none' && e.attrs.stroke !== undefined),
    ).toHaveLength(2);
    expect(textOf(cal)).toContain('validation, conformal interval');
    expect(textOf(cal)).toContain('test, conformal interval');
    expect(textOf(cal)).toMatch(/the 71 calibration scores .*; at 90%: validation \d+\.\d%, test \d+\.\d%\./);
    const glance = textOf(byAttr(root, 'id', 'glance')[0]!);
    expect(glance).toContain('of validation targets inside their conformal 90% interval (71 rows)');
    expect(textOf(byAttr(gaussian, 'id', 'glance')[0]!)).toContain(
      'of validation targets inside their 90% interval (71 rows)',
    );
    // the validation rows' own scores: at least 90% inside (⌈72·0.9⌉ = 65 of 71 = 91.5%)
    expect(glance).toMatch(/^At a glance91\.5%of validation targets/);
    // scores given but Gaussian the default: the curve is drawn, the glance stays Gaussian
    input.regression.intervalMethod = 'gaussian';
    const g2 = checkPage(renderReport(input));
    expect(elements(figure(g2, 'calibration')).filter((e) => e.name === 'circle')).toHaveLength(80);
    expect(textOf(byAttr(g2, 'id', 'glance')[0]!)).toBe(textOf(byAttr(gaussian, 'id', 'glance')[0]!));
  });

  it('shows per-row aleatoric std for a heteroscedastic model', () => {
    const root = checkPage(renderReport(regressionInput({ heteroscedastic: true })));
    expect(textOf(figure(root, 'std-split'))).toContain('aleatoric (per row)');
  });

  it('falls back to validation rows (and says so) without test rows', () => {
    const root = checkPage(renderReport(regressionInput({ test: false })));
    expect(figureIds(root)).toEqual([
      'fig-loss',
      'fig-calibration',
      'fig-pit',
      'fig-error-std',
      'fig-predicted-actual',
      'fig-std-split',
    ]);
    expect(axisLabels(figure(root, 'pit'))).toEqual(['PIT = Φ((y − mean) / σ)', 'rows (validation)']);
    expect(textOf(root)).toContain('No test rows');
  });

  it('is deterministic', () => {
    expect(renderReport(regressionInput({ tuning: true }))).toBe(renderReport(regressionInput({ tuning: true })));
  });

  it('keeps every coordinate finite when the data is not', () => {
    const input = regressionInput({ tuning: true, heteroscedastic: true });
    const test = input.regression!.test! as {
      y: number[];
      mean: number[];
      epistemicStd: number[];
      aleatoricStd: number[];
    };
    test.y[0] = NaN;
    test.mean[1] = Infinity;
    test.epistemicStd[2] = -Infinity;
    test.aleatoricStd[3] = NaN;
    test.epistemicStd[4] = 0;
    test.aleatoricStd[4] = 0;
    input.history = [...history, { epoch: 81, trainLoss: NaN, valLoss: Infinity }];
    input.tuning!.candidates.push({ settings: { hidden: [8], dropout: 0.9 }, score: NaN });
    checkPage(renderReport(input));
  });

  it('thins large splits and stays a reasonable size', () => {
    const rng = new Rng(13);
    const input = regressionInput();
    input.regression!.test = regressionRows(5000, rng);
    input.history = Array.from({ length: 3000 }, (_, i) => ({
      epoch: i + 1,
      trainLoss: 1 / (1 + i),
      valLoss: 1 / (1 + i) + 0.01,
    }));
    const html = renderReport(input);
    const root = checkPage(html);
    expect(elements(figure(root, 'error-std')).filter((e) => e.name === 'circle').length).toBeLessThanOrEqual(
      800 + 8 + 1,
    );
    expect(elements(figure(root, 'predicted-actual')).filter((e) => e.name === 'circle').length).toBeLessThanOrEqual(
      400 + 2,
    );
    expect(textOf(figure(root, 'predicted-actual'))).toContain('(400 of 5000 drawn)');
    expect(html.length).toBeLessThan(600_000);
  });

  it('renders a model card the trainer writes (extra fields listed, long values kept)', () => {
    const input = regressionInput();
    input.card = {
      ...input.card,
      aleatoric_std: 55.82,
      data: { file: 'diabetes.csv', sha256: 'ab'.repeat(32) },
    } as ReportInput['card'];
    const other = textOf(byAttr(checkPage(renderReport(input)), 'id', 'other-table')[0]!);
    expect(other).toContain('aleatoric_std55.82');
    expect(other).toContain(`data.sha256${'ab'.repeat(32)}`);
    expect(other).not.toContain('features');
  });

  it('requires the rows of its task', () => {
    expect(() => renderReport({ ...regressionInput(), regression: undefined })).toThrow(/needs input.regression/);
    expect(() => renderReport({ ...classificationInput(), classification: undefined })).toThrow(
      /needs input.classification/,
    );
  });
});

describe('renderReport: classification', () => {
  it('has every required plot with labelled axes, reliability before and after temperature scaling', () => {
    const root = checkPage(renderReport(classificationInput()));
    expect(figureIds(root)).toEqual([
      'fig-loss',
      'fig-reliability-before',
      'fig-reliability-after',
      'fig-confidence',
      'fig-confusion',
      'fig-mutual-information',
    ]);
    for (const id of ['reliability-before', 'reliability-after']) {
      const [x, y] = axisLabels(figure(root, id));
      expect(x).toMatch(/^confidence \(top-class probability\)/);
      expect(y).toBe('accuracy (test)');
    }
    expect(textOf(figure(root, 'reliability-after'))).toContain('T = 1.7');
    expect(axisLabels(figure(root, 'confidence'))).toEqual(['confidence (top-class probability)', 'rows (test)']);
    expect(axisLabels(figure(root, 'confusion'))).toEqual(['predicted class', 'true class']);
    expect(axisLabels(figure(root, 'mutual-information'))[0]).toMatch(/^mutual information \(nats\)/);
    const mi = textOf(figure(root, 'mutual-information'));
    expect(mi).toMatch(/correct \(\d+\)/);
    expect(mi).toMatch(/wrong \(\d+\)/);
    expect(axisLabels(figure(root, 'loss'))).toEqual(['epoch', 'loss']);
  });

  it('the confusion matrix counts every test row', () => {
    const root = checkPage(renderReport(classificationInput()));
    const cells = elements(figure(root, 'confusion')).filter((e) => e.name === 'rect');
    expect(cells).toHaveLength(9);
    const counts = elements(figure(root, 'confusion'))
      .filter(
        (e) =>
          e.name === 'text' &&
          /^\d+$/.test(textOf(e)) &&
          e.attrs['text-anchor'] === 'middle' &&
          e.attrs.fill !== '#444',
      )
      .map((e) => Number(textOf(e)));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(120);
  });

  it('has one reliability diagram without temperature scaling', () => {
    const root = checkPage(renderReport(classificationInput({ temperature: false })));
    expect(figureIds(root)).toEqual([
      'fig-loss',
      'fig-reliability-only',
      'fig-confidence',
      'fig-confusion',
      'fig-mutual-information',
    ]);
  });

  it('uses validation rows without test rows', () => {
    const root = checkPage(renderReport(classificationInput({ test: false })));
    expect(axisLabels(figure(root, 'confidence'))).toEqual(['confidence (top-class probability)', 'rows (validation)']);
  });

  it('keeps every coordinate finite when probabilities or MI are not', () => {
    const input = classificationInput();
    const t = input.classification!.test! as {
      probs: number[];
      probsCalibrated: number[];
      mutualInformation: number[];
      labels: number[];
    };
    t.probs[0] = NaN;
    t.probsCalibrated[4] = Infinity;
    t.mutualInformation[2] = NaN;
    t.labels[3] = 7;
    checkPage(renderReport(input));
    // all MI zero (a deterministic model) and all rows right
    const flat = classificationInput();
    const ft = flat.classification!.test! as {
      probs: number[];
      probsCalibrated: number[];
      mutualInformation: number[];
      labels: number[];
    };
    ft.mutualInformation.fill(0);
    ft.labels.forEach((_, i) => {
      ft.labels[i] = [0, 1, 2].reduce(
        (b, j) => (ft.probsCalibrated[i * 3 + j]! > ft.probsCalibrated[i * 3 + b]! ? j : b),
        0,
      );
    });
    checkPage(renderReport(flat));
  });
});

describe('renderReport: hostile strings', () => {
  it('escapes names, features, labels, settings and the command', () => {
    const input = classificationInput();
    input.name = HOSTILE;
    input.command = `npm run train -- --name '${HOSTILE}'`;
    input.card = {
      ...input.card,
      features: [HOSTILE, 'ok'],
      target: HOSTILE,
      training: { [HOSTILE]: HOSTILE },
      metrics: { [HOSTILE]: { [HOSTILE]: 1 } },
    } as ReportInput['card'];
    input.classification = { ...input.classification!, labels: [HOSTILE, 'b', '"c"'] };
    input.tuning = { metric: HOSTILE, candidates: [{ settings: { [HOSTILE]: HOSTILE }, score: 1 }], chosen: 0 };
    const html = renderReport(input);
    const root = checkPage(html);
    expect(elements(root).some((e) => e.name === 'script')).toBe(false);
    // the text survives (U+0000 becomes U+FFFD), only escaped
    const visible = HOSTILE.replace('\u0000', '\ufffd');
    expect(textOf(elements(root).find((e) => e.name === 'title')!)).toBe(`${visible} — model report`);
    expect(textOf(byAttr(root, 'id', 'features')[0]!)).toContain(visible);
    expect(textOf(figure(root, 'confusion'))).toContain('<script>alert("…');
    expect(textOf(byAttr(root, 'id', 'command')[0]!)).toContain(visible);
    expect(textOf(byAttr(root, 'id', 'settings-table')[0]!)).toContain(visible);
  });
});
