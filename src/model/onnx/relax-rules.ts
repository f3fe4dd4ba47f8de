/**
 * What batch relaxation (relax-batch.ts) knows about each op: a table from op type to the rule that
 * checks, for a node reading a tensor that carries the rows on axis 0, that the node keeps the rows
 * apart and does not bake the batch size, and records which of its outputs carry the rows and their
 * rank. A rule refuses (view.refuse) with the reason; an op missing from the table is refused.
 */
import { DataType, type Graph, type Node, toNumber } from '../../onnx-proto/proto.js';
import type { ConstValue } from './relax-consts.js';

/** What the walk has learnt so far about the graph's tensors. */
export interface BatchTrace {
  graph: Graph;
  /** The fixed batch size the file declares. */
  batchSize: number;
  opset: number;
  consts: Map<string, ConstValue>;
  /** Values computed from run-time shapes (Shape, Size): they follow the real batch size. */
  dynamic: Set<string>;
  /** Tensors carrying the rows on axis 0 → their rank (null when unknown). */
  batch: Map<string, number | null>;
  /** Reshape nodes whose baked batch size was rewritten to 0 (copy the input's). */
  reshapes: string[];
}

/** One node under a rule. */
export interface NodeView {
  n: Node;
  trace: BatchTrace;
  /** Per input: its name when it carries the rows, else null. */
  batchIns: (string | null)[];
  /** The rank of input 0 when it carries the rows (null: unknown, or it does not). */
  r0: number | null;
  /** Throw the ModelFormatError naming this node, the reason and the re-export to make. */
  refuse(why: string): never;
  /** Record `outputs` (the first output by default) as carrying the rows with this rank. */
  mark(rank: number | null, outputs?: string[]): void;
}

type Rule = (v: NodeView) => void;

const attrInt = (n: Node, name: string): number | undefined => {
  const a = n.attribute?.find((x) => x.name === name);
  return a && a.i !== undefined && a.i !== null ? toNumber(a.i) : undefined;
};
const attrInts = (n: Node, name: string): number[] | undefined =>
  n.attribute?.find((x) => x.name === name)?.ints?.map(toNumber);
const normAxis = (a: number, rank: number | null): number | null => (a >= 0 ? a : rank === null ? null : a + rank);
const touchesAxis0 = (axes: number[], rank: number | null): boolean => axes.some((a) => normAxis(a, rank) === 0);
const constOf = (v: NodeView, index: number): ConstValue | undefined => v.trace.consts.get(v.n.input[index] ?? '');
const firstOutputs = (n: Node, count: number): string[] => n.output.slice(0, count);

/** Refuse the node (a declared function, so that the compiler narrows after a call). */
function refuse(v: NodeView, why: string): never {
  return v.refuse(why);
}

/** The rows come only through the data input (input 0); the others are parameters. */
function firstOnly(v: NodeView): void {
  if (!v.batchIns[0]) refuse(v, 'reads the rows through an input other than its data input');
  if (v.batchIns.slice(1).some(Boolean)) refuse(v, 'reads the rows through a parameter input');
}

/** Axes from an attribute (older opsets) or a constant input; undefined when absent, null when not constant. */
function axesOf(v: NodeView, inputIndex: number): number[] | null | undefined {
  const fromAttr = attrInts(v.n, 'axes');
  if (fromAttr) return fromAttr;
  if (!v.n.input[inputIndex]) return undefined;
  return constOf(v, inputIndex)?.values ?? null;
}

const shapeOf: Rule = (v) => {
  for (const o of v.n.output) if (o) v.trace.dynamic.add(o);
};

/** Elementwise on one data input (the others, if any, are scalars or attributes). */
const rowwise =
  (outputs: number): Rule =>
  (v) => {
    firstOnly(v);
    v.mark(v.r0, firstOutputs(v.n, outputs));
  };

/** Elementwise with numpy broadcasting over all inputs: every input carrying rows has the result's rank. */
const broadcast: Rule = (v) => {
  const { batch, consts, dynamic } = v.trace;
  const ranks = v.n.input.map((i) => (!i ? 0 : batch.has(i) ? batch.get(i)! : (consts.get(i)?.dims.length ?? null)));
  const R = ranks.every((x) => x !== null) ? Math.max(...(ranks as number[])) : null;
  v.n.input.forEach((i, k) => {
    if (!i) return;
    if (batch.has(i)) {
      if (R !== null && ranks[k] !== R)
        refuse(v, `broadcasts the rows of "${i}" (rank ${ranks[k]}) against a rank-${R} tensor`);
    } else if (consts.has(i)) {
      const c = consts.get(i)!;
      if (
        (R === null || c.dims.length === R) &&
        c.dims.length > 0 &&
        c.dims[0] !== 1 &&
        (R !== null || c.dims.length > 1)
      )
        refuse(
          v,
          `combines the rows with the constant "${i}" of shape [${c.dims.join(', ')}], whose first dimension is the batch`,
        );
    } else if (!dynamic.has(i)) {
      refuse(v, `combines the rows with "${i}", which the server cannot trace`);
    }
  });
  v.mark(R);
};

