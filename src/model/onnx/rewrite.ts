/**
 * The rewrites that switch dropout per run, whatever the exporter wrote.
 *
 * A model arrives with Dropout nodes whose training_mode is a graph input (our exporter), a constant
 * `true` (PyTorch's train-mode exports, legacy and dynamo) or absent (eval semantics). Rather than
 * trusting those flags and onnxruntime's optimiser (whose EliminateDropout rule deletes Dropout nodes
 * even in training mode), the runtime builds two graphs at load time:
 *  - eval graph: every Dropout becomes Identity (predict, dropout off);
 *  - MC graph: every Dropout becomes Mul(x, mask_k), with `mask_k` a new graph input holding the
 *    inverted-dropout multipliers (0 or 1/(1−p)), and the rows are repeated T times inside the graph
 *    (Tile), after the shared prefix when there is one. Masks are drawn in JS from a seeded generator,
 *    so a request's `seed` reproduces its answer exactly, across calls and restarts (ORT's Dropout
 *    `seed` attribute is fixed per session, not per run), and they measured faster than onnxruntime's
 *    own Dropout kernel.
 * In both, BatchNormalization exported in training mode is set back to inference mode (running
 * statistics), unlike PyTorch's model.train() which would switch both. The probe graph is the eval
 * graph with more outputs, to learn shapes.
 */
import { DataType, type Graph, type Model, type Node, encodeModel, toNumber } from '../../onnx-proto/proto.js';
import { cloneModel, consumers, isDropout, isGraphOutput } from './graph-query.js';
import { type GraphInfo, ModelFormatError } from './inspect.js';
import { rewriteMaskedHeads } from './mc-head.js';

/** BatchNormalization exported in training mode → inference mode, keeping only its first output. */
export function freezeBatchNorm(graph: Graph): void {
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

export function dropControlInputs(graph: Graph, control: string[]): void {
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

/** What the Dropout rewrites read of a graph's inspection: its Dropouts in node order and its switch inputs. */
export type DropoutGraph = Pick<GraphInfo, 'dropouts' | 'controlInputs'>;

/** The eval graph: Dropout → Identity. */
export function evalGraph(model: Model, info: DropoutGraph): Uint8Array {
  const m = cloneModel(model);
  const g = m.graph!;
  for (const n of g.node) {
    if (isDropout(n)) {
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

const MASK_INPUT = 'dropout_serve.mask.';
export const maskInputName = (k: number): string => `${MASK_INPUT}${k}`;

/**
 * The graph for Monte Carlo passes: the k-th live Dropout becomes Mul(x, dropout_serve.mask.k), a
 * float32 input of the dropout's input shape (batch first) holding 0 or 1/(1−p), drawn in JS from a
 * seeded generator, so a request's seed reproduces its answer. Rate-0 dropouts become Identity. Node
 * order and count are unchanged.
 */
function maskedModel(model: Model, info: DropoutGraph): Model {
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
 * rest on T·N rows; onnxruntime does the copying in C++. `masking` turns the dropouts into masks
 * (mask inputs by default; graph-masks.ts hashMaskedModel draws them in the graph).
 */
export function mcGraph<I extends DropoutGraph>(
  model: Model,
  info: I,
  at: TilePoint,
  masking: (model: Model, info: I) => Model = maskedModel,
): Uint8Array {
  const m = masking(model, info);
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
  for (let j = 0; j < at.tensors.length; j++) {
    g.input.push({
      name: repeatsInputName(j),
      type: { tensor_type: { elem_type: DataType.INT64, shape: { dim: [{ dim_param: 'rank' }] } } },
    });
  }
  // a masked one-column head reads its masks by broadcast instead of a Tile (mc-head.ts)
  rewriteMaskedHeads(m, (name) => name.startsWith(MASK_INPUT));
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
