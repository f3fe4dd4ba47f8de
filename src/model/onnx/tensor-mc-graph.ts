/**
 * The Monte Carlo graph of a tensor model, planned from the probed shape laws (tensor-mc-shapes.ts):
 * every live Dropout becomes Mul(x, mask) with a mask input of the Dropout input's own runtime shape
 * (rewrite.ts mcGraph), and the samples run as one batch of T·N rows, sample-major. The shared prefix —
 * the nodes no live Dropout reaches — runs once on the N rows; the tensors it hands to the repeated part
 * (the frontier) are tiled T times along their batch axis. A frontier tensor whose batch axis is unclear
 * (a Shape-derived value such as the batch size, read by a later Reshape) cannot be tiled: its producer
 * moves into the repeated part, which recomputes it from tiled inputs, until every frontier tensor is
 * tileable or free of the batch. With the shared prefix off, the frontier is the data inputs.
 */
import type { Model as OnnxProto, Node } from '../../onnx-proto/proto.js';
import { cloneModel, isDropout } from './graph-query.js';
import { ModelFormatError } from './inspect.js';
import { type DropoutGraph, maskInputName, mcGraph } from './rewrite.js';
import {
  type DimLaw,
  type ShapeLaws,
  type TensorLaw,
  batchAxis,
  batchFree,
  elementsPerRow,
} from './tensor-mc-shapes.js';

/** A tensor the MC graph tiles T times along `axis` (its Tile's repeats input has `rank` values). */
export interface TileSpec {
  tensor: string;
  axis: number;
  rank: number;
}

/** The mask input of one live Dropout: the shape law of the Dropout's input and the rate. */
export interface MaskLaw {
  input: string;
  dropout: string;
  law: DimLaw[];
  ratio: number;
}

/** How a tensor model samples, for the laws of one input shape. */
export interface McPlan {
  /** Indices of the nodes that run once per row (graph order). */
  prefix: number[];
  /** Indices of the nodes that run once per sample and row (graph order). */
  repeated: number[];
  tiles: TileSpec[];
  masks: MaskLaw[];
  /** Activation bytes one row adds to a run, in the repeated part (per sample) and in the prefix (once). */
  bytesPerRow: { repeated: number; prefix: number };
  /** Nodes moved from the prefix into the repeated part because a tensor they make could not be tiled. */
  moved: number;
  /** Identifies the graph this plan needs (plans of other input shapes may share it). */
  key: string;
}

/** What planning needs to know of the model. */
export interface PlanInput {
  model: OnnxProto;
  info: DropoutGraph;
  dataInputs: readonly string[];
  outputName: string;
  sharedPrefix: boolean;
}

const lawOrThrow = (laws: ShapeLaws, t: string): TensorLaw => {
  const law = laws.get(t);
  if (!law) throw new ModelFormatError(`the probe did not see tensor "${t}"`);
  return law;
};

/** The live Dropout nodes' indices, in graph order (info.dropouts is in the same order). */
function liveDropouts(nodes: readonly Node[], info: DropoutGraph): Map<number, number> {
  const live = new Map<number, number>();
  let d = 0;
  nodes.forEach((n, i) => {
    if (!isDropout(n)) return;
    if (info.dropouts[d]!.ratio > 0) live.set(i, d);
    d++;
  });
  return live;
}

/** The nodes that read, directly or not, an output of a seed node (the seeds included). */
function downstream(nodes: readonly Node[], seeds: ReadonlySet<number>): Set<number> {
  const out = new Set<number>();
  const tainted = new Set<string>();
  nodes.forEach((n, i) => {
    if (!seeds.has(i) && !n.input.some((t) => tainted.has(t))) return;
    out.add(i);
    for (const o of n.output) if (o) tainted.add(o);
  });
  return out;
}

/** Tensors the repeated nodes read that the prefix makes or the graph inputs hold. */
function frontierOf(nodes: readonly Node[], repeated: ReadonlySet<number>, dataInputs: readonly string[]): string[] {
  const fromPrefix = new Set(dataInputs);
  nodes.forEach((n, i) => {
    if (!repeated.has(i)) for (const o of n.output) if (o) fromPrefix.add(o);
  });
  const out = new Set<string>();
  for (const i of repeated) for (const t of nodes[i]!.input) if (t && fromPrefix.has(t)) out.add(t);
  return [...out];
}