const gemm: Rule = (v) => {
  firstOnly(v);
  if ((attrInt(v.n, 'transA') ?? 0) !== 0) refuse(v, 'has transA=1, which multiplies across the rows');
  const c = v.n.input[2] ? constOf(v, 2) : undefined;
  if (c && c.dims.length === 2 && c.dims[0] !== 1)
    refuse(v, `adds the constant "${v.n.input[2]}" of shape [${c.dims.join(', ')}], one row per batch row`);
  v.mark(2);
};

const matMul: Rule = (v) => {
  firstOnly(v);
  if (v.r0 !== null && v.r0 < 2) refuse(v, 'multiplies across the rows (its left input has rank 1)');
  const b = v.n.input[1] ? constOf(v, 1) : undefined;
  if (b && v.r0 !== null && b.dims.length > v.r0)
    refuse(v, `broadcasts the rows against "${v.n.input[1]}" of rank ${b.dims.length}`);
  v.mark(v.r0);
};

/** An op working along one axis, which must not be the batch axis. */
interface AxisOp {
  /** The axis when the node has no attribute (it may depend on the opset). */
  defaultAxis: (opset: number) => number;
  /** The axis comes from input 1 (CumSum) instead of an attribute. */
  axisInput?: boolean;
  /** Inputs after the first may carry rows (CumSum's axis, TopK's k are read per run). */
  paramsMayCarryRows?: boolean;
  /** Outputs carrying the rows. */
  outputs?: number;
  /** keepdims=0 removes the axis (ArgMax, ArgMin). */
  reduces?: boolean;
}

const alongAxis =
  (spec: AxisOp): Rule =>
  (v) => {
    if (!v.batchIns[0] || (!spec.paramsMayCarryRows && v.batchIns.slice(1).some(Boolean)))
      refuse(v, 'reads the rows through a parameter input');
    const axis = spec.axisInput
      ? (constOf(v, 1)?.values?.[0] ?? null)
      : (attrInt(v.n, 'axis') ?? spec.defaultAxis(v.trace.opset));
    if (axis === null) refuse(v, 'takes its axis from a tensor the server cannot read');
    if (normAxis(axis!, v.r0) === 0) refuse(v, `works along axis ${axis}, the batch axis`);
    const keep = (attrInt(v.n, 'keepdims') ?? 1) === 1;
    v.mark(spec.reduces && !keep && v.r0 !== null ? v.r0 - 1 : v.r0, firstOutputs(v.n, spec.outputs ?? 1));
  };
const softmaxAxis = (opset: number): number => (opset < 13 ? 1 : -1);
const lastAxis = (): number => -1;

const flatten: Rule = (v) => {
  firstOnly(v);
  if (normAxis(attrInt(v.n, 'axis') ?? 1, v.r0) === 0) refuse(v, 'has axis 0, which flattens the rows together');
  v.mark(2);
};

const squeezeLike =
  (removes: boolean): Rule =>
  (v) => {
    firstOnly(v);
    const axes = axesOf(v, 1);
    if (axes === undefined)
      refuse(v, `has no axes, so it also removes the batch dimension of size ${v.trace.batchSize}`);
    if (axes === null) refuse(v, 'takes its axes from a tensor the server cannot read');
    const outRank = v.r0 === null ? null : removes ? v.r0 - axes!.length : v.r0 + axes!.length;
    if (touchesAxis0(axes!, removes ? v.r0 : outRank))
      refuse(v, `${removes ? 'removes' : 'inserts'} axis 0, the batch axis`);
    v.mark(outRank);
  };

/** A constant target shape starting with the batch size is the size traced in: copy the input's instead. */
const reshape: Rule = (v) => {
  firstOnly(v);
  const { n, trace } = v;
  if (trace.dynamic.has(n.input[1]!)) return v.mark(null);
  const shape = constOf(v, 1)?.values;
  if (!shape) refuse(v, 'takes its target shape from a tensor the server cannot read');
  const allowzero = (attrInt(n, 'allowzero') ?? 0) === 1;
  if (shape![0] === trace.batchSize && !allowzero) {
    const name = `dropout_serve.relaxed_shape.${trace.reshapes.length}`;
    const values = [0, ...shape!.slice(1)];
    trace.graph.initializer = [
      ...(trace.graph.initializer ?? []),
      { name, dims: [values.length], data_type: DataType.INT64, int64_data: values },
    ];
    trace.consts.set(name, { dims: [values.length], values });
    n.input[1] = name;
    trace.reshapes.push(n.name || n.output[0]!);
  } else if (!(shape![0] === 0 && !allowzero) && shape![0] !== -1) {
    refuse(v, `reshapes the rows to a first dimension of ${shape![0]} (target shape [${shape!.join(', ')}])`);
  }
  v.mark(shape!.length);
};

