import { describe, expect, it } from 'vitest';
import { quantile, quantileInPlace, selectInPlace, sortedQuantile } from '../../src/uncertainty/quantiles.js';
import { Rng } from '../../src/util/rng.js';

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

describe('quantileInPlace (selection)', () => {
  it('equals sortedQuantile of the sorted values exactly: random, tied, sorted and reversed inputs of many lengths', () => {
    const rng = new Rng(11);
    const inputs: number[][] = [];
    for (const n of [1, 2, 3, 4, 5, 7, 10, 31, 100, 257]) {
      inputs.push(Array.from({ length: n }, () => rng.normal()));
      inputs.push(Array.from({ length: n }, () => Math.floor(rng.uniform(0, 3)))); // many ties
      inputs.push(Array.from({ length: n }, (_, i) => i));
      inputs.push(Array.from({ length: n }, (_, i) => n - i));
    }
    for (const xs of inputs) {
      const sorted = [...xs].sort((a, b) => a - b);
      for (const q of [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1]) {
        expect(quantileInPlace(Float64Array.from(xs), q)).toBe(sortedQuantile(sorted, q));
      }
      // two quantiles in a row on the same (reordered) buffer, as the statistics ask for them
      const a = Float64Array.from(xs);
      expect([quantileInPlace(a, 0.25), quantileInPlace(a, 0.75)]).toEqual([
        sortedQuantile(sorted, 0.25),
        sortedQuantile(sorted, 0.75),
      ]);
      expect(Array.from(a).sort((x, y) => x - y)).toEqual(sorted);
    }
    expect(quantileInPlace(new Float64Array(0), 0.5)).toBeNaN();
  });

  it('selectInPlace puts the k-th smallest at k with no larger value left of it and no smaller right of it', () => {
    const a = Float64Array.from([5, 1, 4, 1, 5, 9, 2, 6, 5, 3]);
    expect(selectInPlace(a, 3)).toBe(3);
    for (let i = 0; i < 3; i++) expect(a[i]).toBeLessThanOrEqual(3);
    for (let i = 4; i < a.length; i++) expect(a[i]).toBeGreaterThanOrEqual(3);
  });
});
