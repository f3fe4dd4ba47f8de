/**
 * A Monte Carlo graph's cheaper head (issue 20): where the shared prefix's output S [N, K] is repeated
 * (Tile), masked (Mul by a mask input [T·N, K]) and read by a Gemm with one output column (a
 * regression network's last layer after its last dropout: y = (tile(S) ⊙ mask) · w + b), the same
 * values come from
 *
 *   hw = S ⊙ wᵀ                          [N, K]   (once per row, not per sample)
 *   d  = reshape(mask, [T, N, K]) ⊙ hw   [T, N, K] (broadcast: no tiled copy of S)
 *   y  = reshape(ΣK d + b, [T·N, 1])
 *
 * onnxruntime's Gemm with one output column ran at a fraction of its speed (52 of a 100 µs run of
 * 800 × 200 for the diabetes network, measured with onnxruntime-node 1.30), and the Tile wrote every
 * row T times: the rewritten head ran in 62 µs. Rows stay sample-major (row t·N + i is sample t of
 * row i), so masks, accumulators and answers are unchanged but for float32 rounding of the sum.
 * A graph without the pattern is left as it is.
 */
import { DataType, type Graph, type Model, type Node, type Tensor, toNumber } from '../../onnx-proto/proto.js';
import { consumers, isGraphOutput } from './graph-query.js';

/** The pattern's nodes: Tile(S) → Mul(·, mask) → Gemm(·, W[, C]) with one output column. */
interface MaskedHead {
  tile: Node;
  mul: Node;
  gemm: Node;
  /** The mask input the Mul reads. */
  mask: string;
  /** W as a row [1, K] (the initializer itself, or a new one over the same values). */
  row: Tensor;
}

const intAttr = (n: Node, name: string, fallback: number): number => {
  const a = n.attribute?.find((x) => x.name === name);
  return a?.i === undefined ? fallback : toNumber(a.i);
};
const floatAttr = (n: Node, name: string): number => n.attribute?.find((x) => x.name === name)?.f ?? 1;

/** The only reader of `tensor`, when there is exactly one and it is not a graph output. */
function soleReader(g: Graph, tensor: string): Node | null {
  const readers = consumers(g, tensor);
  return readers.length === 1 && !isGraphOutput(g, tensor) ? readers[0]! : null;
}

/** W of a plain Gemm (alpha = beta = 1, A not transposed) with one output column, as a row [1, K]. */
function oneColumnRow(g: Graph, gemm: Node, a: string): Tensor | null {
  if (gemm.op_type !== 'Gemm' || gemm.input[0] !== a || intAttr(gemm, 'transA', 0) !== 0) return null;
  if (floatAttr(gemm, 'alpha') !== 1 || floatAttr(gemm, 'beta') !== 1) return null;
  const w = g.initializer?.find((t) => t.name === gemm.input[1]);
  if (!w || w.data_type !== DataType.FLOAT || w.external_data?.length) return null;
  const dims = (w.dims ?? []).map(toNumber);
  if (dims.length !== 2) return null;
  const transB = intAttr(gemm, 'transB', 0) !== 0;
  const [cols, k] = transB ? [dims[0]!, dims[1]!] : [dims[1]!, dims[0]!];
  if (cols !== 1) return null;
  return transB ? w : { ...w, name: `${w.name}.dropout_serve_row`, dims: [1, k] };
}

/** The Gemm has no bias, or one value (added to the [T, N] sums, it must broadcast as one). */
function scalarBias(g: Graph, gemm: Node): boolean {
  const c = gemm.input[2];
  if (!c) return true;
  const t = g.initializer?.find((i) => i.name === c);
  return t !== undefined && (t.dims ?? []).reduce<number>((n, d) => n * toNumber(d), 1) === 1;
}

function findHead(g: Graph, tile: Node, isMask: (name: string) => boolean): MaskedHead | null {
  const mul = soleReader(g, tile.output[0]!);
  if (mul?.op_type !== 'Mul' || mul.input.length !== 2) return null;
  const mask = mul.input.find((i) => i !== tile.output[0] && isMask(i));
  if (!mask || !mul.input.includes(tile.output[0]!)) return null;
  const gemm = soleReader(g, mul.output[0]!);
  const row = gemm ? oneColumnRow(g, gemm, mul.output[0]!) : null;
  return gemm && row && scalarBias(g, gemm) ? { tile, mul, gemm, mask, row } : null;
}

/** The nodes that replace the pattern, writing the Gemm's output. */
function headNodes(h: MaskedHead, s: string): Node[] {
  const p = `dropout_serve/head.${s}`;
  const t = (x: string): string => `${p}.${x}`;
  const out = h.gemm.output[0]!;
  const bias = h.gemm.input[2];
  const node = (op: string, input: string[], output: string, attribute: Node['attribute'] = []): Node => ({
    op_type: op,
    input,
    output: [output],
    name: output,
    attribute,
  });
  return [
    node('Mul', [s, h.row.name!], t('hw')),
    node('Shape', [t('hw')], t('shape')),
    node('Concat', [SAMPLES_AXIS, t('shape')], t('mask_shape'), [{ name: 'axis', type: 2, i: 0 }]),
    node('Reshape', [h.mask, t('mask_shape')], t('mask3')),
    node('Mul', [t('mask3'), t('hw')], t('products')),
    node('ReduceSum', [t('products'), LAST_AXIS], t('sums'), [{ name: 'keepdims', type: 2, i: 0 }]),
    // the bias is added to the [T, N] sums before they become a column (measured 8 µs faster a run)
    ...(bias ? [node('Add', [t('sums'), bias], t('biased'))] : []),
    node('Reshape', [bias ? t('biased') : t('sums'), COLUMN], out),
  ];
}

const SAMPLES_AXIS = 'dropout_serve.head.samples_axis';
const LAST_AXIS = 'dropout_serve.head.last_axis';
const COLUMN = 'dropout_serve.head.column';

const int64s = (name: string, values: number[]): Tensor => ({
  name,
  data_type: DataType.INT64,
  dims: [values.length],
  raw_data: new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer),
});

/**
 * Rewrite every masked one-column head of an MC graph (after its Tiles were inserted); returns how
 * many. Needs opset ≥ 13 (ReduceSum's axes as an input); `isMask` tells the mask inputs.
 */
export function rewriteMaskedHeads(model: Model, isMask: (name: string) => boolean): number {
  const opset = model.opset_import?.find((o) => !o.domain || o.domain === 'ai.onnx')?.version;
  if (opset === undefined || toNumber(opset) < 13) return 0;
  const g = model.graph!;
  const heads = g.node
    .filter((n) => n.op_type === 'Tile')
    .map((tile) => findHead(g, tile, isMask))
    .filter((h): h is MaskedHead => h !== null);
  for (const h of heads) {
    const at = g.node.indexOf(h.gemm);
    g.node.splice(at, 1, ...headNodes(h, h.tile.input[0]!));
    g.node = g.node.filter((n) => n !== h.tile && n !== h.mul);
    if (!g.initializer!.includes(h.row)) g.initializer!.push(h.row);
  }
  if (heads.length > 0)
    g.initializer!.push(int64s(SAMPLES_AXIS, [-1]), int64s(LAST_AXIS, [-1]), int64s(COLUMN, [-1, 1]));
  return heads.length;
}