const expandOrTile =
  (tile: boolean): Rule =>
  (v) => {
    firstOnly(v);
    if (!v.trace.dynamic.has(v.n.input[1] ?? '')) {
      const values = constOf(v, 1)?.values;
      if (!values) refuse(v, `takes its ${tile ? 'repeats' : 'shape'} from a tensor the server cannot read`);
      if (tile && values![0] !== 1) refuse(v, `repeats the rows ${values![0]} times`);
      if (!tile && v.r0 !== null && (values!.length > v.r0 || (values!.length === v.r0 && values![0] !== 1)))
        refuse(v, `expands to the shape [${values!.join(', ')}], which fixes the rows`);
    }
    v.mark(v.r0);
  };

const concat: Rule = (v) => {
  const axis = attrInt(v.n, 'axis') ?? 0;
  if (normAxis(axis, v.r0) === 0) refuse(v, 'joins tensors along axis 0, the batch axis');
  const other = v.n.input.find((i) => i && !v.trace.batch.has(i));
  if (other) {
    const c = v.trace.consts.get(other);
    refuse(
      v,
      c
        ? `joins the rows with the constant "${other}" of shape [${c.dims.join(', ')}] along axis ${axis}`
        : `joins the rows with "${other}", which the server cannot trace`,
    );
  }
  v.mark(v.r0);
};

const split: Rule = (v) => {
  if (normAxis(attrInt(v.n, 'axis') ?? 0, v.r0) === 0) refuse(v, 'splits tensors along axis 0, the batch axis');
  firstOnly(v);
  v.mark(v.r0, v.n.output);
};

const slice: Rule = (v) => {
  firstOnly(v);
  const { n } = v;
  const old = v.trace.opset < 10;
  const starts = old ? attrInts(n, 'starts') : constOf(v, 1)?.values;
  const ends = old ? attrInts(n, 'ends') : constOf(v, 2)?.values;
  const axes = old ? attrInts(n, 'axes') : n.input[3] ? constOf(v, 3)?.values : undefined;
  if (!starts || !ends || (axes === undefined && !old && n.input[3]))
    refuse(v, 'takes its bounds from a tensor the server cannot read');
  (axes ?? starts!.map((_, k) => k)).forEach((a, k) => {
    if (normAxis(a, v.r0) === 0 && !(starts![k] === 0 && ends![k]! >= 2 ** 31 - 1))
      refuse(v, `slices axis 0, the batch axis ([${starts![k]}, ${ends![k]}))`);
  });
  v.mark(v.r0);
};

const gather: Rule = (v) => {
  const axis = attrInt(v.n, 'axis') ?? 0;
  if (v.batchIns[0]) {
    if (v.batchIns[1]) refuse(v, 'reads the rows through its indices');
    if (normAxis(axis, v.r0) === 0) refuse(v, 'indexes axis 0, the batch axis');
    const idx = constOf(v, 1);
    v.mark(v.r0 === null || !idx ? null : v.r0 - 1 + idx.dims.length);
  } else {
    // an embedding lookup: constant table, indices per row
    if (axis !== 0) refuse(v, 'gathers along another axis with per-row indices');
    const table = constOf(v, 0);
    const ri = v.trace.batch.get(v.n.input[1]!)!;
    v.mark(ri === null || !table ? null : ri + table.dims.length - 1);
  }
};

const transpose: Rule = (v) => {
  firstOnly(v);
  const perm = attrInts(v.n, 'perm');
  if (!perm ? v.r0 !== 1 : perm[0] !== 0) refuse(v, 'moves the batch axis');
  v.mark(v.r0);
};

const reduce: Rule = (v) => {
  firstOnly(v);
  const { n, trace } = v;
  const fromInput = n.op_type === 'ReduceSum' ? trace.opset >= 13 : trace.opset >= 18;
  const axes = fromInput ? (n.input[1] ? (constOf(v, 1)?.values ?? null) : undefined) : attrInts(n, 'axes');
  if (axes === null) refuse(v, 'takes its axes from a tensor the server cannot read');
  if (axes === undefined || axes.length === 0) {
    if ((attrInt(n, 'noop_with_empty_axes') ?? 0) !== 1) refuse(v, 'reduces over every axis, the batch axis included');
  } else if (touchesAxis0(axes, v.r0)) refuse(v, 'reduces over axis 0, the batch axis');
  const keep = (attrInt(n, 'keepdims') ?? 1) === 1;
  v.mark(keep || v.r0 === null || !axes ? v.r0 : v.r0 - axes.length);
};

