/**
 * Batch relaxation: serve a graph exported with a fixed batch at any batch size, when every node that
 * reads the rows keeps them apart (the op rules of relax-rules.ts), and say what was changed.
 */
import type { Dim, Graph, Model, Node } from '../../onnx-proto/proto.js';
import { isDropout } from './graph-query.js';
import { type GraphInfo, ModelFormatError } from './inspect.js';
import { type ConstValue, constantNodeValue, foldConst, tensorConst } from './relax-consts.js';
import { BATCH_RULES, type BatchTrace, type NodeView } from './relax-rules.js';

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
  const trace: BatchTrace = {
    graph: g,
    batchSize: B,
    opset: info.opset,
    consts: new Map<string, ConstValue>(),
    dynamic: new Set<string>(),
    batch: new Map<string, number | null>([[info.input.name, info.input.dims!.length]]),
    reshapes: [],
  };
  for (const t of g.initializer ?? []) if (t.name) trace.consts.set(t.name, tensorConst(t));
  const refuse = refusal(info, g);
  for (const n of g.node) traceNode(n, trace, refuse);
  return makeBatchSymbolic(g, info, trace);
}

/** The refusal for a node: the reason, and the re-export that serves any batch. */
function refusal(info: GraphInfo, g: Graph): (n: Node, why: string) => never {
  const inputName = info.input.name;
  const outNames = g.output.map((o) => o.name);
  return (n, why) => {
    throw new ModelFormatError(
      `${fixedBatchText(info)} and node "${n.name || n.output[0]}" (${n.op_type}) ${why}, so the graph cannot serve another batch size. ` +
        `Re-export with a dynamic batch: torch.onnx.export(..., input_names=["${inputName}"], output_names=[${outNames.map((o) => `"${o}"`).join(', ')}], ` +
        `dynamic_axes={${[inputName, ...outNames].map((t) => `"${t}": {0: "batch"}`).join(', ')}}), or with dynamo=True and dynamic_shapes={"${inputName}": {0: torch.export.Dim("batch")}}`,
    );
  };
}

const fixedBatchText = (info: GraphInfo): string =>
  `input "${info.input.name}" was exported with a fixed batch of ${info.input.dims![0]} ([${info.input.dims!.map((d) => d ?? '?').join(', ')}])`;

/** One step of the walk: constants and shape-derived values are recorded, a node reading rows meets its rule. */
function traceNode(n: Node, trace: BatchTrace, refuse: (n: Node, why: string) => never): void {
  const { consts, dynamic, batch } = trace;
  if (n.op_type === 'Constant') {
    const value = constantNodeValue(n);
    if (value && n.output[0]) consts.set(n.output[0], value);
    return;
  }
  const batchIns = n.input.map((i) => (i && batch.has(i) ? i : null));
  if (!batchIns.some(Boolean)) {
    if (n.input.some((i) => i && dynamic.has(i))) {
      for (const o of n.output) if (o) dynamic.add(o);
    } else foldConst(n, consts);
    return;
  }
  if (n.domain && n.domain !== 'ai.onnx') refuse(n, `is a custom op (domain ${n.domain}) the server cannot check`);
  const view: NodeView = {
    n,
    trace,
    batchIns,
    r0: batchIns[0] ? batch.get(n.input[0]!)! : null,
    refuse: (why) => refuse(n, why),
    mark: (rank, outputs = n.output.slice(0, 1)) => {
      for (const o of outputs) if (o) batch.set(o, rank);
    },
  };
  const rule = BATCH_RULES.get(n.op_type);
  if (!rule) view.refuse('reads the rows, and the server does not know whether this op keeps them apart');
  rule!(view);
}

/** The rewrite: a symbolic batch on the input, the outputs and the declared intermediates; the log line. */
function makeBatchSymbolic(g: Graph, info: GraphInfo, trace: BatchTrace): BatchRelaxation {
  const B = trace.batchSize;
  const inputName = info.input.name;
  const param = (dims: Dim[] | undefined): boolean => {
    if (!dims || dims.length === 0 || dims[0]!.dim_param) return false;
    dims[0] = { dim_param: RELAXED_BATCH_DIM };
    return true;
  };
  param(g.input.find((i) => i.name === inputName)!.type?.tensor_type?.shape?.dim);
  const outputs: string[] = [];
  for (const o of g.output) {
    if (!trace.batch.has(o.name)) continue;
    if (param(o.type?.tensor_type?.shape?.dim)) outputs.push(o.name);
    const oi = info.outputs.find((x) => x.name === o.name);
    if (oi?.dims && oi.dims.length > 0) oi.dims[0] = null;
  }
  let valueInfo = 0;
  for (const v of g.value_info ?? [])
    if (trace.batch.has(v.name) && param(v.type?.tensor_type?.shape?.dim)) valueInfo++;
  const fixed = fixedBatchText(info);
  info.input.dims![0] = null;
  const { reshapes } = trace;
  // nodes left without a reader by the Reshape rewrite (the Constant → Unsqueeze → Concat chain)
  if (reshapes.length) removeDeadNodes(g);
  const parts = [`input "${inputName}"`, ...outputs.map((o) => `output "${o}"`)];
  const message =
    `${fixed}; serving any batch size: the first dimension of ${parts.join(', ')} is now symbolic` +
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
