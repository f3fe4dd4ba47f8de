import { describe, expect, it } from 'vitest';
import { Rng, STREAMS, stream } from '../../src/util/rng.js';

describe('named random streams', () => {
  it('keep the offsets the shipped models were trained with', () => {
    expect(stream(9, 'testSplit')).toBe(9 * 7919);
    expect(stream(9, 'validationSplit')).toBe(9 * 7919 + 1);
    expect(stream(9, 'init')).toBe(9 * 7919 + 2);
    expect(stream(9, 'shuffle')).toBe(9 * 7919 + 3);
    expect(stream(9, 'dropout')).toBe(9 * 7919 + 4);
    expect(stream(9, 'calibration')).toBe(9 * 7919 + 5);
    expect(stream(9, 'validationMetrics')).toBe(9 * 7919 + 6);
    expect(stream(9, 'testMetrics')).toBe(9 * 7919 + 7);
    expect(stream(9, 'crossFitFold', 4)).toBe(9 * 7919 + 19);
  });

  it('one run draws its splits, weights, minibatches and masks from different streams', () => {
    const oneRun = ['testSplit', 'validationSplit', 'init', 'shuffle', 'dropout', 'calibration'] as const;
    const seeds = [...oneRun.map((n) => stream(5, n)), ...[0, 1, 2, 3, 4].map((k) => stream(5, 'crossFitFold', k))];
    expect(new Set(seeds).size).toBe(seeds.length);
    // the folds stay clear of every named offset
    expect(STREAMS.crossFitFold).toBeGreaterThan(Math.max(...Object.values(STREAMS).filter((v) => v < 15)));
    const first = (seed: number): number => new Rng(seed).nextU32();
    expect(first(stream(5, 'init'))).not.toBe(first(stream(5, 'shuffle')));
  });
});
