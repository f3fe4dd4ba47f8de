/**
 * Inspect and rewrite ONNX graphs so that dropout is switched per run, whatever the exporter wrote.
 *
 * A model arrives with Dropout nodes whose training_mode is a graph input (our exporter), a constant
 * `true` (PyTorch's train-mode exports, legacy and dynamo) or absent (eval semantics). Rather than
 * trusting those flags and onnxruntime's optimiser (whose EliminateDropout rule deletes Dropout nodes
 * even in training mode), the runtime builds two graphs at load time:
 *  - eval graph: every Dropout becomes Identity (predict, dropout off);
 *  - MC graph: every Dropout becomes Mul(x, mask_k), with `mask_k` a new graph input holding the
 *    inverted-dropout multipliers (0 or 1/(1−p)), and the rows are repeated T times inside the graph
 *    (Tile), after the shared prefix when there is one. Masks are drawn in JS from a seeded generator, so a request's `seed` reproduces its
 *    answer exactly, across calls and restarts (ORT's Dropout `seed` attribute is fixed per session,
 *    not per run), and they measured faster than onnxruntime's own Dropout kernel.
 * In both, BatchNormalization exported in training mode is set back to inference mode (running
 * statistics), unlike PyTorch's model.train() which would switch both.
 */
import { AttributeType, DataType, type Graph, type Model, type Node, type Tensor, type ValueInfo, decodeModel, encodeModel, floatRaw, tensorValues, toNumber } from '../../onnx/proto.js';

export class ModelFormatError extends Error {
  override name = 'ModelFormatError';
}

export const MIN_OPSET = 7;
export const MAX_OPSET = 22;

export interface DropoutInfo {
  /** Node name (or a generated one). */
  name: string;
  /** Tensor the dropout is applied to. */
  input: string;
  ratio: number;
}

export interface TensorInfo {
  name: string;
  elemType: number;
  /** Dimensions; null for a symbolic or unknown dimension. */
  dims: (number | null)[] | null;
}

export interface GraphInfo {
  opset: number;
  irVersion: number;
  producer: string;
  input: TensorInfo;
  /** Graph inputs that only feed Dropout's training_mode (removed by the rewrites). */
  controlInputs: string[];
  outputs: TensorInfo[];
  dropouts: DropoutInfo[];
  metadata: Record<string, string>;
}

export const ELEM_TYPE_NAMES: Record<number, string> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
};

function tensorInfo(v: ValueInfo): TensorInfo {
  const t = v.type?.tensor_type;
  const dims = t?.shape?.dim ? t.shape.dim.map((d) => (d.dim_value !== undefined && d.dim_value !== null && !d.dim_param ? toNumber(d.dim_value) : null)) : null;
  return { name: v.name, elemType: t?.elem_type ?? 0, dims };
}

/** Values of the graph's constants: initializers and Constant nodes with a `value` tensor. */
function constants(graph: Graph): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const t of graph.initializer ?? []) if (t.name) out.set(t.name, tensorValues(t));
  for (const n of graph.node) {
    if (n.op_type !== 'Constant') continue;
    const attr = n.attribute?.find((a) => a.name === 'value' || a.name === 'value_float' || a.name === 'value_int');
    if (!attr || !n.output[0]) continue;
    if (attr.t) out.set(n.output[0], tensorValues(attr.t));
    else if (attr.name === 'value_float') out.set(n.output[0], [attr.f ?? 0]);
    else if (attr.name === 'value_int') out.set(n.output[0], [toNumber(attr.i)]);
  }
  return out;
}

function consumers(graph: Graph, tensor: string): Node[] {
  return graph.node.filter((n) => n.input.includes(tensor));
}

function isGraphOutput(graph: Graph, tensor: string): boolean {
  return graph.output.some((o) => o.name === tensor);
}

