import { describe, expect, it } from 'vitest';
import { inspect } from '../../../src/model/onnx/inspect.js';
import { createSession } from '../../../src/model/onnx/ort.js';
import { inputTilePoint, mcGraph, sharedPrefixPoint } from '../../../src/model/onnx/rewrite.js';
import { AttributeType, DataType, type Node, decodeModel } from '../../../src/onnx-proto/proto.js';
import { f32, gemm, model, vi } from '../../helpers/onnx.js';

// x [N, 3] → Gemm (3 → 4) → Relu → Dropout(0.5) → Gemm (4 → outputs): the regression network's shape
const W1 = [0.5, -1, 2, 1, 0.25, -0.5, -2, 1, 1.5, 0.75, 0.5, -0.25];
const B1 = [0.1, -0.2, 0.3, 0.05];
const W2 = [1.5, -0.75, 2, 0.5];
const B2 = [0.25];

function net(head: Partial<Node> = {}, w2 = f32('W2', [1, 4], W2), opset = 17): Uint8Array {
  return model({
    nodes: [
      gemm('x', 'W1', 'B1', 'h'),
      { op_type: 'Relu', input: ['h'], output: ['r'] },
      { op_type: 'Dropout', input: ['r', 'ratio'], output: ['d'] },
      { ...gemm('d', 'W2', 'B2', 'y'), ...head },
    ],
    inits: [f32('W1', [4, 3], W1), f32('B1', [4], B1), w2, f32('B2', [1], B2), f32('ratio', [], [0.5])],
    inputs: [vi('x', DataType.FLOAT, ['batch', 3])],
    outputs: [vi('y', DataType.FLOAT, ['batch', 1])],
    opset,
  });
}

const ops = (bytes: Uint8Array): string[] => decodeModel(bytes).graph!.node.map((n) => n.op_type);

function sharedGraph(bytes: Uint8Array): Uint8Array {
  const { model: m, info } = inspect(bytes);
  return mcGraph(m, info, sharedPrefixPoint(m, info)!);
}

/** y[t·N + i] = Σ_j mask[t·N + i, j] · relu(x_i W1ᵀ + B1)_j · W2_j + B2, in float64. */
function reference(x: Float32Array, mask: Float32Array, N: number, T: number): number[] {
  const y: number[] = [];
  for (let t = 0; t < T; t++)
    for (let i = 0; i < N; i++) {
      let sum = B2[0]!;
      for (let j = 0; j < 4; j++) {
        let h = B1[j]!;
        for (let f = 0; f < 3; f++) h += x[i * 3 + f]! * W1[j * 3 + f]!;
        sum += mask[(t * N + i) * 4 + j]! * Math.max(0, h) * W2[j]!;
      }
      y.push(sum);
    }
  return y;
}

async function runShared(bytes: Uint8Array, N: number, T: number): Promise<{ y: Float32Array; want: number[] }> {
  const session = await createSession(bytes, { intraOpThreads: 1 });
  const x = Float32Array.from({ length: N * 3 }, (_, k) => Math.sin(k + 1) * 2);
  const mask = Float32Array.from({ length: T * N * 4 }, (_, k) => ((k * 7919) % 5 < 2 ? 0 : 2));
  const res = await session.run(
    {
      x: { data: x, dims: [N, 3] },
      'dropout_serve.mask.0': { data: mask, dims: [T * N, 4] },
      'dropout_serve.repeats.0': { data: BigInt64Array.from([BigInt(T), 1n]), dims: [2] },
    },
    ['y'],
  );
  await session.release();
  return { y: res.y!.data, want: reference(x, mask, N, T) };
}

describe('the masked one-column head (mc-head.ts)', () => {
  it('replaces Tile → Mul(mask) → Gemm with a broadcast Mul and a ReduceSum, sample-major as before', async () => {
    const bytes = sharedGraph(net());
    expect(ops(bytes)).toEqual([
      'Gemm',
      'Relu',
      'Mul',
      'Shape',
      'Concat',
      'Reshape',
      'Mul',
      'ReduceSum',
      'Add',
      'Reshape',
    ]);
    for (const [N, T] of [
      [1, 1],
      [3, 5],
      [2, 64],
    ] as const) {
      const { y, want } = await runShared(bytes, N, T);
      expect(y.length).toBe(N * T);
      for (let k = 0; k < want.length; k++) expect(y[k]).toBeCloseTo(want[k]!, 4);
    }
  });

  it('takes W as [K, 1] without transB, and a Gemm without a bias', async () => {
    const wT = f32('W2', [4, 1], W2);
    const plainB = { attribute: [{ name: 'transB', type: AttributeType.INT, i: 0 }] };
    const { y, want } = await runShared(sharedGraph(net(plainB, wT)), 2, 3);
    for (let k = 0; k < want.length; k++) expect(y[k]).toBeCloseTo(want[k]!, 4);
    const noBias = sharedGraph(net({ input: ['d', 'W2'] }));
    expect(ops(noBias)).not.toContain('Add');
    // a bias of several values (a fixed batch's) is left to the Gemm
    expect(ops(sharedGraph(net({ input: ['d', 'W2', 'W1'] })))).toContain('Tile');
    const res = await runShared(noBias, 2, 3);
    for (let k = 0; k < res.want.length; k++) expect(res.y[k]! + B2[0]!).toBeCloseTo(res.want[k]!, 4);
  });

  it('leaves other heads alone: alpha ≠ 1, two output columns, opset < 13, the plain graph (Tile before a Gemm)', () => {
    const alpha = {
      attribute: [...gemm('', '', '', '').attribute!, { name: 'alpha', type: AttributeType.FLOAT, f: 2 }],
    };
    expect(ops(sharedGraph(net(alpha)))).toContain('Tile');
    expect(ops(sharedGraph(net({}, f32('W2', [2, 4], [...W2, ...W2]))))).toContain('Tile');
    expect(ops(sharedGraph(net({}, undefined, 12)))).toContain('Tile');
    const { model: m, info } = inspect(net());
    expect(ops(mcGraph(m, info, inputTilePoint(info)))).toEqual(['Tile', 'Gemm', 'Relu', 'Mul', 'Gemm']);
  });
});
