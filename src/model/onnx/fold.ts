/**
 * Fold per-feature affine steps into the adjacent Gemm, a load-time rewrite for graphs like ours:
 *   Sub(x, c) → Div(·, s) → Gemm(·, W, b)   becomes  Gemm(x, W', b'),  W'[n,k] = W[n,k]/s[k],
 *                                                     b'[n] = b[n] − Σ_k W'[n,k]·c[k]
 *   Gemm(h, W, b) → Mul(·, a) → Add(·, m)    becomes  Gemm(h, W'', b''), W''[n,:] = a[n]·W[n,:],
 *                                                     b''[n] = a[n]·b[n] + m[n]
 * (c, s, a, m constant, one value or one per feature/output). Each removed node was a kernel launch on
 * every run: for a small network onnxruntime's per-node cost is most of a run. The rewrite applies only
 * when the intermediate tensors feed nothing else and are no graph output, and Gemm has alpha = beta =
 * 1, transA = 0 and constant W (and b); the folded weights are computed in float64 and rounded once.
 * Results match the unfolded graph to float32 rounding (tested).
 */
import {
  AttributeType,
  DataType,
  type Graph,
  type Model,
  type Node,
  type Tensor,
  floatRaw,
  tensorValues,
  toNumber,
} from '../../onnx-proto/proto.js';
import { consumers, isGraphOutput } from './graph-query.js';

/** A foldable Gemm's W as out × in (float64) and its bias b (out). */
interface GemmParams {
  w: Float64Array;
  b: Float64Array;
  out: number;
  inn: number;
}

/** Fold the affine steps around Gemms (see the file comment); mutates `model`, returns how many nodes went. */
export function foldAffine(model: Model): number {
  const g = model.graph!;
  // subgraphs (If, Loop, Scan) may read any outer tensor: leave such graphs as they are
  if (g.node.some((n) => n.attribute?.some((a) => a.g || (Array.isArray(a.graphs) && a.graphs.length > 0)))) return 0;
  const folder = new AffineFolder(g);
  let removed = 0;
  for (let changed = true; changed; ) {
    changed = false;
    // one fold of each kind per pass, in node order: the folded weights' names follow that order
    for (const fold of [() => folder.foldInputAffine(), () => folder.foldOutputAffine()]) {
      if (fold()) {
        removed += 2;
        changed = true;
      }
    }
  }
  folder.dropReplaced();
  return removed;
}

const attrNumber = (n: Node, name: string, def: number): number => {
  const a = n.attribute?.find((x) => x.name === name);
  return a ? (a.type === AttributeType.FLOAT ? (a.f ?? 0) : toNumber(a.i)) : def;
};

/** A per-index constant of length 1 or n, as a function. */
const perIndex = (values: number[] | null, n: number): ((i: number) => number) | null =>
  values && (values.length === 1 || values.length === n) ? (i) => values[values.length === 1 ? 0 : i]! : null;

/** The graph being folded, its initializers by name, and the weights the folds replaced. */
class AffineFolder {
  private readonly inits: Map<string, Tensor>;
  private readonly replaced: string[] = [];
  private serial = 0;

  constructor(private readonly g: Graph) {
    this.inits = new Map((g.initializer ?? []).filter((t) => t.name).map((t) => [t.name!, t]));
  }

  private constValues(name: string): number[] | null {
    const t = this.inits.get(name);
    return t && (t.data_type === DataType.FLOAT || t.data_type === DataType.DOUBLE) ? tensorValues(t) : null;
  }

  private soleConsumer(tensor: string): Node | null {
    if (isGraphOutput(this.g, tensor)) return null;
    const users = consumers(this.g, tensor);
    return users.length === 1 ? users[0]! : null;
  }

