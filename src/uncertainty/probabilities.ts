/** Class probabilities: softmax with a temperature, entropy and the top class. */

/**
 * Softmax of out[o..o+K) / temperature into p; for a model that gives probabilities, softmax(log p /
 * temperature), i.e. p^(1/temperature) normalised (negative values count as 0; all 0 → uniform).
 */
export function toProbabilities(
  out: ArrayLike<number>,
  o: number,
  K: number,
  logits: boolean,
  p: Float64Array,
  temperature = 1,
): void {
  if (logits) softmaxInto(out, o, K, p, 1 / temperature);
  else if (temperature === 1) normaliseInto(out, o, K, p);
  else sharpenInto(out, o, K, p, 1 / temperature);
}

function softmaxInto(out: ArrayLike<number>, o: number, K: number, p: Float64Array, inv: number): void {
  let max = -Infinity;
  for (let k = 0; k < K; k++) max = Math.max(max, out[o + k]!);
  let s = 0;
  for (let k = 0; k < K; k++) {
    p[k] = Math.exp((out[o + k]! - max) * inv);
    s += p[k]!;
  }
  for (let k = 0; k < K; k++) p[k]! /= s;
}

function normaliseInto(out: ArrayLike<number>, o: number, K: number, p: Float64Array): void {
  let s = 0;
  for (let k = 0; k < K; k++) s += Math.max(0, out[o + k]!);
  for (let k = 0; k < K; k++) p[k] = s > 0 ? Math.max(0, out[o + k]!) / s : 1 / K;
}

function sharpenInto(out: ArrayLike<number>, o: number, K: number, p: Float64Array, inv: number): void {
  let max = 0;
  for (let k = 0; k < K; k++) max = Math.max(max, out[o + k]!);
  if (!(max > 0)) {
    p.fill(1 / K, 0, K);
    return;
  }
  // (p/max)^(1/T): the largest is 1, so no temperature can overflow or underflow them all
  let s = 0;
  for (let k = 0; k < K; k++) {
    const v = Math.max(0, out[o + k]!) / max;
    p[k] = v > 0 ? v ** inv : 0;
    s += p[k]!;
  }
  for (let k = 0; k < K; k++) p[k]! /= s;
}

/** Shannon entropy (nats) of the probability vector p[offset..offset+k). */
export function entropy(p: ArrayLike<number>, offset = 0, k = p.length): number {
  let h = 0;
  for (let i = 0; i < k; i++) {
    const v = p[offset + i]!;
    if (v > 0) h -= v * Math.log(v);
  }
  return h;
}

/** Index (0…k−1) of the largest of the k entries from `offset`; the first one on ties. */
export function argmaxAt(p: ArrayLike<number>, offset: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if (p[offset + j]! > p[offset + best]!) best = j;
  return best;
}
