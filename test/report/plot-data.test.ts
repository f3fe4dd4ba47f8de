import { describe, expect, it } from 'vitest';
import { confusionMatrix, histogram, topClass } from '../../src/report/plot-data.js';
import { Rng } from '../../src/util/rng.js';

describe('histogram', () => {
  it('counts values into equal bins with the last bin closed, clamping outliers', () => {
    const h = histogram([0, 0.1, 0.2499, 0.25, 0.5, 0.99, 1, 1.5, -3, NaN, Infinity], 4, 0, 1);
    expect(h.edges).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(h.counts).toEqual([4, 1, 1, 3]);
  });
  it('uses the data range when none is given, widening a flat one', () => {
    const h = histogram([2, 4, 6, 8], 2);
    expect(h.edges).toEqual([2, 5, 8]);
    expect(h.counts).toEqual([2, 2]);
    const flat = histogram([3, 3], 2);
    expect(flat.edges[0]).toBeLessThan(3);
    expect(flat.edges[2]).toBeGreaterThan(3);
    expect(flat.counts.reduce((a, b) => a + b)).toBe(2);
    expect(histogram([], 3).counts).toEqual([0, 0, 0]);
    expect(() => histogram([1], 0)).toThrow(/positive integer bin count/);
  });
  it('keeps every finite value (brute count per bin)', () => {
    const rng = new Rng(5);
    const xs = Array.from({ length: 1000 }, () => rng.normal());
    const h = histogram(xs, 13);
    expect(h.counts.reduce((a, b) => a + b)).toBe(1000);
    for (let b = 0; b < 13; b++) {
      const inBin = xs.filter((v) => v >= h.edges[b]! && (b === 12 ? v <= h.edges[13]! : v < h.edges[b + 1]!)).length;
      expect(Math.abs(h.counts[b]! - inBin)).toBeLessThanOrEqual(1); // a value on an edge may round either way
    }
  });
});

describe('confusionMatrix and topClass', () => {
  it('count argmax against truth (brute count), ties to the first class', () => {
    const rng = new Rng(7);
    const n = 300;
    const k = 3;
    const probs: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < n; i++) {
      const row = [rng.next(), rng.next(), rng.next()];
      probs.push(...row);
      labels.push(rng.int(k));
    }
    const m = confusionMatrix(probs, labels, k);
    for (let t = 0; t < k; t++) {
      for (let p = 0; p < k; p++) {
        let c = 0;
        for (let i = 0; i < n; i++) {
          const row = probs.slice(i * k, i * k + k);
          if (labels[i] === t && row.indexOf(Math.max(...row)) === p) c++;
        }
        expect(m[t]![p]).toBe(c);
      }
    }
    expect(confusionMatrix([0.5, 0.5], [1], 2)).toEqual([
      [0, 0],
      [1, 0],
    ]);
    const top = topClass([0.2, 0.8, 0.6, 0.4, NaN, 1], [1, 1, 0], 2);
    expect(top).toEqual({ index: [0, 1], confidence: [0.8, 0.6], correct: [true, false] });
  });
});
