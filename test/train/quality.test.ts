import { describe, expect, it } from 'vitest';
import { readCsvFile, splitRows, toDataset } from '../../src/train/data.js';
import type { ClassificationMetrics, RegressionMetrics } from '../../src/train/card-metrics.js';
import { DEFAULT_TRAIN_OPTIONS, train } from '../../src/train/train.js';

describe('model quality on real data (held-out test split)', () => {
  it('seed network on diabetes: test R² ≥ 0.4 and 90% interval coverage in [0.80, 0.98]', () => {
    const all = toDataset(readCsvFile('data/diabetes.csv').table, { target: 'target' });
    for (const seed of [0, 1]) {
      const [data, test] = splitRows(all, 0.2, 1000 + seed, 'test split');
      const m = train(data, { ...DEFAULT_TRAIN_OPTIONS, seed }, test);
      const t = m.metrics.test as RegressionMetrics;
      expect(t.r2).toBeGreaterThanOrEqual(0.4);
      expect(t.coverage_90).toBeGreaterThanOrEqual(0.8);
      expect(t.coverage_90).toBeLessThanOrEqual(0.98);
      // the MC spread alone is far from an honest interval: calibration is what makes it one
      expect(t.coverage_90_epistemic_only).toBeLessThan(0.7);
      expect(m.aleatoricStd).toBeGreaterThan(20);
    }
  });
  it('wine 13→64→64→3, dropout 0.5: test accuracy ≥ 0.9', () => {
    const all = toDataset(readCsvFile('data/wine.csv').table, { target: 'class' });
    const [data, test] = splitRows(all, 0.2, 7, 'test split');
    const m = train(data, { ...DEFAULT_TRAIN_OPTIONS, hidden: [64, 64], dropout: [0.5], epochs: 200 }, test);
    const t = m.metrics.test as ClassificationMetrics;
    expect(t.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(t.mc_accuracy).toBeGreaterThanOrEqual(0.9);
    expect(t.ece).toBeLessThan(0.2);
  });
});
