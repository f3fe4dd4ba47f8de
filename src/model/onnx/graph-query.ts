/**
 * Questions about a decoded ONNX graph that inspection and the rewrites share: its constant values, a
 * tensor's readers, whether a tensor is a graph output, whether a node is a Dropout, and a deep copy.
 */
import { type Graph, type Model, type Node, tensorValues, toNumber } from '../../onnx-proto/proto.js';

/** Values of the graph's constants: initializers and Constant nodes with a `value` tensor. */
export function constants(graph: Graph): Map<string, number[]> {
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

/** The nodes that read `tensor`. */
export function consumers(graph: Graph, tensor: string): Node[] {
  return graph.node.filter((n) => n.input.includes(tensor));
}

export function isGraphOutput(graph: Graph, tensor: string): boolean {
  return graph.output.some((o) => o.name === tensor);
}

/** A standard-domain Dropout node (a custom domain's Dropout is another op). */
export const isDropout = (n: Node): boolean => n.op_type === 'Dropout' && (!n.domain || n.domain === 'ai.onnx');

/** Deep-copy a decoded model (plain data, Uint8Arrays and Longs) so each rewrite starts fresh. */
export function cloneModel(model: Model): Model {
  return structuredClone(model, {}) as Model;
}

/** Ops that sum products (each adds float32 rounding that later layers carry on). */
const ACCUMULATING_OPS = new Set([
  'Conv',
  'ConvTranspose',
  'ConvInteger',
  'Gemm',
  'MatMul',
  'MatMulInteger',
  'Einsum',
  'Attention',
  'LSTM',
  'GRU',
  'RNN',
]);

/** How many nodes sum products: the depth of a chain, an upper bound for a graph with branches. */
export const accumulatingLayers = (graph: Graph): number =>
  graph.node.filter((n) => ACCUMULATING_OPS.has(n.op_type)).length;
