/** Build small ONNX models for tests (bad-model cases and hand-made graphs). */
import {
  AttributeType,
  DataType,
  type Model,
  type Node,
  type Tensor,
  encodeModel,
  floatRaw,
} from '../../src/onnx-proto/proto.js';

export const f32 = (name: string, dims: number[], values: number[]): Tensor => ({
  name,
  dims,
  data_type: DataType.FLOAT,
  raw_data: floatRaw(Float32Array.from(values)),
});
export const vi = (name: string, elem: number, dims: (number | string)[]) => ({
  name,
  type: {
    tensor_type: {
      elem_type: elem,
      shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
    },
  },
});
export const gemm = (x: string, w: string, b: string, y: string): Node => ({
  op_type: 'Gemm',
  input: [x, w, b],
  output: [y],
  attribute: [{ name: 'transB', type: AttributeType.INT, i: 1 }],
});

export function model(opts: {
  nodes: Node[];
  inits: Tensor[];
  inputs: ReturnType<typeof vi>[];
  outputs: ReturnType<typeof vi>[];
  opset?: number;
  metadata?: Record<string, string>;
}): Uint8Array {
  const m: Model = {
    ir_version: 8,
    opset_import: [{ domain: '', version: opts.opset ?? 17 }],
    producer_name: 'test',
    graph: { name: 'g', node: opts.nodes, initializer: opts.inits, input: opts.inputs, output: opts.outputs },
    metadata_props: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
  return encodeModel(m);
}

/** x[batch,F] → Gemm(W:[H,F]) → Relu → Dropout(p) → Gemm(V:[1,H]) → y[batch,1] */
export function tinyDropoutNet(F = 3, H = 4, p = 0.5, opset = 17): Uint8Array {
  const w = Array.from({ length: H * F }, (_, i) => ((i * 7) % 5) / 5 - 0.3);
  const v = Array.from({ length: H }, (_, i) => 0.5 - i / H);
  return model({
    opset,
    nodes: [
      gemm('x', 'W', 'b', 'h'),
      { op_type: 'Relu', input: ['h'], output: ['a'] },
      { op_type: 'Dropout', input: ['a', 'ratio', 'tm'], output: ['d'] },
      gemm('d', 'V', 'c', 'y'),
    ],
    inits: [
      f32('W', [H, F], w),
      f32('b', [H], Array(H).fill(0.1)),
      f32('V', [1, H], v),
      f32('c', [1], [0.2]),
      f32('ratio', [], [p]),
      { name: 'tm', dims: [], data_type: DataType.BOOL, raw_data: new Uint8Array([1]) },
    ],
    inputs: [vi('x', DataType.FLOAT, ['batch', F])],
    outputs: [vi('y', DataType.FLOAT, ['batch', 1])],
  });
}