/** Decode and inspect a model; throws ModelFormatError naming what is wrong. */
export function inspect(bytes: Uint8Array): { model: Model; info: GraphInfo } {
  let model: Model;
  try {
    model = decodeModel(bytes);
  } catch (err) {
    throw new ModelFormatError((err as Error).message);
  }
  const graph = model.graph!;
  const opsetEntry = (model.opset_import ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  const opset = opsetEntry ? toNumber(opsetEntry.version) : 0;
  if (opset < MIN_OPSET || opset > MAX_OPSET) {
    throw new ModelFormatError(`unsupported opset ${opset} (supported: ${MIN_OPSET}–${MAX_OPSET})`);
  }
  if (graph.node.length === 0) throw new ModelFormatError('the graph has no nodes');
  const consts = constants(graph);
  const dropouts: DropoutInfo[] = [];
  const trainingModeSources = new Set<string>();
  graph.node.forEach((n, idx) => {
    if (n.op_type !== 'Dropout' || (n.domain && n.domain !== 'ai.onnx')) return;
    const name = n.name || `Dropout_${idx}`;
    let ratio = 0.5; // ONNX default
    const attr = n.attribute?.find((a) => a.name === 'ratio');
    if (attr) ratio = attr.f ?? 0.5;
    else if (n.input[1]) {
      const v = consts.get(n.input[1]);
      if (!v || v.length !== 1) throw new ModelFormatError(`Dropout ${name}: its ratio "${n.input[1]}" is not a constant scalar`);
      ratio = v[0]!;
    }
    if (!(ratio >= 0 && ratio < 1)) throw new ModelFormatError(`Dropout ${name}: ratio ${ratio} is outside [0, 1)`);
    if (n.input[2]) trainingModeSources.add(n.input[2]);
    const mask = n.output[1];
    if (mask && (consumers(graph, mask).length > 0 || isGraphOutput(graph, mask))) {
      throw new ModelFormatError(`Dropout ${name}: its mask output is used by the graph, which is not supported`);
    }
    dropouts.push({ name, input: n.input[0]!, ratio: shortestFloat32(ratio) });
  });
  const initNames = new Set((graph.initializer ?? []).map((t) => t.name));
  const realInputs = graph.input.filter((i) => !initNames.has(i.name));
  // an input used only as Dropout's training_mode is a switch, not data
  const controlInputs = realInputs
    .filter((i) => trainingModeSources.has(i.name) && consumers(graph, i.name).every((n) => n.op_type === 'Dropout' && n.input[2] === i.name && n.input[0] !== i.name && n.input[1] !== i.name))
    .map((i) => i.name);
  const dataInputs = realInputs.filter((i) => !controlInputs.includes(i.name));
  if (dataInputs.length !== 1) {
    throw new ModelFormatError(`the model has ${dataInputs.length} data inputs (${dataInputs.map((i) => i.name).join(', ') || 'none'}); exactly one float tensor [batch, features] is supported`);
  }
  const input = tensorInfo(dataInputs[0]!);
  if (input.elemType !== DataType.FLOAT) {
    throw new ModelFormatError(`input "${input.name}" is ${ELEM_TYPE_NAMES[input.elemType] ?? `type ${input.elemType}`}; a float32 input is required`);
  }
  if (input.dims && input.dims.length !== 2) {
    throw new ModelFormatError(`input "${input.name}" has rank ${input.dims.length}; a rank-2 input [batch, features] is required`);
  }
  const outputs = graph.output.map(tensorInfo);
  if (outputs.length === 0) throw new ModelFormatError('the graph has no outputs');
  const metadata: Record<string, string> = {};
  for (const p of model.metadata_props ?? []) metadata[p.key] = p.value;
  return {
    model,
    info: {
      opset,
      irVersion: toNumber(model.ir_version),
      producer: [model.producer_name, model.producer_version].filter(Boolean).join(' '),
      input,
      controlInputs,
      outputs,
      dropouts,
      metadata,
    },
  };
}

/** The shortest decimal that rounds to the same float32 (0.30000001192092896 → 0.3). */
export function shortestFloat32(x: number): number {
  const f = Math.fround(x);
  for (let p = 1; p <= 9; p++) {
    const d = Number(f.toPrecision(p));
    if (Math.fround(d) === f) return d;
  }
  return f;
}

/** Deep-copy a decoded model (plain data, Uint8Arrays and Longs) so each rewrite starts fresh. */
function cloneModel(model: Model): Model {
  return structuredClone(model, {}) as Model;
}

/** BatchNormalization exported in training mode → inference mode, keeping only its first output. */
function freezeBatchNorm(graph: Graph): void {
  for (const n of graph.node) {
    if (n.op_type !== 'BatchNormalization') continue;
    const tm = n.attribute?.find((a) => a.name === 'training_mode');
    if (tm && toNumber(tm.i) !== 0) {
      for (const extra of n.output.slice(1)) {
        if (extra && (consumers(graph, extra).length > 0 || isGraphOutput(graph, extra))) {
          throw new ModelFormatError(`BatchNormalization ${n.name ?? ''}: its running-statistics outputs are used by the graph`);
        }
      }
      tm.i = 0;
      n.output = n.output.slice(0, 1);
    }
  }
}

function dropControlInputs(graph: Graph, control: string[]): void {
  graph.input = graph.input.filter((i) => !control.includes(i.name));
}

/** The eval graph: Dropout → Identity. */
export function evalGraph(model: Model, info: GraphInfo): Uint8Array {
  const m = cloneModel(model);
  const g = m.graph!;
  for (const n of g.node) {
    if (n.op_type === 'Dropout' && (!n.domain || n.domain === 'ai.onnx')) {
      n.op_type = 'Identity';
      n.input = n.input.slice(0, 1);
      n.output = n.output.slice(0, 1);
      n.attribute = [];
    }
  }
  freezeBatchNorm(g);
  dropControlInputs(g, info.controlInputs);
  return encodeModel(m);
}

export const maskInputName = (k: number): string => `dropout_serve.mask.${k}`;
const isDropout = (n: Node): boolean => n.op_type === 'Dropout' && (!n.domain || n.domain === 'ai.onnx');

/**
 * The graph for Monte Carlo passes: the k-th live Dropout becomes Mul(x, dropout_serve.mask.k), a
 * float32 input of the dropout's input shape (batch first) holding 0 or 1/(1−p), drawn in JS from a
 * seeded generator, so a request's seed reproduces its answer. Rate-0 dropouts become Identity. Node
 * order and count are unchanged.
 */
function maskedModel(model: Model, info: GraphInfo): Model {
  const m = cloneModel(model);
  const g = m.graph!;
  let k = 0;
  let d = 0;
  for (const n of g.node) {
    if (!isDropout(n)) continue;
    const live = info.dropouts[d++]!.ratio > 0;
    n.op_type = live ? 'Mul' : 'Identity';
    n.input = live ? [n.input[0]!, maskInputName(k)] : n.input.slice(0, 1);
    n.output = n.output.slice(0, 1);
    n.attribute = [];
    if (live) g.input.push({ name: maskInputName(k++), type: { tensor_type: { elem_type: DataType.FLOAT } } });
  }
  freezeBatchNorm(g);
  dropControlInputs(g, info.controlInputs);
  return m;
}

/** Where the MC graph repeats its rows T times: before node `index`, the tensors `tensors`. */
export interface TilePoint {
  index: number;
  tensors: string[];
}

/** The plain MC graph repeats the input rows before the first node. */
export const inputTilePoint = (info: GraphInfo): TilePoint => ({ index: 0, tensors: [info.input.name] });

/**
 * The shared prefix: every node before the first live dropout is the same for every Monte Carlo sample,
 * so the rows need to be repeated only after it. Nodes are in topological order (ONNX requires it), so
 * the nodes before the first dropout depend on no mask. The tensors to repeat are those the prefix
 * produces (Constant nodes aside) and the rest of the graph reads, plus the input if the rest reads it.
 * Returns null when there is nothing to share (no node of substance before the first dropout), or when
 * a graph output comes from the prefix.
 */
export function sharedPrefixPoint(model: Model, info: GraphInfo): TilePoint | null {
  const liveIdx = info.dropouts.findIndex((d) => d.ratio > 0);
  if (liveIdx < 0) return null;
  let seen = -1;
  const g = model.graph!;
  const first = g.node.findIndex((n) => isDropout(n) && ++seen === liveIdx);
  const prefixNodes = g.node.slice(0, first).filter((n) => n.op_type !== 'Constant');
  if (prefixNodes.length === 0) return null;
  const produced = new Set(prefixNodes.flatMap((n) => n.output).filter(Boolean));
  if (g.output.some((o) => produced.has(o.name))) return null;
  const read = new Set(g.node.slice(first).flatMap((n) => n.input));
  const tensors = [...produced].filter((t) => read.has(t));
  if (read.has(info.input.name)) tensors.push(info.input.name);
  return { index: first, tensors };
}

export const repeatsInputName = (j: number): string => `dropout_serve.repeats.${j}`;

/**
 * The graph for Monte Carlo passes: dropouts as mask inputs (maskedModel), and the rows repeated T
 * times inside the graph at `at`: each tensor S there goes through Tile(S, dropout_serve.repeats.j)
 * with repeats [T, 1, …], giving T·N rows in sample-major order (row t·N + i is sample t of row i),
 * which every later node reads instead of S. One run computes the prefix once on the N rows and the
 * rest on T·N rows; onnxruntime does the copying in C++.
 */
export function mcGraph(model: Model, info: GraphInfo, at: TilePoint): Uint8Array {
  const m = maskedModel(model, info);
  const g = m.graph!;
  const tiled = new Map(at.tensors.map((t) => [t, `${t}.dropout_serve_tiled`]));
  const after = g.node.slice(at.index);
  for (const n of after) n.input = n.input.map((i) => tiled.get(i) ?? i);
  const tiles: Node[] = at.tensors.map((t, j) => ({ op_type: 'Tile', input: [t, repeatsInputName(j)], output: [tiled.get(t)!], name: `dropout_serve/tile.${j}` }));
  g.node = [...g.node.slice(0, at.index), ...tiles, ...after];
  at.tensors.forEach((_, j) => g.input.push({ name: repeatsInputName(j), type: { tensor_type: { elem_type: DataType.INT64, shape: { dim: [{ dim_param: 'rank' }] } } } }));
  return encodeModel(m);
}

/** An eval graph that also outputs the inputs of every Dropout and `extra` tensors (to learn their shapes). */
export function probeGraph(model: Model, info: GraphInfo, extra: string[] = []): Uint8Array {
  const m = cloneModel(model);
  const g = m.graph!;
  const existing = new Set(g.output.map((o) => o.name));
  for (const t of [...info.dropouts.map((d) => d.input), ...extra]) {
    if (!existing.has(t) && t !== info.input.name) {
      g.output.push({ name: t, type: { tensor_type: { elem_type: DataType.FLOAT } } });
      existing.add(t);
    }
  }
  return evalGraph(m, info);
}

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
 * Results match the unfolded graph to float32 rounding (tested). Returns how many nodes were removed.
 */
export function foldAffine(model: Model): number {
  const g = model.graph!;
  // subgraphs (If, Loop, Scan) may read any outer tensor: leave such graphs as they are
  if (g.node.some((n) => n.attribute?.some((a) => a.g || (Array.isArray(a.graphs) && a.graphs.length > 0)))) return 0;
  const replaced: string[] = [];
  const inits = new Map((g.initializer ?? []).filter((t) => t.name).map((t) => [t.name!, t]));
  const constValues = (name: string): number[] | null => {
    const t = inits.get(name);
    return t && (t.data_type === DataType.FLOAT || t.data_type === DataType.DOUBLE) ? tensorValues(t) : null;
  };
  const soleConsumer = (tensor: string): Node | null => {
    if (isGraphOutput(g, tensor)) return null;
    const users = consumers(g, tensor);
    return users.length === 1 ? users[0]! : null;
  };
  const attr = (n: Node, name: string, def: number): number => {
    const a = n.attribute?.find((x) => x.name === name);
    return a ? (a.type === AttributeType.FLOAT ? (a.f ?? 0) : toNumber(a.i)) : def;
  };
  /** W as out × in (float64) and b, for a foldable Gemm; null otherwise. */
  const gemmParams = (n: Node): { w: Float64Array; b: Float64Array; out: number; inn: number; transB: boolean } | null => {
    if (n.op_type !== 'Gemm' || (n.domain && n.domain !== 'ai.onnx')) return null;
    if (attr(n, 'alpha', 1) !== 1 || attr(n, 'beta', 1) !== 1 || attr(n, 'transA', 0) !== 0) return null;
    const wt = inits.get(n.input[1] ?? '');
    const wv = n.input[1] ? constValues(n.input[1]) : null;
    if (!wt || !wv || wt.dims?.length !== 2) return null;
    const transB = attr(n, 'transB', 0) === 1;
    const [d0, d1] = wt.dims.map(toNumber) as [number, number];
    const [out, inn] = transB ? [d0, d1] : [d1, d0];
    const w = new Float64Array(out * inn);
    for (let o = 0; o < out; o++) for (let i = 0; i < inn; i++) w[o * inn + i] = transB ? wv[o * inn + i]! : wv[i * out + o]!;
    const bv = n.input[2] ? constValues(n.input[2]) : [0];
    if (!bv || (bv.length !== 1 && bv.length !== out)) return null;
    return { w, b: Float64Array.from({ length: out }, (_, o) => bv[bv.length === 1 ? 0 : o]!), out, inn, transB };
  };
  /** A per-index constant of length 1 or n, as a function. */
  const perIndex = (values: number[] | null, n: number): ((i: number) => number) | null =>
    values && (values.length === 1 || values.length === n) ? (i) => values[values.length === 1 ? 0 : i]! : null;
  let removed = 0;
  let serial = 0;
  const writeGemm = (n: Node, p: { w: Float64Array; b: Float64Array; out: number; inn: number }): void => {
    const tag = `dropout_serve.folded.${serial++}`;
    const wName = `${tag}.weight`;
    const bName = `${tag}.bias`;
    const w: Tensor = { name: wName, dims: [p.out, p.inn], data_type: DataType.FLOAT, raw_data: floatRaw(Float32Array.from(p.w)) };
    const b: Tensor = { name: bName, dims: [p.out], data_type: DataType.FLOAT, raw_data: floatRaw(Float32Array.from(p.b)) };
    replaced.push(...n.input.slice(1).filter(Boolean));
    g.initializer = [...(g.initializer ?? []), w, b];
    inits.set(wName, w);
    inits.set(bName, b);
    n.input = [n.input[0]!, wName, bName];
    n.attribute = [{ name: 'transB', type: AttributeType.INT, i: 1 }];
  };
  for (let changed = true; changed; ) {
    changed = false;
    for (const sub of g.node) {
      // Sub(x, c) → Div(·, s) → Gemm
      if (sub.op_type !== 'Sub' || !sub.output[0]) continue;
      const div = soleConsumer(sub.output[0]);
      if (!div || div.op_type !== 'Div' || div.input[0] !== sub.output[0] || !div.output[0]) continue;
      const gemm = soleConsumer(div.output[0]);
      if (!gemm || gemm.input[0] !== div.output[0]) continue;
      const p = gemmParams(gemm);
      if (!p) continue;
      const c = perIndex(constValues(sub.input[1] ?? ''), p.inn);
      const s = perIndex(constValues(div.input[1] ?? ''), p.inn);
      if (!c || !s) continue;
      for (let o = 0; o < p.out; o++) {
        let shift = 0;
        for (let i = 0; i < p.inn; i++) {
          p.w[o * p.inn + i]! /= s(i);
          shift += p.w[o * p.inn + i]! * c(i);
        }
        p.b[o]! -= shift;
      }
      writeGemm(gemm, p);
      gemm.input[0] = sub.input[0]!;
      g.node = g.node.filter((n) => n !== sub && n !== div);
      removed += 2;
      changed = true;
      break;
    }
    for (const gemm of g.node) {
      // Gemm → Mul(·, a) → Add(·, m)
      if (!gemm.output[0]) continue;
      const p = gemmParams(gemm);
      if (!p) continue;
      const mul = soleConsumer(gemm.output[0]);
      if (!mul || mul.op_type !== 'Mul' || mul.input[0] !== gemm.output[0] || !mul.output[0]) continue;
      const add = soleConsumer(mul.output[0]);
      if (!add || add.op_type !== 'Add' || add.input[0] !== mul.output[0] || !add.output[0]) continue;
      const a = perIndex(constValues(mul.input[1] ?? ''), p.out);
      const m = perIndex(constValues(add.input[1] ?? ''), p.out);
      if (!a || !m) continue;
      for (let o = 0; o < p.out; o++) {
        for (let i = 0; i < p.inn; i++) p.w[o * p.inn + i]! *= a(o);
        p.b[o] = p.b[o]! * a(o) + m(o);
      }
      writeGemm(gemm, p);
      gemm.output = [add.output[0]];
      g.node = g.node.filter((n) => n !== mul && n !== add);
      removed += 2;
      changed = true;
      break;
    }
  }
  // the replaced weights and biases, when nothing else reads them
  const read = new Set(g.node.flatMap((n) => n.input));
  const drop = new Set(replaced.filter((name) => !read.has(name) && !g.input.some((i) => i.name === name)));
  g.initializer = (g.initializer ?? []).filter((t) => !t.name || !drop.has(t.name));
  return removed;
}