/** The repeated nodes: those a live Dropout reaches, grown until the frontier can be tiled. */
function partition(p: PlanInput, laws: ShapeLaws): { repeated: Set<number>; frontier: string[]; moved: number } {
  const nodes = p.model.graph!.node;
  const seeds = new Set(p.sharedPrefix ? liveDropouts(nodes, p.info).keys() : nodes.keys());
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => {
    for (const o of n.output) if (o) producer.set(o, i);
  });
  let moved = 0;
  for (;;) {
    const repeated = downstream(nodes, seeds);
    const frontier = frontierOf(nodes, repeated, p.dataInputs);
    const unclear = frontier.filter((t) => {
      const law = lawOrThrow(laws, t);
      return batchAxis(law) === null && !batchFree(law);
    });
    if (unclear.length === 0) return { repeated, frontier, moved };
    for (const t of unclear) {
      const at = producer.get(t);
      if (at === undefined)
        throw new ModelFormatError(`input "${t}" does not carry the batch along one axis: it cannot be tiled`);
      seeds.add(at);
      moved++;
    }
  }
}

/** Plan the MC graph for the laws of one input shape. Throws ModelFormatError when it cannot be sampled. */
export function planMc(p: PlanInput, laws: ShapeLaws): McPlan {
  const nodes = p.model.graph!.node;
  const { repeated, frontier, moved } = partition(p, laws);
  const outIdx = nodes.findIndex((n) => n.output.includes(p.outputName));
  if (!repeated.has(outIdx))
    throw new ModelFormatError(`no live Dropout reaches output "${p.outputName}": Monte Carlo would change nothing`);
  const tiles = frontier.flatMap((t) => {
    const law = lawOrThrow(laws, t);
    const axis = batchAxis(law);
    return axis === null ? [] : [{ tensor: t, axis, rank: law.dims.length }];
  });
  const masks = [...liveDropouts(nodes, p.info).values()].map((d, k) => {
    const dropout = p.info.dropouts[d]!;
    return {
      input: maskInputName(k),
      dropout: dropout.name,
      law: lawOrThrow(laws, dropout.input).dims,
      ratio: dropout.ratio,
    };
  });
  const prefix = [...nodes.keys()].filter((i) => !repeated.has(i));
  const rep = [...repeated].sort((a, b) => a - b);
  return {
    prefix,
    repeated: rep,
    tiles,
    masks,
    bytesPerRow: bytesPerRow(nodes, laws, rep, prefix, tiles, masks, p.dataInputs),
    moved,
    key: `${rep.join(',')}|${tiles.map((t) => `${t.tensor}@${t.axis}`).join(',')}`,
  };
}

/** Bytes per row of the tensors' laws (elements a row adds × element size). */
const bytesOf = (laws: ShapeLaws, tensors: Iterable<string>): number => {
  let sum = 0;
  for (const t of tensors) {
    const law = laws.get(t);
    if (law) sum += Math.max(0, elementsPerRow(law)) * law.elementBytes;
  }
  return sum;
};

/**
 * Activation bytes per row, an upper bound: the sum of every tensor's size (onnxruntime reuses buffers,
 * so its peak is below it). Repeated part, per sample: the repeated nodes' outputs, the tiled tensors,
 * and each mask twice (the host buffer and onnxruntime's input). Prefix, once: its outputs and the inputs.
 */
function bytesPerRow(
  nodes: readonly Node[],
  laws: ShapeLaws,
  repeated: readonly number[],
  prefix: readonly number[],
  tiles: readonly TileSpec[],
  masks: readonly MaskLaw[],
  dataInputs: readonly string[],
): McPlan['bytesPerRow'] {
  const outs = (idx: readonly number[]) => idx.flatMap((i) => nodes[i]!.output.filter(Boolean));
  const maskBytes = masks.reduce((s, m) => s + 2 * 4 * Math.max(0, sizeAt(m.law, 2) - sizeAt(m.law, 1)), 0);
  return {
    repeated:
      bytesOf(laws, outs(repeated)) +
      bytesOf(
        laws,
        tiles.map((t) => t.tensor),
      ) +
      maskBytes,
    prefix: bytesOf(laws, outs(prefix)) + bytesOf(laws, dataInputs),
  };
}

const sizeAt = (law: readonly DimLaw[], B: number): number => law.reduce((s, d) => s * (d.c + d.k * B), 1);

/** The ONNX bytes of the MC graph of a plan: prefix nodes, then the tiles, then the repeated nodes. */
export function mcGraphOf(p: PlanInput, plan: McPlan): Uint8Array {
  const m = cloneModel(p.model);
  const nodes = m.graph!.node;
  const order = [...plan.prefix, ...plan.repeated];
  // mcGraph pairs Dropout nodes with info.dropouts in node order: a rate-0 Dropout left in the prefix moves
  const dropoutOf = new Map<number, number>();
  nodes.forEach((n, i) => {
    if (isDropout(n)) dropoutOf.set(i, dropoutOf.size);
  });
  const dropouts = order.filter((i) => dropoutOf.has(i)).map((i) => p.info.dropouts[dropoutOf.get(i)!]!);
  m.graph!.node = order.map((i) => nodes[i]!);
  return mcGraph(m, { ...p.info, dropouts }, { index: plan.prefix.length, tensors: plan.tiles.map((t) => t.tensor) });
}
