/**
 * The constants batch relaxation reads (relax-batch.ts): the shape of every initializer and Constant
 * node, the values of small ones (target shapes, axes, repeats), and the values of the small integer
 * ops exporters build target shapes with (Identity, Cast, Unsqueeze, Squeeze, Concat), folded over them.
 */
import { type Node, type Tensor, tensorValues, toNumber } from '../../onnx-proto/proto.js';

export interface ConstValue {
  dims: number[];
  /** Values for small integer/float tensors (shapes, axes); null when not read. */
  values: number[] | null;
}

/** Tensors of at most this many values are read (shapes and axes); larger ones keep only their dims. */
const MAX_READ_VALUES = 64;

function readable(t: Tensor): number[] | null {
  try {
    const n = (t.dims ?? []).map(toNumber).reduce((a, b) => a * b, 1);
    return n <= MAX_READ_VALUES ? tensorValues(t) : null;
  } catch {
    return null;
  }
}

/** An initializer (or a Constant node's tensor) as a ConstValue. */
export const tensorConst = (t: Tensor): ConstValue => ({ dims: (t.dims ?? []).map(toNumber), values: readable(t) });

/** A Constant node's value by its first `value*` attribute; null for the kinds not read (strings, sparse). */
export function constantNodeValue(n: Node): ConstValue | null {
  const attr = n.attribute?.find((a) => a.name.startsWith('value'));
  if (!attr) return null;
  if (attr.t) return tensorConst(attr.t);
  if (attr.name === 'value_float') return { dims: [], values: [attr.f ?? 0] };
  if (attr.name === 'value_int') return { dims: [], values: [toNumber(attr.i)] };
  if (attr.name === 'value_ints') return { dims: [attr.ints?.length ?? 0], values: (attr.ints ?? []).map(toNumber) };
  if (attr.name === 'value_floats') return { dims: [attr.floats?.length ?? 0], values: attr.floats ?? [] };
  return null;
}

/** One op's folding over constant inputs (values and dims of its non-empty inputs, in order). */
type ConstFold = (v: (number[] | null)[], d: number[][], n: Node) => ConstValue | null;

const passThrough: ConstFold = (v, d) => ({ dims: d[0]!, values: v[0]! });

const CONST_FOLDS: ReadonlyMap<string, ConstFold> = new Map<string, ConstFold>([
  ['Identity', passThrough],
  ['Cast', passThrough],
  [
    'Unsqueeze',
    (v, d, n) => {
      const axes = n.attribute?.find((x) => x.name === 'axes')?.ints?.map(toNumber) ?? v[1];
      if (axes && v[0] && d[0]!.length === 0 && axes.length === 1) return { dims: [1], values: v[0] };
      // the rank only matters for the shapes of 1-D results
      if (axes && v[0]) return { dims: [...d[0]!, ...axes.map(() => 1)], values: v[0] };
      return null;
    },
  ],
  ['Squeeze', (v, d) => (v[0] ? { dims: d[0]!.filter((x) => x !== 1), values: v[0] } : null)],
  [
    'Concat',
    (v, d) =>
      v.every(Boolean) && d.every((x) => x.length === 1)
        ? { dims: [v.reduce((a, x) => a + x!.length, 0)], values: v.flatMap((x) => x!) }
        : null,
  ],
]);

/** Record the output of `n` in `consts` when every input is constant and the op is one CONST_FOLDS knows. */
export function foldConst(n: Node, consts: Map<string, ConstValue>): void {
  const ins = n.input.filter(Boolean).map((i) => consts.get(i));
  if (ins.some((c) => !c) || !n.output[0]) return;
  const fold = CONST_FOLDS.get(n.op_type);
  const out = fold?.(
    ins.map((c) => c!.values),
    ins.map((c) => c!.dims),
    n,
  );
  if (out) consts.set(n.output[0], out);
}