  /** W and b of a foldable Gemm (alpha = beta = 1, transA = 0, constant W and b); null otherwise. */
  private gemmParams(n: Node): GemmParams | null {
    if (n.op_type !== 'Gemm' || (n.domain && n.domain !== 'ai.onnx')) return null;
    if (attrNumber(n, 'alpha', 1) !== 1 || attrNumber(n, 'beta', 1) !== 1 || attrNumber(n, 'transA', 0) !== 0)
      return null;
    const wt = this.inits.get(n.input[1] ?? '');
    const wv = n.input[1] ? this.constValues(n.input[1]) : null;
    if (!wt || !wv || wt.dims?.length !== 2) return null;
    const transB = attrNumber(n, 'transB', 0) === 1;
    const [d0, d1] = wt.dims.map(toNumber) as [number, number];
    const [out, inn] = transB ? [d0, d1] : [d1, d0];
    const w = new Float64Array(out * inn);
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inn; i++) w[o * inn + i] = transB ? wv[o * inn + i]! : wv[i * out + o]!;
    const bv = n.input[2] ? this.constValues(n.input[2]) : [0];
    if (!bv || (bv.length !== 1 && bv.length !== out)) return null;
    return { w, b: Float64Array.from({ length: out }, (_, o) => bv[bv.length === 1 ? 0 : o]!), out, inn };
  }

  /** Give Gemm `n` the new weights as float32 initializers (transB = 1). */
  private writeGemm(n: Node, p: GemmParams): void {
    const tag = `dropout_serve.folded.${this.serial++}`;
    const w: Tensor = {
      name: `${tag}.weight`,
      dims: [p.out, p.inn],
      data_type: DataType.FLOAT,
      raw_data: floatRaw(Float32Array.from(p.w)),
    };
    const b: Tensor = {
      name: `${tag}.bias`,
      dims: [p.out],
      data_type: DataType.FLOAT,
      raw_data: floatRaw(Float32Array.from(p.b)),
    };
    this.replaced.push(...n.input.slice(1).filter(Boolean));
    this.g.initializer = [...(this.g.initializer ?? []), w, b];
    this.inits.set(w.name!, w);
    this.inits.set(b.name!, b);
    n.input = [n.input[0]!, w.name!, b.name!];
    n.attribute = [{ name: 'transB', type: AttributeType.INT, i: 1 }];
  }

  /** The first Sub(x, c) → Div(·, s) → Gemm, folded into the Gemm; false when there is none. */
  foldInputAffine(): boolean {
    for (const sub of this.g.node) {
      if (sub.op_type !== 'Sub' || !sub.output[0]) continue;
      const div = this.soleConsumer(sub.output[0]);
      if (div?.op_type !== 'Div' || div.input[0] !== sub.output[0] || !div.output[0]) continue;
      const gemm = this.soleConsumer(div.output[0]);
      if (!gemm || gemm.input[0] !== div.output[0]) continue;
      const p = this.gemmParams(gemm);
      if (!p) continue;
      const c = perIndex(this.constValues(sub.input[1] ?? ''), p.inn);
      const s = perIndex(this.constValues(div.input[1] ?? ''), p.inn);
      if (!c || !s) continue;
      for (let o = 0; o < p.out; o++) {
        let shift = 0;
        for (let i = 0; i < p.inn; i++) {
          p.w[o * p.inn + i]! /= s(i);
          shift += p.w[o * p.inn + i]! * c(i);
        }
        p.b[o]! -= shift;
      }
      this.writeGemm(gemm, p);
      gemm.input[0] = sub.input[0]!;
      this.g.node = this.g.node.filter((n) => n !== sub && n !== div);
      return true;
    }
    return false;
  }

  /** The first Gemm → Mul(·, a) → Add(·, m), folded into the Gemm; false when there is none. */
  foldOutputAffine(): boolean {
    for (const gemm of this.g.node) {
      if (!gemm.output[0]) continue;
      const p = this.gemmParams(gemm);
      if (!p) continue;
      const mul = this.soleConsumer(gemm.output[0]);
      if (mul?.op_type !== 'Mul' || mul.input[0] !== gemm.output[0] || !mul.output[0]) continue;
      const add = this.soleConsumer(mul.output[0]);
      if (add?.op_type !== 'Add' || add.input[0] !== mul.output[0] || !add.output[0]) continue;
      const a = perIndex(this.constValues(mul.input[1] ?? ''), p.out);
      const m = perIndex(this.constValues(add.input[1] ?? ''), p.out);
      if (!a || !m) continue;
      for (let o = 0; o < p.out; o++) {
        for (let i = 0; i < p.inn; i++) p.w[o * p.inn + i]! *= a(o);
        p.b[o] = p.b[o]! * a(o) + m(o);
      }
      this.writeGemm(gemm, p);
      gemm.output = [add.output[0]];
      this.g.node = this.g.node.filter((n) => n !== mul && n !== add);
      return true;
    }
    return false;
  }

  /** Remove the replaced weights and biases that nothing else reads. */
  dropReplaced(): void {
    const read = new Set(this.g.node.flatMap((n) => n.input));
    const drop = new Set(this.replaced.filter((name) => !read.has(name) && !this.g.input.some((i) => i.name === name)));
    this.g.initializer = (this.g.initializer ?? []).filter((t) => !t.name || !drop.has(t.name));
  }
}
