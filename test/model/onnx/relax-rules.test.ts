/**
 * The op rules of batch relaxation (src/model/onnx/relax-rules.ts), one hand-made graph per rule and
 * case, exported at a fixed batch: what each rule accepts (the batch becomes symbolic) and what it
 * refuses, with the reason. The expectations were produced by the branch-chain implementation the
 * table replaced (all 106 cases of the comparison gave the same outcome, message and rewritten graph).
 */
import { describe, expect, it } from 'vitest';
import { inspect } from '../../../src/model/onnx/inspect.js';
import { relaxBatch } from '../../../src/model/onnx/relax-batch.js';
import { BATCH_RULES } from '../../../src/model/onnx/relax-rules.js';
import { DataType, encodeModel } from '../../../src/onnx-proto/proto.js';

const vi = (name: string, dims: (number | string)[]) => ({
  name,
  type: {
    tensor_type: {
      elem_type: DataType.FLOAT,
      shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
    },
  },
});
const f32 = (name: string, dims: number[]) => ({
  name,
  dims,
  data_type: DataType.FLOAT,
  float_data: Array(dims.reduce((a, b) => a * b, 1)).fill(0.5),
});
const i64 = (name: string, values: number[]) => ({
  name,
  dims: [values.length],
  data_type: DataType.INT64,
  int64_data: values,
});
const A = (name: string, v: number | number[]) =>
  Array.isArray(v) ? { name, type: 7, ints: v } : { name, type: 2, i: v };
const n = (op_type: string, input: string[], output: string[], attribute: object[] = []) => ({
  op_type,
  input,
  output,
  attribute,
});
const W = { name: 'W', dims: [2, 3], data_type: DataType.FLOAT, float_data: [1, 0, -1, 0.5, 2, 1] };
/** h = x Wᵀ: [batch, 2] */
const H = n('Gemm', ['x', 'W'], ['h'], [A('transB', 1)]);

interface Case {
  nodes: object[];
  inits?: object[];
  opset?: number;
  batch?: number;
  /** The reason of the refusal (after `node "…" (Op) `), or 'ok'. */
  want: string;
  /** The op refused, when it is not the last node's. */
  op?: string;
}

function relax(c: Case) {
  const b = c.batch ?? 1;
  const { model, info } = inspect(
    encodeModel({
      ir_version: 8,
      opset_import: [{ domain: '', version: c.opset ?? 17 }],
      graph: {
        name: 'g',
        node: c.nodes as never,
        initializer: [W, ...(c.inits ?? [])] as never,
        input: [vi('x', [b, 3])],
        output: [vi('y', [b, 2])],
      },
    }),
  );
  return relaxBatch(model, info);
}

