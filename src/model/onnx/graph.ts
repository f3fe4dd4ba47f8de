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
import {
  AttributeType,
  DataType,
  type Dim,
  type Graph,
  type Model,
  type Node,
  type Tensor,
  type ValueInfo,
  decodeModel,
  encodeModel,
  floatRaw,
  tensorValues,
  toNumber,
} from '../../onnx-proto/proto.js';

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
  const dims = t?.shape?.dim
    ? t.shape.dim.map((d) =>
        d.dim_value !== undefined && d.dim_value !== null && !d.dim_param ? toNumber(d.dim_value) : null,
      )
    : null;
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

/** The values of a constant tensor of the graph (an initializer or a Constant node), or null. */
export function constantValues(model: Model, name: string): number[] | null {
  return constants(model.graph!).get(name) ?? null;
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
      if (!v || v.length !== 1)
        throw new ModelFormatError(`Dropout ${name}: its ratio "${n.input[1]}" is not a constant scalar`);
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
    .filter(
      (i) =>
        trainingModeSources.has(i.name) &&
        consumers(graph, i.name).every(
          (n) => n.op_type === 'Dropout' && n.input[2] === i.name && n.input[0] !== i.name && n.input[1] !== i.name,
        ),
    )
    .map((i) => i.name);
  const dataInputs = realInputs.filter((i) => !controlInputs.includes(i.name));
  if (dataInputs.length !== 1) {
    throw new ModelFormatError(
      `the model has ${dataInputs.length} data inputs (${dataInputs.map((i) => i.name).join(', ') || 'none'}); exactly one float tensor [batch, features] is supported`,
    );
  }
  const input = tensorInfo(dataInputs[0]!);
  if (input.elemType !== DataType.FLOAT) {
    throw new ModelFormatError(
      `input "${input.name}" is ${ELEM_TYPE_NAMES[input.elemType] ?? `type ${input.elemType}`}; a float32 input is required`,
    );
  }
  if (input.dims && input.dims.length !== 2) {
    throw new ModelFormatError(
      `input "${input.name}" has rank ${input.dims.length}; a rank-2 input [batch, features] is required`,
    );
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
          throw new ModelFormatError(
            `BatchNormalization ${n.name ?? ''}: its running-statistics outputs are used by the graph`,
          );
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

/**
 * Declared shapes after a rewrite. `value_info` is optional in ONNX, but onnxruntime trusts it: it
 * plans buffers from it, binding each symbolic dimension (torch 2's dynamo exporter writes "s0" or
 * "batch" on every intermediate, tied to the input's) once per run.
 *  - 'same-rows' (eval and probe graphs): every tensor keeps its rows, so the declarations stay true;
 *    only entries for tensors no node produces any more (Dropout's mask, folded steps) are dropped.
 *  - 'mc-rows' (MC graphs): after the Tile a tensor has samples × rows rows while its declaration still
 *    says the input's rows ("Shape mismatch attempting to re-use buffer. {1,50} != {4000,50}"), so every
 *    value_info entry goes (onnxruntime infers the shapes itself) and each graph output's first
 *    dimension becomes a symbol of its own.
 */
function fixDeclaredShapes(graph: Graph, mode: 'same-rows' | 'mc-rows'): void {
  if (mode === 'mc-rows') {
    graph.value_info = [];
    for (const o of graph.output) {
      const dims = o.type?.tensor_type?.shape?.dim;
      if (dims && dims.length > 0) dims[0] = { dim_param: MC_ROWS_DIM };
    }
    return;
  }
  const produced = new Set(graph.node.flatMap((n) => n.output));
  for (const i of graph.input) produced.add(i.name);
  for (const t of graph.initializer ?? []) if (t.name) produced.add(t.name);
  graph.value_info = (graph.value_info ?? []).filter((v) => produced.has(v.name));
}

/** The symbolic first dimension of an MC graph's outputs (samples × rows). */
export const MC_ROWS_DIM = 'dropout_serve_mc_rows';

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
  fixDeclaredShapes(g, 'same-rows');
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
  const tiles: Node[] = at.tensors.map((t, j) => ({
    op_type: 'Tile',
    input: [t, repeatsInputName(j)],
    output: [tiled.get(t)!],
    name: `dropout_serve/tile.${j}`,
  }));
  g.node = [...g.node.slice(0, at.index), ...tiles, ...after];
  at.tensors.forEach((_, j) =>
    g.input.push({
      name: repeatsInputName(j),
      type: { tensor_type: { elem_type: DataType.INT64, shape: { dim: [{ dim_param: 'rank' }] } } },
    }),
  );
  fixDeclaredShapes(g, 'mc-rows');
  return encodeModel(m);
}

/**
 * An eval graph that also outputs the inputs of every Dropout and `extra` tensors (to learn their
 * shapes). A Dropout on the graph input itself (the UCI networks: Dropout → Linear → …) makes the
 * input an output too, which onnxruntime allows, so the probe can fetch every Dropout's input by name.
 */
export function probeGraph(model: Model, info: GraphInfo, extra: string[] = []): Uint8Array {
  const m = cloneModel(model);
  const g = m.graph!;
  const existing = new Set(g.output.map((o) => o.name));
  for (const t of [...info.dropouts.map((d) => d.input), ...extra]) {
    if (!existing.has(t)) {
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
  const gemmParams = (
    n: Node,
  ): { w: Float64Array; b: Float64Array; out: number; inn: number; transB: boolean } | null => {
    if (n.op_type !== 'Gemm' || (n.domain && n.domain !== 'ai.onnx')) return null;
    if (attr(n, 'alpha', 1) !== 1 || attr(n, 'beta', 1) !== 1 || attr(n, 'transA', 0) !== 0) return null;
    const wt = inits.get(n.input[1] ?? '');
    const wv = n.input[1] ? constValues(n.input[1]) : null;
    if (!wt || !wv || wt.dims?.length !== 2) return null;
    const transB = attr(n, 'transB', 0) === 1;
    const [d0, d1] = wt.dims.map(toNumber) as [number, number];
    const [out, inn] = transB ? [d0, d1] : [d1, d0];
    const w = new Float64Array(out * inn);
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inn; i++) w[o * inn + i] = transB ? wv[o * inn + i]! : wv[i * out + o]!;
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
    const w: Tensor = {
      name: wName,
      dims: [p.out, p.inn],
      data_type: DataType.FLOAT,
      raw_data: floatRaw(Float32Array.from(p.w)),
    };
    const b: Tensor = {
      name: bName,
      dims: [p.out],
      data_type: DataType.FLOAT,
      raw_data: floatRaw(Float32Array.from(p.b)),
    };
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

/** What relaxBatch changed, for the loader's log. */
export interface BatchRelaxation {
  /** The fixed batch size the file declared for its input. */
  from: number;
  /** The symbolic name the batch dimension now has. */
  dimParam: string;
  /** Graph outputs whose first dimension was made symbolic. */
  outputs: string[];
  /** Reshape nodes whose constant target shape started with the batch size; it is now 0 (copy). */
  reshapes: string[];
  /** value_info entries whose first dimension was made symbolic. */
  valueInfo: number;
  /** One line for the log. */
  message: string;
}

export const RELAXED_BATCH_DIM = 'batch';

/** Elementwise ops of one data input (the others, if any, are scalars or attributes). */
const ROWWISE_UNARY = new Set([
  'Abs',
  'Acos',
  'Acosh',
  'Asin',
  'Asinh',
  'Atan',
  'Atanh',
  'Cast',
  'CastLike',
  'Ceil',
  'Celu',
  'Clip',
  'Cos',
  'Cosh',
  'Dropout',
  'Elu',
  'Erf',
  'Exp',
  'Floor',
  'Gelu',
  'HardSigmoid',
  'HardSwish',
  'Identity',
  'IsInf',
  'IsNaN',
  'LeakyRelu',
  'Log',
  'Mish',
  'Neg',
  'Not',
  'Reciprocal',
  'Relu',
  'Round',
  'Selu',
  'Shrink',
  'Sigmoid',
  'Sign',
  'Sin',
  'Sinh',
  'Softplus',
  'Softsign',
  'Sqrt',
  'Tan',
  'Tanh',
  'ThresholdedRelu',
]);
/** Elementwise ops with numpy broadcasting over all their inputs. */
const BROADCAST = new Set([
  'Add',
  'And',
  'BitShift',
  'BitwiseAnd',
  'BitwiseOr',
  'BitwiseXor',
  'Div',
  'Equal',
  'Greater',
  'GreaterOrEqual',
  'Less',
  'LessOrEqual',
  'Max',
  'Mean',
  'Min',
  'Mod',
  'Mul',
  'Or',
  'Pow',
  'PRelu',
  'Sub',
  'Sum',
  'Where',
  'Xor',
]);
/** Ops whose first input is [batch, channels, …] and whose other inputs are parameters. */
const PER_SAMPLE = new Set([
  'AveragePool',
  'BatchNormalization',
  'Conv',
  'ConvTranspose',
  'DepthToSpace',
  'GlobalAveragePool',
  'GlobalLpPool',
  'GlobalMaxPool',
  'GroupNormalization',
  'InstanceNormalization',
  'LpPool',
  'LRN',
  'MaxPool',
  'SpaceToDepth',
]);
const REDUCE = new Set([
  'ReduceL1',
  'ReduceL2',
  'ReduceLogSum',
  'ReduceLogSumExp',
  'ReduceMax',
  'ReduceMean',
  'ReduceMin',
  'ReduceProd',
  'ReduceSum',
  'ReduceSumSquare',
]);

interface ConstValue {
  dims: number[];
  /** Values for small integer/float tensors (shapes, axes); null when not read. */
  values: number[] | null;
}

/**
 * A graph exported with a fixed batch (torch.onnx.export without dynamic_axes: input [1, 8], output
 * [1, 1]) refuses any other batch size in onnxruntime, although the network itself treats rows
 * independently. relaxBatch makes the batch dimension symbolic when every node that reads a tensor
 * carrying the batch is known to keep its rows apart, and rewrites the one baked size the legacy
 * exporter commonly writes: a Reshape whose constant target shape starts with the batch size
 * (x.view(x.size(0), -1) traced at batch 1 gives Reshape(x, [1, -1])) now copies that dimension (0).
 * It walks the nodes in order, tracking which tensors carry the rows on axis 0 (and their rank), and
 * refuses, naming the node and the re-export to make, when one mixes rows or bakes the size: a
 * constant joined along another axis (torch.cat([x, torch.ones(1, 1)], 1)), a reduction, softmax,
 * transpose, slice or gather over axis 0, a Squeeze without axes, a constant broadcast over the rows,
 * or an op it does not know. Shape-derived values (Shape → Gather → Concat → Reshape) follow the real
 * size at run time and are accepted. The loader still runs the relaxed graph at several batch sizes
 * and compares each row with a one-row run (selfCheck), so a rewrite that missed something fails at
 * load.
 * Mutates `model` and `info` (input and output dims); returns null when the input's batch dimension is
 * not a fixed number (nothing to do). Throws ModelFormatError when the graph cannot be relaxed.
 */
export function relaxBatch(model: Model, info: GraphInfo): BatchRelaxation | null {
  const B = info.input.dims?.[0];
  if (B === null || B === undefined) return null;
  const g = model.graph!;
  const inputName = info.input.name;
  const shapeText = `[${info.input.dims!.map((d) => d ?? '?').join(', ')}]`;
  const outNames = g.output.map((o) => o.name);
  const refuse: (n: Node, why: string) => never = (n, why) => {
    throw new ModelFormatError(
      `input "${inputName}" was exported with a fixed batch of ${B} (${shapeText}) and node "${n.name || n.output[0]}" (${n.op_type}) ${why}, so the graph cannot serve another batch size. ` +
        `Re-export with a dynamic batch: torch.onnx.export(..., input_names=["${inputName}"], output_names=[${outNames.map((o) => `"${o}"`).join(', ')}], ` +
        `dynamic_axes={${[inputName, ...outNames].map((t) => `"${t}": {0: "batch"}`).join(', ')}}), or with dynamo=True and dynamic_shapes={"${inputName}": {0: torch.export.Dim("batch")}}`,
    );
  };

  // constants (initializers, Constant nodes, and small int ops folded over them)
  const consts = new Map<string, ConstValue>();
  const readable = (t: Tensor): number[] | null => {
    try {
      const n = (t.dims ?? []).map(toNumber).reduce((a, b) => a * b, 1);
      return n <= 64 ? tensorValues(t) : null;
    } catch {
      return null;
    }
  };
  for (const t of g.initializer ?? [])
    if (t.name) consts.set(t.name, { dims: (t.dims ?? []).map(toNumber), values: readable(t) });
  const dynamic = new Set<string>(); // values computed from run-time shapes (Shape, Size)
  const batch = new Map<string, number | null>([[inputName, info.input.dims!.length]]); // tensor → rank
  const attrInt = (n: Node, name: string): number | undefined => {
    const a = n.attribute?.find((x) => x.name === name);
    return a && a.i !== undefined && a.i !== null ? toNumber(a.i) : undefined;
  };
  const attrInts = (n: Node, name: string): number[] | undefined =>
    n.attribute?.find((x) => x.name === name)?.ints?.map(toNumber);
  const opset = info.opset;
  const normAxis = (a: number, rank: number | null): number | null => (a >= 0 ? a : rank === null ? null : a + rank);
  /** axes from an attribute (older opsets) or a constant input; undefined when absent, null when not constant. */
  const axesOf = (n: Node, inputIndex: number, attrName = 'axes'): number[] | null | undefined => {
    const fromAttr = attrInts(n, attrName);
    if (fromAttr) return fromAttr;
    const name = n.input[inputIndex];
    if (!name) return undefined;
    const c = consts.get(name);
    return c?.values ?? null;
  };
  const touchesAxis0 = (axes: number[], rank: number | null): boolean => axes.some((a) => normAxis(a, rank) === 0);
  const reshapes: string[] = [];
  let serial = 0;

  const foldConst = (n: Node): void => {
    const ins = n.input.filter(Boolean).map((i) => consts.get(i));
    if (ins.some((c) => !c) || !n.output[0]) return;
    const v = ins.map((c) => c!.values);
    const d = ins.map((c) => c!.dims);
    let out: ConstValue | null = null;
    switch (n.op_type) {
      case 'Identity':
      case 'Cast':
        out = { dims: d[0]!, values: v[0]! };
        break;
      case 'Unsqueeze': {
        const axes = attrInts(n, 'axes') ?? v[1];
        if (axes && v[0] && d[0]!.length === 0 && axes.length === 1) out = { dims: [1], values: v[0] };
        else if (axes && v[0]) out = { dims: [...d[0]!, ...axes.map(() => 1)], values: v[0] }; // rank only matters for shapes of 1-D results
        break;
      }
      case 'Squeeze':
        if (v[0]) out = { dims: d[0]!.filter((x) => x !== 1), values: v[0] };
        break;
      case 'Concat':
        if (v.every(Boolean) && d.every((x) => x.length === 1))
          out = { dims: [v.reduce((a, x) => a + x!.length, 0)], values: v.flatMap((x) => x!) };
        break;
      case 'Constant':
        break;
    }
    if (out) consts.set(n.output[0], out);
  };

  for (const n of g.node) {
    if (n.op_type === 'Constant') {
      const attr = n.attribute?.find((a) => a.name.startsWith('value'));
      if (attr && n.output[0]) {
        if (attr.t) consts.set(n.output[0], { dims: (attr.t.dims ?? []).map(toNumber), values: readable(attr.t) });
        else if (attr.name === 'value_float') consts.set(n.output[0], { dims: [], values: [attr.f ?? 0] });
        else if (attr.name === 'value_int') consts.set(n.output[0], { dims: [], values: [toNumber(attr.i)] });
        else if (attr.name === 'value_ints')
          consts.set(n.output[0], { dims: [attr.ints?.length ?? 0], values: (attr.ints ?? []).map(toNumber) });
        else if (attr.name === 'value_floats')
          consts.set(n.output[0], { dims: [attr.floats?.length ?? 0], values: attr.floats ?? [] });
      }
      continue;
    }
    const batchIns = n.input.map((i) => (i && batch.has(i) ? i : null));
    const anyBatch = batchIns.some(Boolean);
    if (!anyBatch) {
      if (n.input.some((i) => i && dynamic.has(i))) n.output.forEach((o) => o && dynamic.add(o));
      else foldConst(n);
      continue;
    }
    if (n.domain && n.domain !== 'ai.onnx') refuse(n, `is a custom op (domain ${n.domain}) the server cannot check`);
    const r0 = batchIns[0] ? batch.get(n.input[0]!)! : null;
    const mark = (rank: number | null, outputs = n.output.slice(0, 1)): void => {
      for (const o of outputs) if (o) batch.set(o, rank);
    };
    const firstOnly = (): void => {
      if (!batchIns[0]) refuse(n, 'reads the rows through an input other than its data input');
      if (batchIns.slice(1).some(Boolean)) refuse(n, 'reads the rows through a parameter input');
    };
    const op = n.op_type;
    if (op === 'Shape' || op === 'Size') {
      n.output.forEach((o) => o && dynamic.add(o));
    } else if (ROWWISE_UNARY.has(op)) {
      firstOnly();
      mark(r0, op === 'Dropout' ? n.output.slice(0, 2) : n.output.slice(0, 1));
    } else if (BROADCAST.has(op)) {
      const ranks = n.input.map((i) => (!i ? 0 : batch.has(i) ? batch.get(i)! : (consts.get(i)?.dims.length ?? null)));
      const known = ranks.every((x) => x !== null);
      const R = known ? Math.max(...(ranks as number[])) : null;
      n.input.forEach((i, k) => {
        if (!i) return;
        if (batch.has(i)) {
          if (R !== null && ranks[k] !== R)
            refuse(n, `broadcasts the rows of "${i}" (rank ${ranks[k]}) against a rank-${R} tensor`);
        } else if (consts.has(i)) {
          const c = consts.get(i)!;
          if (
            (R === null || c.dims.length === R) &&
            c.dims.length > 0 &&
            c.dims[0] !== 1 &&
            (R !== null || c.dims.length > 1)
          ) {
            refuse(
              n,
              `combines the rows with the constant "${i}" of shape [${c.dims.join(', ')}], whose first dimension is the batch`,
            );
          }
        } else if (!dynamic.has(i)) {
          refuse(n, `combines the rows with "${i}", which the server cannot trace`);
        }
      });
      mark(R);
    } else if (op === 'Gemm') {
      firstOnly();
      if ((attrInt(n, 'transA') ?? 0) !== 0) refuse(n, 'has transA=1, which multiplies across the rows');
      const c = n.input[2] ? consts.get(n.input[2]) : undefined;
      if (c && c.dims.length === 2 && c.dims[0] !== 1)
        refuse(n, `adds the constant "${n.input[2]}" of shape [${c.dims.join(', ')}], one row per batch row`);
      mark(2);
    } else if (op === 'MatMul') {
      firstOnly();
      if (r0 !== null && r0 < 2) refuse(n, 'multiplies across the rows (its left input has rank 1)');
      const b = n.input[1] ? consts.get(n.input[1]) : undefined;
      if (b && r0 !== null && b.dims.length > r0)
        refuse(n, `broadcasts the rows against "${n.input[1]}" of rank ${b.dims.length}`);
      mark(r0);
    } else if (PER_SAMPLE.has(op)) {
      firstOnly();
      mark(r0, op === 'MaxPool' ? n.output.slice(0, 2) : n.output.slice(0, 1));
    } else if (
      op === 'Softmax' ||
      op === 'LogSoftmax' ||
      op === 'Hardmax' ||
      op === 'LpNormalization' ||
      op === 'LayerNormalization' ||
      op === 'CumSum' ||
      op === 'TopK' ||
      op === 'ArgMax' ||
      op === 'ArgMin'
    ) {
      if (!batchIns[0] || (op !== 'CumSum' && op !== 'TopK' && batchIns.slice(1).some(Boolean)))
        refuse(n, 'reads the rows through a parameter input');
      const def =
        op === 'ArgMax' || op === 'ArgMin'
          ? 0
          : (op === 'Softmax' || op === 'LogSoftmax' || op === 'Hardmax') && opset < 13
            ? 1
            : -1;
      let axis: number | null | undefined = attrInt(n, 'axis') ?? def;
      if (op === 'CumSum') axis = consts.get(n.input[1] ?? '')?.values?.[0] ?? null;
      if (axis === null) refuse(n, 'takes its axis from a tensor the server cannot read');
      if (normAxis(axis!, r0) === 0) refuse(n, `works along axis ${axis}, the batch axis`);
      const keep = (attrInt(n, 'keepdims') ?? 1) === 1;
      mark(
        (op === 'ArgMax' || op === 'ArgMin') && !keep && r0 !== null ? r0 - 1 : r0,
        op === 'TopK' ? n.output.slice(0, 2) : n.output.slice(0, 1),
      );
    } else if (op === 'Flatten') {
      firstOnly();
      const axis = attrInt(n, 'axis') ?? 1;
      if (normAxis(axis, r0) === 0) refuse(n, 'has axis 0, which flattens the rows together');
      mark(2);
    } else if (op === 'Squeeze' || op === 'Unsqueeze') {
      firstOnly();
      const axes = axesOf(n, 1);
      if (axes === undefined) refuse(n, `has no axes, so it also removes the batch dimension of size ${B}`);
      if (axes === null) refuse(n, 'takes its axes from a tensor the server cannot read');
      const outRank = r0 === null ? null : op === 'Squeeze' ? r0 - axes!.length : r0 + axes!.length;
      if (touchesAxis0(axes!, op === 'Squeeze' ? r0 : outRank))
        refuse(n, `${op === 'Squeeze' ? 'removes' : 'inserts'} axis 0, the batch axis`);
      mark(outRank);
    } else if (op === 'Reshape') {
      firstOnly();
      const shapeName = n.input[1]!;
      if (dynamic.has(shapeName)) {
        mark(null);
      } else {
        const c = consts.get(shapeName);
        if (!c?.values) refuse(n, 'takes its target shape from a tensor the server cannot read');
        const shape = c!.values!;
        const allowzero = (attrInt(n, 'allowzero') ?? 0) === 1;
        if (shape[0] === B && !allowzero) {
          // the batch size traced into the target shape: copy the input's first dimension instead
          const name = `dropout_serve.relaxed_shape.${serial++}`;
          g.initializer = [
            ...(g.initializer ?? []),
            { name, dims: [shape.length], data_type: DataType.INT64, int64_data: [0, ...shape.slice(1)] },
          ];
          consts.set(name, { dims: [shape.length], values: [0, ...shape.slice(1)] });
          n.input[1] = name;
          reshapes.push(n.name || n.output[0]!);
        } else if (!(shape[0] === 0 && !allowzero) && shape[0] !== -1) {
          refuse(n, `reshapes the rows to a first dimension of ${shape[0]} (target shape [${shape.join(', ')}])`);
        }
        mark(shape.length);
      }
    } else if (op === 'Expand' || op === 'Tile') {
      firstOnly();
      const c = consts.get(n.input[1] ?? '');
      if (!dynamic.has(n.input[1] ?? '')) {
        if (!c?.values)
          refuse(n, `takes its ${op === 'Tile' ? 'repeats' : 'shape'} from a tensor the server cannot read`);
        const v = c!.values!;
        if (op === 'Tile' && v[0] !== 1) refuse(n, `repeats the rows ${v[0]} times`);
        if (op === 'Expand' && r0 !== null && (v.length > r0 || (v.length === r0 && v[0] !== 1)))
          refuse(n, `expands to the shape [${v.join(', ')}], which fixes the rows`);
      }
      mark(r0);
    } else if (op === 'Concat' || op === 'Split') {
      const axis = attrInt(n, 'axis') ?? 0;
      if (normAxis(axis, r0) === 0)
        refuse(n, `${op === 'Concat' ? 'joins' : 'splits'} tensors along axis 0, the batch axis`);
      if (op === 'Concat') {
        const other = n.input.find((i) => i && !batch.has(i));
        if (other) {
          const c = consts.get(other);
          refuse(
            n,
            c
              ? `joins the rows with the constant "${other}" of shape [${c.dims.join(', ')}] along axis ${axis}`
              : `joins the rows with "${other}", which the server cannot trace`,
          );
        }
      } else firstOnly();
      mark(r0, op === 'Split' ? n.output : n.output.slice(0, 1));
    } else if (op === 'Slice') {
      firstOnly();
      const starts = opset < 10 ? attrInts(n, 'starts') : consts.get(n.input[1] ?? '')?.values;
      const ends = opset < 10 ? attrInts(n, 'ends') : consts.get(n.input[2] ?? '')?.values;
      const axes = opset < 10 ? attrInts(n, 'axes') : n.input[3] ? consts.get(n.input[3])?.values : undefined;
      if (!starts || !ends || (axes === undefined && opset >= 10 && n.input[3]))
        refuse(n, 'takes its bounds from a tensor the server cannot read');
      const ax = axes ?? starts!.map((_, k) => k);
      ax.forEach((a, k) => {
        if (normAxis(a, r0) === 0 && !(starts![k] === 0 && ends![k]! >= 2 ** 31 - 1))
          refuse(n, `slices axis 0, the batch axis ([${starts![k]}, ${ends![k]}))`);
      });
      mark(r0);
    } else if (op === 'Gather') {
      const axis = attrInt(n, 'axis') ?? 0;
      if (batchIns[0]) {
        if (batchIns[1]) refuse(n, 'reads the rows through its indices');
        if (normAxis(axis, r0) === 0) refuse(n, 'indexes axis 0, the batch axis');
        const idx = consts.get(n.input[1] ?? '');
        mark(r0 === null || !idx ? null : r0 - 1 + idx.dims.length);
      } else {
        // an embedding lookup: constant table, indices per row
        if (axis !== 0) refuse(n, 'gathers along another axis with per-row indices');
        const table = consts.get(n.input[0] ?? '');
        const ri = batch.get(n.input[1]!)!;
        mark(ri === null || !table ? null : ri + table.dims.length - 1);
      }
    } else if (op === 'Transpose') {
      firstOnly();
      const perm = attrInts(n, 'perm');
      if (!perm ? r0 !== 1 : perm[0] !== 0) refuse(n, 'moves the batch axis');
      mark(r0);
    } else if (REDUCE.has(op)) {
      firstOnly();
      const fromInput = op === 'ReduceSum' ? opset >= 13 : opset >= 18;
      const axes = fromInput
        ? n.input[1]
          ? (consts.get(n.input[1])?.values ?? null)
          : undefined
        : attrInts(n, 'axes');
      if (axes === null) refuse(n, 'takes its axes from a tensor the server cannot read');
      if (axes === undefined || axes.length === 0) {
        if ((attrInt(n, 'noop_with_empty_axes') ?? 0) !== 1)
          refuse(n, 'reduces over every axis, the batch axis included');
      } else if (touchesAxis0(axes, r0)) refuse(n, 'reduces over axis 0, the batch axis');
      const keep = (attrInt(n, 'keepdims') ?? 1) === 1;
      mark(keep || r0 === null || !axes ? r0 : r0 - axes.length);
    } else if (op === 'Pad') {
      firstOnly();
      const pads = opset < 11 ? attrInts(n, 'pads') : consts.get(n.input[1] ?? '')?.values;
      const axes = n.input[3] ? consts.get(n.input[3])?.values : undefined;
      if (!pads || (n.input[3] && !axes)) refuse(n, 'takes its pads from a tensor the server cannot read');
      const ax = axes ?? pads!.slice(0, pads!.length / 2).map((_, k) => k);
      ax.forEach((a, k) => {
        if (normAxis(a, r0) === 0 && (pads![k] !== 0 || pads![k + ax.length] !== 0))
          refuse(n, 'pads axis 0, the batch axis');
      });
      mark(r0);
    } else {
      refuse(n, 'reads the rows, and the server does not know whether this op keeps them apart');
    }
  }

  // the rewrite: a symbolic batch on the input, the outputs and the declared intermediates
  const param = (dims: Dim[] | undefined): boolean => {
    if (!dims || dims.length === 0 || dims[0]!.dim_param) return false;
    dims[0] = { dim_param: RELAXED_BATCH_DIM };
    return true;
  };
  const inputVi = g.input.find((i) => i.name === inputName)!;
  param(inputVi.type?.tensor_type?.shape?.dim);
  const outputs: string[] = [];
  for (const o of g.output) {
    if (!batch.has(o.name)) continue;
    if (param(o.type?.tensor_type?.shape?.dim)) outputs.push(o.name);
    const oi = info.outputs.find((x) => x.name === o.name);
    if (oi?.dims && oi.dims.length > 0) oi.dims[0] = null;
  }
  let valueInfo = 0;
  for (const v of g.value_info ?? []) if (batch.has(v.name) && param(v.type?.tensor_type?.shape?.dim)) valueInfo++;
  info.input.dims![0] = null;
  // nodes left without a reader by the Reshape rewrite (the Constant → Unsqueeze → Concat chain)
  if (reshapes.length) removeDeadNodes(g);
  const parts = [`input "${inputName}"`, ...outputs.map((o) => `output "${o}"`)];
  const message =
    `input "${inputName}" was exported with a fixed batch of ${B} (${shapeText}); serving any batch size: the first dimension of ${parts.join(', ')} is now symbolic` +
    (reshapes.length
      ? `, and Reshape ${reshapes.map((r) => `"${r}"`).join(', ')} now keeps the batch dimension (0) instead of the traced size ${B}`
      : '');
  return { from: B, dimParam: RELAXED_BATCH_DIM, outputs, reshapes, valueInfo, message };
}

/** Drop nodes none of whose outputs is read or a graph output (never a Dropout: inspect counted those). */
function removeDeadNodes(g: Graph): void {
  for (let changed = true; changed; ) {
    changed = false;
    const read = new Set(g.node.flatMap((n) => n.input));
    for (const o of g.output) read.add(o.name);
    const keep = g.node.filter((n) => isDropout(n) || n.output.some((o) => o && read.has(o)));
    if (keep.length !== g.node.length) {
      g.node = keep;
      changed = true;
    }
  }
}

/** One run of the load-time check: `samples` repeats of `rows` rows in one MC run. */
export interface CheckRun {
  rows: number;
  samples: number;
  /** Which request shape it stands for (named in the error). */
  why: string;
}

/**
 * The MC runs the load-time check makes, in this order in one session: the shapes requests produce
 * (one row; a few rows; one sample and several; a batch of 32; a large request's full chunk of
 * ≤ maxRunRows rows followed by its shorter last chunk; the largest run of one row; a request of
 * maxRunRows rows, one sample per run). A graph whose declared shapes are false for tiled rows (the
 * dynamo exporter's value_info) fails here instead of at request time: the old check ran one sample
 * only, where tiling changes nothing.
 */
export function selfCheckPlan(maxRunRows: number): CheckRun[] {
  const M = Math.max(1, Math.floor(maxRunRows));
  const plan: CheckRun[] = [
    { rows: 1, samples: 1, why: 'one row, one sample' },
    { rows: 3, samples: 1, why: 'a few rows, one sample' },
    { rows: 1, samples: 2, why: 'one row, two samples' },
    { rows: 3, samples: 5, why: 'a few rows, several samples' },
    { rows: 32, samples: Math.max(1, Math.min(10, Math.floor(M / 32))), why: 'a batch of 32 rows' },
  ];
  const full = Math.floor(M / 7);
  if (full >= 2) {
    plan.push({ rows: 7, samples: full, why: `a full chunk of a large request (${7 * full} ≤ ${M} rows in one run)` });
    plan.push({ rows: 7, samples: Math.max(1, Math.floor(full / 3)), why: "the same request's shorter last chunk" });
  }
  plan.push({ rows: 1, samples: M, why: `one row, the largest run (${M} samples)` });
  plan.push({ rows: M, samples: 1, why: `a request of ${M} rows (one sample per run)` });
  return plan;
}

/** What the load-time check drives: the graphs the loader built, run as requests run them. */
export interface ServingRuns {
  features: number;
  /** Values per row of the output served (classes for a classifier). */
  outputSize: number;
  maxRunRows: number;
  /** The eval graph on `rows` rows (rows × features), returning rows × outputSize values. */
  evalRun(x: Float32Array, rows: number): Promise<Float32Array>;
  /**
   * Each MC graph the loader built (plain, shared prefix): one run of `samples` repeats of `rows` rows
   * with every dropout mask 1, exactly as a request runs it otherwise (same feeds, same repeats input),
   * returning samples × rows × outputSize values, sample-major.
   */
  mcGraphs: { label: string; runOnes(x: Float32Array, rows: number, samples: number): Promise<Float32Array> }[];
}

/**
 * The load-time self-check: throws ModelFormatError naming the graph, the run and the reason when
 *  1. the eval graph does not treat rows independently: on 2, 7 and 32 rows, each row must equal a run
 *     of that row alone (this is what a relaxed fixed batch relies on), or a run fails;
 *  2. an MC graph fails or differs from the eval graph, with masks of 1, for any run of selfCheckPlan:
 *     row t·N + i of each run must equal eval row i (the rows are tiled sample-major), and the output
 *     must hold samples × rows × outputSize values.
 * Values agree within 1e-4 relative (float32 kernels differ with the batch size).
 */
export async function selfCheck(runs: ServingRuns, plan: CheckRun[] = selfCheckPlan(runs.maxRunRows)): Promise<void> {
  const F = runs.features;
  const K = runs.outputSize;
  const maxRows = Math.max(32, ...plan.map((p) => p.rows));
  const x = checkInput(maxRows * F);
  const close = (a: number, b: number): boolean =>
    Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(b)) || (Number.isNaN(a) && Number.isNaN(b));
  // onnxruntime's messages carry its source location before the reason: keep the reason
  const firstLine = (err: unknown): string =>
    String((err as Error)?.message ?? err)
      .split('\n')[0]!
      .replace(/\/\S+\.cc:\d+ .*?\[ONNXRuntimeError\] : \d+ : \w+ : /, '')
      .slice(0, 400);
  const evalOf = async (rows: number, what: string, at = 0): Promise<Float32Array> => {
    let out: Float32Array;
    try {
      out = await runs.evalRun(x.slice(at * F, (at + rows) * F), rows);
    } catch (err) {
      throw new ModelFormatError(`self-check: the eval graph fails for ${rows} rows (${what}): ${firstLine(err)}`);
    }
    if (out.length !== rows * K)
      throw new ModelFormatError(
        `self-check: the eval graph gives ${out.length} values for ${rows} rows (${what}); ${rows * K} expected`,
      );
    return out.slice();
  };
  // 1. rows are independent in the eval graph
  const single: Float32Array[] = [];
  for (let i = 0; i < 32; i++) single.push(await evalOf(1, 'one row', i));
  for (const rows of [2, 7, 32]) {
    const out = await evalOf(rows, `a batch of ${rows}`);
    for (let i = 0; i < rows; i++) {
      for (let k = 0; k < K; k++) {
        if (!close(out[i * K + k]!, single[i]![k]!)) {
          throw new ModelFormatError(
            `self-check: the eval graph gives ${out[i * K + k]} for row ${i} of a batch of ${rows} but ${single[i]![k]} for that row alone: the graph mixes rows, so it cannot serve batches`,
          );
        }
      }
    }
  }
  // 2. each MC graph, with masks of 1, repeats the eval graph for every run shape requests produce
  const evalCache = new Map<number, Float32Array>();
  for (const g of runs.mcGraphs) {
    for (const run of plan) {
      const ref = evalCache.get(run.rows) ?? (await evalOf(run.rows, run.why));
      evalCache.set(run.rows, ref);
      const what = `the ${g.label} Monte Carlo graph for ${run.rows} rows × ${run.samples} samples (${run.why})`;
      let out: Float32Array;
      try {
        out = await g.runOnes(x.slice(0, run.rows * F), run.rows, run.samples);
      } catch (err) {
        throw new ModelFormatError(`self-check: ${what} fails: ${firstLine(err)}`);
      }
      if (out.length !== run.samples * run.rows * K)
        throw new ModelFormatError(
          `self-check: ${what} gives ${out.length} values; ${run.samples * run.rows * K} expected`,
        );
      for (let t = 0; t < run.samples; t++) {
        for (let j = 0; j < run.rows * K; j++) {
          const v = out[t * run.rows * K + j]!;
          if (!close(v, ref[j]!)) {
            throw new ModelFormatError(
              `self-check: ${what} with dropout masks of 1 gives ${v} for sample ${t} of row ${Math.floor(j / K)} where the eval graph gives ${ref[j]}`,
            );
          }
        }
      }
    }
  }
}

/** Deterministic standard-normal-like inputs for the self-check (sum of 4 uniforms from an LCG, scaled). */
function checkInput(n: number): Float32Array {
  const out = new Float32Array(n);
  let s = 0x2545f491;
  const u = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  for (let i = 0; i < n; i++) out[i] = (u() + u() + u() + u() - 2) * Math.sqrt(3);
  return out;
}
