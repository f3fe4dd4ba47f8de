/**
 * A tensor model's answers in the output's own shape (issue 19), for both codecs: the statistics record
 * holds classification positions as rows with the K classes last (model.ts OutputLayout); clients get
 * them with the class axis where the output has it ([N, K, H, W]) and per-position values without it
 * ([N, H, W]). Pure.
 */
import { type Model, classProbabilities } from '../../model/model.js';
import type { McStats } from '../../uncertainty/record.js';

/** A classification output's dims around its class axis: `outer` (the batch and the axes before), K, `inner`. */
export interface ClassGeometry {
  outer: number;
  classes: number;
  inner: number;
}

const product = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

export function classGeometry(dims: readonly number[], classAxis: number): ClassGeometry {
  return {
    outer: product(dims.slice(0, classAxis)),
    classes: dims[classAxis]!,
    inner: product(dims.slice(classAxis + 1)),
  };
}

/** The dims without the class axis: a per-position statistic's shape ([N, K, H, W] → [N, H, W]). */
export const positionDims = (dims: readonly number[], classAxis: number): number[] =>
  dims.filter((_, a) => a !== classAxis);

/** Output-layout values → record order (position-major, the K classes last). */
export function classesLast(data: ArrayLike<number>, g: ClassGeometry): Float32Array {
  const { outer, classes: K, inner } = g;
  const out = new Float32Array(outer * K * inner);
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < K; k++)
      for (let i = 0; i < inner; i++) out[(o * inner + i) * K + k] = data[(o * K + k) * inner + i]!;
  return out;
}

/** Record-order values (the K classes last) → the output's layout (the class axis back in its place). */
export function classesInPlace(data: ArrayLike<number>, g: ClassGeometry): Float32Array {
  const { outer, classes: K, inner } = g;
  const out = new Float32Array(outer * K * inner);
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < K; k++)
      for (let i = 0; i < inner; i++) out[(o * K + k) * inner + i] = data[(o * inner + i) * K + k]!;
  return out;
}

/** The class of highest probability of each of `rows` rows of K (the first on a tie). */
export function argmaxRows(p: ArrayLike<number>, rows: number, K: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let k = 1; k < K; k++) if (p[r * K + k]! > p[r * K + best]!) best = k;
    out[r] = best;
  }
  return out;
}

/** A tensor classifier's eval answer: probabilities in the output's layout and dims, and the label per position. */
export function tensorClassPredict(
  model: Model,
  raw: Float32Array,
  dims: readonly number[],
  classAxis: number,
): { probabilities: Float32Array; labels: Int32Array; labelDims: number[] } {
  const g = classGeometry(dims, classAxis);
  const positions = g.outer * g.inner;
  const p = classProbabilities(
    { outputSize: g.classes, outputKind: model.outputKind, uncertainty: model.uncertainty },
    classesLast(raw, g),
    positions,
  );
  return {
    probabilities: classesInPlace(p, g),
    labels: argmaxRows(p, positions, g.classes),
    labelDims: positionDims(dims, classAxis),
  };
}

/**
 * A statistic of a tensor model's record in the output's shape: classification per-class values with
 * the class axis in place, per-position ones without it; regression values per output element.
 */
export function statTensor(
  s: McStats,
  values: Float64Array | Int32Array,
  perClass: boolean,
  outputDims: readonly number[],
  classAxis: number | null,
): { shape: number[]; data: Float32Array | Int32Array } {
  if (s.kind === 'regression' || classAxis === null)
    return { shape: perClass ? [...outputDims] : [outputDims[0]!], data: floats(values) };
  if (!perClass)
    return { shape: positionDims(outputDims, classAxis), data: values instanceof Int32Array ? values : floats(values) };
  return { shape: [...outputDims], data: classesInPlace(values, classGeometry(outputDims, classAxis)) };
}

const floats = (v: Float64Array | Int32Array): Float32Array => Float32Array.from(v);

/** Split a tensor's values (rows first) into one nested array per row, each of `dims.slice(1)`'s shape. */
export function nestRows<T>(data: ArrayLike<T>, dims: readonly number[]): unknown[] {
  const rowDims = dims.slice(1);
  const per = product(rowDims);
  const rows: unknown[] = [];
  for (let n = 0; n < dims[0]!; n++) rows.push(nest(data, n * per, rowDims));
  return rows;
}

function nest<T>(data: ArrayLike<T>, offset: number, dims: readonly number[]): unknown {
  if (dims.length === 0) return data[offset];
  const per = product(dims.slice(1));
  const out: unknown[] = [];
  for (let i = 0; i < dims[0]!; i++) out.push(nest(data, offset + i * per, dims.slice(1)));
  return out;
}
