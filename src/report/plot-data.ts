/**
 * Tallies the report's plots draw that are not calibration maths (that is src/uncertainty/calibration.ts):
 * histograms, the confusion matrix, the top class of each row (pure).
 */
import { rowUsable } from '../uncertainty/calibration.js';
import { argmaxAt } from '../uncertainty/probabilities.js';

export interface Histogram {
  /** bins + 1 increasing edges; bin b is [edges[b], edges[b+1]) and the last bin also holds its upper edge. */
  edges: number[];
  counts: number[];
}

/**
 * Equal-width histogram of the finite values on [min, max]; values outside are counted in the first or
 * last bin (so no row disappears). Without min/max the range is the values' own (widened when flat).
 */
export function histogram(values: ArrayLike<number>, bins: number, min?: number, max?: number): Histogram {
  if (!(Number.isInteger(bins) && bins >= 1))
    throw new RangeError(`histogram needs a positive integer bin count, got ${bins}`);
  let lo = min ?? Infinity;
  let hi = max ?? -Infinity;
  if (min === undefined || max === undefined) {
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isFinite(v)) continue;
      if (min === undefined) lo = Math.min(lo, v);
      if (max === undefined) hi = Math.max(hi, v);
    }
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
  if (hi <= lo) [lo, hi] = [lo - 0.5 * (Math.abs(lo) || 1), lo + 0.5 * (Math.abs(lo) || 1)];
  const width = (hi - lo) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, b) => (b === bins ? hi : lo + b * width));
  const counts = new Array<number>(bins).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    const b = Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)));
    counts[b]!++;
  }
  return { edges, counts };
}

/** Confusion counts: matrix[true][predicted] over the usable rows (argmax of each row's probabilities). */
export function confusionMatrix(probs: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number[][] {
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const o = i * classes;
    if (!rowUsable(probs, o, classes, labels[i]!)) continue;
    m[labels[i]!]![argmaxAt(probs, o, classes)]!++;
  }
  return m;
}

/** Per usable row: the top-class probability and whether the top class is the true class. */
export function topClass(
  probs: ArrayLike<number>,
  labels: ArrayLike<number>,
  classes: number,
): { index: number[]; confidence: number[]; correct: boolean[] } {
  const index: number[] = [];
  const confidence: number[] = [];
  const correct: boolean[] = [];
  for (let i = 0; i < labels.length; i++) {
    const o = i * classes;
    if (!rowUsable(probs, o, classes, labels[i]!)) continue;
    const pred = argmaxAt(probs, o, classes);
    index.push(i);
    confidence.push(probs[o + pred]!);
    correct.push(pred === labels[i]);
  }
  return { index, confidence, correct };
}
