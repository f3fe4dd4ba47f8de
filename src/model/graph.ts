/**
 * Inspect and rewrite ONNX graphs so that dropout is switched per run, whatever the exporter wrote.
 *
 * A model arrives with Dropout nodes whose training_mode is a graph input (our exporter), a constant
 * `true` (PyTorch's train-mode exports, legacy and dynamo) or absent (eval semantics). Rather than
 * trusting those flags and onnxruntime's optimiser (whose EliminateDropout rule deletes Dropout nodes
 * even in training mode), the runtime builds two graphs at load time:
 *  - eval graph: every Dropout becomes Identity (predict, dropout off);
 *  - MC graph: every Dropout becomes Mul(x, mask_k), with `mask_k` a new graph input holding the
 *    inverted-dropout multipliers (0 or 1/(1−p)), and the input rows are repeated T times inside the
 *    graph (Tile). Masks are drawn in JS from a seeded generator, so a request's `seed` reproduces its
 *    answer exactly, across calls and restarts (ORT's Dropout `seed` attribute is fixed per session,
 *    not per run), and they measured faster than onnxruntime's own Dropout kernel.
 * In both, BatchNormalization exported in training mode is set back to inference mode (running
 * statistics), unlike PyTorch's model.train() which would switch both.
 */
import { DataType, type Graph, type Model, type Node, type ValueInfo, decodeModel, encodeModel, tensorValues, toNumber } from '../onnx/proto.js';

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
export const repeatsInputName = (j: number): string => `dropout_serve.repeats.${j}`;

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

/**
 * Feed the per-row tensors once and let the graph repeat them: each source S (a graph input of N rows)
 * goes through Tile(S, dropout_serve.repeats.j) with repeats [T, 1, …], giving T·N rows in
 * sample-major order (row t·N + i is sample t of row i). onnxruntime copies in C++; tiling in JS cost
 * more than the network itself for small models.
 */
function withTiling(m: Model, sources: string[]): Model {
  const g = m.graph!;
  const tiled = new Map(sources.map((s) => [s, `${s}.dropout_serve_tiled`]));
  for (const n of g.node) n.input = n.input.map((i) => tiled.get(i) ?? i);
  const tileNodes: Node[] = sources.map((s, j) => ({ op_type: 'Tile', input: [s, repeatsInputName(j)], output: [tiled.get(s)!], name: `dropout_serve/tile.${j}` }));
  g.node = [...tileNodes, ...g.node];
  sources.forEach((_, j) => g.input.push({ name: repeatsInputName(j), type: { tensor_type: { elem_type: DataType.INT64, shape: { dim: [{ dim_param: 'rank' }] } } } }));
  return m;
}

/** The MC graph on the input rows: repeats them T times (Tile), dropouts as mask inputs. */
export function mcGraph(model: Model, info: GraphInfo): Uint8Array {
  return encodeModel(withTiling(maskedModel(model, info), [info.input.name]));
}

export interface SplitGraphs {
  /** Deterministic part: every node before the first live dropout; outputs the boundary tensors. */
  prefix: Uint8Array;
  /** The rest: the boundary tensors (repeated T times inside) and the masks as inputs. */
  suffix: Uint8Array;
  /** Tensors passed from prefix to suffix (each [batch, ...]). */
  boundary: string[];
  /** Multiply-adds per row in the prefix (weights of its Gemm/MatMul/Conv nodes): what a split saves per extra sample. */
  prefixMacsPerRow: number;
}

/**
 * Split the MC graph at the first live dropout (the "shared prefix"): everything before it is the same
 * for every Monte Carlo sample, so it runs once on the N rows and only its outputs are repeated T times
 * for the suffix. Nodes are in topological order (ONNX requires it), so the nodes before the first
 * dropout depend on no mask. Constant nodes the suffix needs are copied into it. Returns null when
 * there is nothing to share (the first dropout acts on the input itself, or the suffix also reads the
 * raw input).
 */
export function splitMcGraph(model: Model, info: GraphInfo): SplitGraphs | null {
  const liveIdx = info.dropouts.findIndex((d) => d.ratio > 0);
  if (liveIdx < 0) return null;
  let seen = -1;
  const first = model.graph!.node.findIndex((n) => isDropout(n) && ++seen === liveIdx);
  const m = maskedModel(model, info);
  const g = m.graph!;
  const prefixNodes = g.node.slice(0, first);
  const suffixNodes = g.node.slice(first);
  const produced = new Map<string, Node>();
  for (const n of prefixNodes) for (const o of n.output) if (o) produced.set(o, n);
  const suffixConstants: Node[] = [];
  const boundary: string[] = [];
  const need = new Set<string>([...suffixNodes.flatMap((n) => n.input), ...g.output.map((o) => o.name)]);
  for (const t of need) {
    const src = produced.get(t);
    if (!src) continue;
    if (src.op_type === 'Constant') suffixConstants.push(src);
    else boundary.push(t);
  }
  if (boundary.length === 0 || need.has(info.input.name) || prefixNodes.every((n) => n.op_type === 'Constant')) return null;
  const floatInfo = (name: string): ValueInfo => ({ name, type: { tensor_type: { elem_type: DataType.FLOAT } } });
  const prefix = cloneModel(m);
  prefix.graph!.node = prefixNodes;
  prefix.graph!.input = g.input.filter((i) => !i.name.startsWith('dropout_serve.mask.'));
  prefix.graph!.output = boundary.map(floatInfo);
  const suffix = cloneModel(m);
  suffix.graph!.node = [...new Set(suffixConstants)].concat(suffixNodes);
  suffix.graph!.input = [...g.input.filter((i) => i.name.startsWith('dropout_serve.mask.')), ...boundary.map(floatInfo)];
  withTiling(suffix, boundary);
  const weightSize = new Map((model.graph!.initializer ?? []).map((t) => [t.name ?? '', (t.dims ?? []).reduce<number>((a, dim) => a * toNumber(dim), 1)]));
  const prefixMacsPerRow = prefixNodes
    .filter((n) => n.op_type === 'Gemm' || n.op_type === 'MatMul' || n.op_type === 'Conv')
    .reduce((sum, n) => sum + (weightSize.get(n.input[1] ?? '') ?? 0), 0);
  return { prefix: encodeModel(prefix), suffix: encodeModel(suffix), boundary, prefixMacsPerRow };
}

/** An eval graph that also outputs the inputs of every Dropout (to learn their per-row shapes). */
export function probeGraph(model: Model, info: GraphInfo): Uint8Array {
  const m = cloneModel(model);
  const g = m.graph!;
  const existing = new Set(g.output.map((o) => o.name));
  for (const d of info.dropouts) {
    if (!existing.has(d.input)) {
      g.output.push({ name: d.input, type: { tensor_type: { elem_type: DataType.FLOAT } } });
      existing.add(d.input);
    }
  }
  return evalGraph(m, info);
}
