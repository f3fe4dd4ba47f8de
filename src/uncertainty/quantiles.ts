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

/**
 * The q-quantile (type 7, as sortedQuantile) of a[0 … n), found by selection instead of a sort: a[] is
 * reordered in place (expected O(n); the MC statistics call it per row and output on every request).
 * NaN when n = 0.
 */
export function quantileInPlace(a: Float64Array, q: number, n = a.length): number {
  if (n === 0) return NaN;
  const h = (n - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(h);
  const x = selectInPlace(a, lo, n);
  if (h === lo || lo + 1 >= n) return x;
  // after the selection every value right of lo is ≥ x: the next order statistic is their minimum
  let next = a[lo + 1]!;
  for (let i = lo + 2; i < n; i++) if (a[i]! < next) next = a[i]!;
  return x + (h - lo) * (next - x);
}

/** The k-th smallest (0-based) of a[0 … n), with a[] partitioned around it in place (Hoare's quickselect). */
export function selectInPlace(a: Float64Array, k: number, n = a.length): number {
  let left = 0;
  let right = n - 1;
  while (right > left) {
    // median of three as the pivot keeps sorted and reversed inputs linear
    const mid = (left + right) >>> 1;
    const pivot = median3(a[left]!, a[mid]!, a[right]!);
    let i = left;
    let j = right;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else break;
  }
  return a[k]!;
}

function median3(x: number, y: number, z: number): number {
  return x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
}
