import { describe, expect, it } from 'vitest';
import { quantile, sortedQuantile } from '../../src/uncertainty/quantiles.js';

describe('sortedQuantile (type 7, numpy.quantile default)', () => {
  it('interpolates between order statistics: numpy.quantile([1, 2, 3, 4], q)', () => {
    const xs = [1, 2, 3, 4];
    expect([0, 0.25, 0.5, 0.75, 1].map((q) => sortedQuantile(xs, q))).toEqual([1, 1.75, 2.5, 3.25, 4]);
    expect(sortedQuantile([10, 20, 40], 0.9)).toBeCloseTo(36, 12);
  });

  it('clamps q to [0, 1], takes a window of a longer array, is NaN on none', () => {
    expect(sortedQuantile([1, 2], -1)).toBe(1);
    expect(sortedQuantile([1, 2], 2)).toBe(2);
    expect(sortedQuantile([99, 1, 2, 3, 99], 0.5, 3, 1)).toBe(2);
    expect(sortedQuantile([5], 0.3)).toBe(5);
    expect(sortedQuantile([], 0.5)).toBeNaN();
  });
});

describe('quantile', () => {
  it('sorts, and ignores non-finite values', () => {
    expect(quantile([4, Number.NaN, 1, 3, Infinity, 2], 0.25)).toBe(1.75);
    expect(quantile([Number.NaN], 0.5)).toBeNaN();
  });
});
