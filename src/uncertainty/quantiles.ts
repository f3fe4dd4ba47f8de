/** Empirical quantiles, linear interpolation between order statistics (type 7, numpy's default). */

/**
 * The q-quantile of `n` values sorted ascending, starting at `offset`: x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]),
 * h = (n − 1)·q, q clamped to [0, 1]. Allocation-free (the MC statistics call it per row). NaN when n = 0.
 */
export function sortedQuantile(sorted: ArrayLike<number>, q: number, n = sorted.length, offset = 0): number {
  if (n === 0) return NaN;
  const h = (n - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  const a = sorted[offset + lo]!;
  return a + (h - lo) * (sorted[offset + hi]! - a);
}

/** The q-quantile (type 7) of the finite values, in any order; NaN when none is finite. */
export function quantile(values: ArrayLike<number>, q: number): number {
  const xs = Array.from(values)
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  return sortedQuantile(xs, q);
}