const pad: Rule = (v) => {
  firstOnly(v);
  const { n } = v;
  const pads = v.trace.opset < 11 ? attrInts(n, 'pads') : constOf(v, 1)?.values;
  const axes = n.input[3] ? constOf(v, 3)?.values : undefined;
  if (!pads || (n.input[3] && !axes)) refuse(v, 'takes its pads from a tensor the server cannot read');
  const ax = axes ?? pads!.slice(0, pads!.length / 2).map((_, k) => k);
  ax.forEach((a, k) => {
    if (normAxis(a, v.r0) === 0 && (pads![k] !== 0 || pads![k + ax.length] !== 0))
      refuse(v, 'pads axis 0, the batch axis');
  });
  v.mark(v.r0);
};

/** Elementwise ops of one data input (the others, if any, are scalars or attributes). */
const ROWWISE_UNARY = [
  ...['Abs', 'Acos', 'Acosh', 'Asin', 'Asinh', 'Atan', 'Atanh', 'Cast', 'CastLike', 'Ceil', 'Celu', 'Clip'],
  ...['Cos', 'Cosh', 'Elu', 'Erf', 'Exp', 'Floor', 'Gelu', 'HardSigmoid', 'HardSwish', 'Identity', 'IsInf'],
  ...['IsNaN', 'LeakyRelu', 'Log', 'Mish', 'Neg', 'Not', 'Reciprocal', 'Relu', 'Round', 'Selu', 'Shrink'],
  ...['Sigmoid', 'Sign', 'Sin', 'Sinh', 'Softplus', 'Softsign', 'Sqrt', 'Tan', 'Tanh', 'ThresholdedRelu'],
];
/** Elementwise ops with numpy broadcasting over all their inputs. */
const BROADCAST = [
  ...['Add', 'And', 'BitShift', 'BitwiseAnd', 'BitwiseOr', 'BitwiseXor', 'Div', 'Equal', 'Greater'],
  ...['GreaterOrEqual', 'Less', 'LessOrEqual', 'Max', 'Mean', 'Min', 'Mod', 'Mul', 'Or', 'Pow', 'PRelu'],
  ...['Sub', 'Sum', 'Where', 'Xor'],
];
/** Ops whose first input is [batch, channels, …] and whose other inputs are parameters. */
const PER_SAMPLE = [
  ...['AveragePool', 'BatchNormalization', 'Conv', 'ConvTranspose', 'DepthToSpace', 'GlobalAveragePool'],
  ...['GlobalLpPool', 'GlobalMaxPool', 'GroupNormalization', 'InstanceNormalization', 'LpPool', 'LRN'],
  ...['SpaceToDepth'],
];
const REDUCE = [
  ...['ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceMax', 'ReduceMean', 'ReduceMin'],
  ...['ReduceProd', 'ReduceSum', 'ReduceSumSquare'],
];

const each = (ops: string[], rule: Rule): [string, Rule][] => ops.map((op) => [op, rule]);

/** Op type → its rule. */
export const BATCH_RULES: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  ...each(['Shape', 'Size'], shapeOf),
  ...each(ROWWISE_UNARY, rowwise(1)),
  ['Dropout', rowwise(2)], // its mask output carries the rows too
  ...each(BROADCAST, broadcast),
  ['Gemm', gemm],
  ['MatMul', matMul],
  ...each(PER_SAMPLE, rowwise(1)),
  ['MaxPool', rowwise(2)], // and its indices
  ...each(['Softmax', 'LogSoftmax', 'Hardmax'], alongAxis({ defaultAxis: softmaxAxis })),
  ...each(['LpNormalization', 'LayerNormalization'], alongAxis({ defaultAxis: lastAxis })),
  ['CumSum', alongAxis({ defaultAxis: lastAxis, axisInput: true, paramsMayCarryRows: true })],
  ['TopK', alongAxis({ defaultAxis: lastAxis, paramsMayCarryRows: true, outputs: 2 })],
  ...each(['ArgMax', 'ArgMin'], alongAxis({ defaultAxis: () => 0, reduces: true })),
  ['Flatten', flatten],
  ['Squeeze', squeezeLike(true)],
  ['Unsqueeze', squeezeLike(false)],
  ['Reshape', reshape],
  ['Expand', expandOrTile(false)],
  ['Tile', expandOrTile(true)],
  ['Concat', concat],
  ['Split', split],
  ['Slice', slice],
  ['Gather', gather],
  ['Transpose', transpose],
  ...each(REDUCE, reduce),
  ['Pad', pad],
]);