const CASES: Record<string, Case> = {
  'unary: rows through the data input': { nodes: [H, n('Relu', ['h'], ['y'])], want: 'ok' },
  'unary: rows through a parameter': {
    nodes: [H, n('Clip', ['h', 'h'], ['y'])],
    want: 'reads the rows through a parameter input',
  },
  'unary: rows only through a parameter': {
    nodes: [H, n('Clip', ['c', 'h'], ['y'])],
    inits: [f32('c', [])],
    want: 'reads the rows through an input other than its data input',
  },
  'broadcast: a constant row': { nodes: [H, n('Add', ['h', 'c'], ['y'])], inits: [f32('c', [1, 2])], want: 'ok' },
  'broadcast: a constant with the batch first': {
    nodes: [H, n('Add', ['h', 'c'], ['y'])],
    inits: [f32('c', [3, 2])],
    batch: 3,
    want: 'combines the rows with the constant "c" of shape [3, 2], whose first dimension is the batch',
  },
  'broadcast: a higher rank': {
    nodes: [H, n('Add', ['h', 'c'], ['y'])],
    inits: [f32('c', [4, 1, 2])],
    want: 'broadcasts the rows of "h" (rank 2) against a rank-3 tensor',
  },
  'broadcast: an untraced tensor': {
    nodes: [H, n('Add', ['h', 'zz'], ['y'])],
    want: 'combines the rows with "zz", which the server cannot trace',
  },
  'Gemm transA': {
    nodes: [n('Gemm', ['x', 'W'], ['y'], [A('transB', 1), A('transA', 1)])],
    want: 'has transA=1, which multiplies across the rows',
  },
  'Gemm: a bias per batch row': {
    nodes: [n('Gemm', ['x', 'W', 'b'], ['y'], [A('transB', 1)])],
    inits: [f32('b', [3, 2])],
    batch: 3,
    want: 'adds the constant "b" of shape [3, 2], one row per batch row',
  },
  'MatMul against a rank-3 constant': {
    nodes: [n('MatMul', ['x', 'V'], ['y'])],
    inits: [f32('V', [4, 3, 2])],
    want: 'broadcasts the rows against "V" of rank 3',
  },
  'Softmax: the last axis (opset 17) and axis 1 (opset 11 default)': {
    nodes: [H, n('Softmax', ['h'], ['y'])],
    opset: 11,
    want: 'ok',
  },
  'Softmax over axis -2': {
    nodes: [H, n('LogSoftmax', ['h'], ['y'], [A('axis', -2)])],
    want: 'works along axis -2, the batch axis',
  },
  'CumSum: the axis from a tensor': {
    nodes: [H, n('CumSum', ['h', 'ax'], ['y'])],
    inits: [i64('ax', [0])],
    want: 'works along axis 0, the batch axis',
  },
  'ArgMax: axis 0 by default': { nodes: [H, n('ArgMax', ['h'], ['y'])], want: 'works along axis 0, the batch axis' },
  'TopK: two outputs': {
    nodes: [H, n('TopK', ['h', 'k'], ['y', 'ti'])],
    inits: [i64('k', [1])],
    want: 'ok',
  },
  'Flatten at axis 0': {
    nodes: [H, n('Flatten', ['h'], ['y'], [A('axis', 0)])],
    want: 'has axis 0, which flattens the rows together',
  },
  'Squeeze without axes': {
    nodes: [H, n('Squeeze', ['h'], ['y'])],
    want: 'has no axes, so it also removes the batch dimension of size 1',
  },
  'Unsqueeze at 0': {
    nodes: [H, n('Unsqueeze', ['h', 'ax'], ['y'])],
    inits: [i64('ax', [0])],
    want: 'inserts axis 0, the batch axis',
  },
  'Reshape: a traced batch is rewritten': {
    nodes: [n('Reshape', ['x', 's'], ['r']), n('Gemm', ['r', 'W'], ['y'], [A('transB', 1)])],
    inits: [i64('s', [1, 3])],
    want: 'ok',
  },
  'Reshape with allowzero keeps its traced batch': {
    nodes: [n('Reshape', ['x', 's'], ['r'], [A('allowzero', 1)]), n('Gemm', ['r', 'W'], ['y'], [A('transB', 1)])],
    inits: [i64('s', [1, 3])],
    want: 'reshapes the rows to a first dimension of 1 (target shape [1, 3])',
    op: 'Reshape',
  },
  'Reshape to a size from Shape (dynamic)': {
    nodes: [
      n('Shape', ['x'], ['sh']),
      n('Reshape', ['x', 'sh'], ['r']),
      n('Gemm', ['r', 'W'], ['y'], [A('transB', 1)]),
    ],
    want: 'ok',
  },
  'Expand that fixes the rows': {
    nodes: [H, n('Expand', ['h', 'e'], ['y'])],
    inits: [i64('e', [4, 2])],
    want: 'expands to the shape [4, 2], which fixes the rows',
  },
  'Tile of the rows': {
    nodes: [H, n('Tile', ['h', 'e'], ['y'])],
    inits: [i64('e', [2, 1])],
    want: 'repeats the rows 2 times',
  },
  'Concat along axis 0': {
    nodes: [H, n('Concat', ['h', 'h'], ['y'], [A('axis', 0)])],
    want: 'joins tensors along axis 0, the batch axis',
  },
  'Split along axis 0': {
    nodes: [H, n('Split', ['h'], ['y', 'y2'], [A('axis', 0)])],
    want: 'splits tensors along axis 0, the batch axis',
  },
  'Slice of axis 0 (opset 9 attributes)': {
    nodes: [H, n('Slice', ['h'], ['y'], [A('starts', [1]), A('ends', [2])])],
    opset: 9,
    want: 'slices axis 0, the batch axis ([1, 2))',
  },
  'Slice of all of axis 0': {
    nodes: [H, n('Slice', ['h', 'st', 'en', 'ax'], ['y'])],
    inits: [i64('st', [0]), i64('en', [2 ** 31 - 1]), i64('ax', [0])],
    want: 'ok',
  },
  'Gather: an embedding lookup by per-row ids': {
    nodes: [
      n('Cast', ['x'], ['ids'], [A('to', 7)]),
      n('Gather', ['E', 'ids'], ['e']),
      n('ReduceSum', ['e', 'ax'], ['y']),
    ],
    inits: [f32('E', [5, 2]), i64('ax', [1])],
    want: 'ok',
  },
  'Gather on axis 0': {
    nodes: [H, n('Gather', ['h', 'ix'], ['y'])],
    inits: [i64('ix', [0])],
    want: 'indexes axis 0, the batch axis',
  },
  'Transpose without perm': { nodes: [H, n('Transpose', ['h'], ['y'])], want: 'moves the batch axis' },
  'ReduceMean over every axis': {
    nodes: [H, n('ReduceMean', ['h'], ['y'])],
    want: 'reduces over every axis, the batch axis included',
  },
  'ReduceMean with noop_with_empty_axes (opset 18)': {
    nodes: [H, n('ReduceMean', ['h'], ['y'], [A('noop_with_empty_axes', 1)])],
    opset: 18,
    want: 'ok',
  },
  'Pad of axis 0': {
    nodes: [H, n('Pad', ['h', 'p'], ['y'])],
    inits: [i64('p', [1, 0, 0, 0])],
    want: 'pads axis 0, the batch axis',
  },
  'an op not in the table': {
    nodes: [H, n('LSTM', ['h'], ['y'])],
    want: 'reads the rows, and the server does not know whether this op keeps them apart',
  },
  'a custom domain': {
    nodes: [H, { ...n('Relu', ['h'], ['y']), domain: 'com.example' }],
    want: 'is a custom op (domain com.example) the server cannot check',
  },
};

describe('relaxBatch: the op rules table', () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(`${name}: ${c.want === 'ok' ? 'relaxed' : 'refused'}`, () => {
      if (c.want === 'ok') {
        expect(relax(c)).toMatchObject({ from: c.batch ?? 1, outputs: ['y'] });
      } else {
        const op = c.op ?? (c.nodes.at(-1) as { op_type: string }).op_type;
        expect(() => relax(c)).toThrow(`(${op}) ${c.want}, so the graph cannot serve another batch size`);
      }
    });
  }

  it('has one rule per op, and none for ops that mix rows by nature', () => {
    for (const op of ['Relu', 'Dropout', 'Add', 'Gemm', 'MatMul', 'Conv', 'MaxPool', 'Softmax', 'Reshape', 'Pad'])
      expect(BATCH_RULES.has(op), op).toBe(true);
    for (const op of ['LSTM', 'GRU', 'RNN', 'Loop', 'If', 'Scan', 'NonZero'])
      expect(BATCH_RULES.has(op), op).toBe(false);
  });
});
