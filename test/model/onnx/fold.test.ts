import { afterAll, describe, expect, it } from 'vitest';
import { foldAffine } from '../../../src/model/onnx/fold.js';
import { inspect } from '../../../src/model/onnx/inspect.js';
import type { ClassificationStats, RegressionStats } from '../../../src/uncertainty/record.js';
import { DEFAULT_RUNTIME_OPTIONS } from '../../../src/model/model.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import { createSession } from '../../../src/model/onnx/ort.js';
import { AttributeType, DataType, encodeModel } from '../../../src/onnx-proto/proto.js';
import { Rng } from '../../../src/util/rng.js';
import { f32, gemm, model, vi } from '../../helpers/onnx.js';

const relClose = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++)
    expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(b[i]!)));
};

describe('folding affine steps into Gemm weights (load time)', () => {
  const loaded: OnnxModel[] = [];
  afterAll(() => Promise.all(loaded.map((m) => m.close())));
  const load = async (name: string, fold: boolean) => {
    const m = await OnnxModel.load(name, `models/${name}/model.onnx`, `models/${name}/model.json`, {
      ...DEFAULT_RUNTIME_OPTIONS,
      foldAffine: fold,
    });
    loaded.push(m);
    return m;
  };

  it('our regression export: standardisation and de-standardisation fold (4 nodes); predict and MC unchanged to float32 rounding', async () => {
    const [a, b] = [await load('diabetes', true), await load('diabetes', false)];
    expect([a.foldedNodes, b.foldedNodes]).toEqual([4, 0]);
    const rng = new Rng(3);
    const x = Float32Array.from({ length: 50 }, () => 50 + 40 * rng.normal());
    relClose(await a.predict(x, 5), await b.predict(x, 5), 1e-5);
    const [ma, mb] = [
      (await a.sample(x, 5, { samples: 200, interval: 0.9, seed: 4 })).stats as RegressionStats,
      (await b.sample(x, 5, { samples: 200, interval: 0.9, seed: 4 })).stats as RegressionStats,
    ];
    relClose(ma.mean, mb.mean, 1e-5);
    relClose(ma.epistemicStd, mb.epistemicStd, 1e-4);
  });

  it('our classifier: the input side folds (2 nodes); probabilities unchanged', async () => {
    const [a, b] = [await load('wine', true), await load('wine', false)];
    expect(a.foldedNodes).toBe(2);
    const x = Float32Array.from([13, 2, 2.4, 19, 100, 2, 2, 0.3, 1.5, 5, 1, 2.5, 700]);
    relClose(await a.predict(x, 1), await b.predict(x, 1), 1e-5);
    const [ma, mb] = [
      (await a.sample(x, 1, { samples: 100, interval: 0.9, seed: 1 })).stats as ClassificationStats,
      (await b.sample(x, 1, { samples: 100, interval: 0.9, seed: 1 })).stats as ClassificationStats,
    ];
    relClose(ma.probabilities, mb.probabilities, 1e-5);
  });

  // hand-made graphs, each run by onnxruntime before and after folding
  const run = async (bytes: Uint8Array, x: Float32Array, rows: number, f: number): Promise<Float32Array> => {
    const s = await createSession(bytes, { intraOpThreads: 1 });
    const out = await s.run({ x: { data: x, dims: [rows, f] } }, ['y']);
    await s.release();
    return out.y!.data;
  };
  const fold = (bytes: Uint8Array): { bytes: Uint8Array; removed: number } => {
    const { model: m } = inspect(bytes);
    const removed = foldAffine(m);
    return { bytes: encodeModel(m), removed };
  };
  const x = Float32Array.from([1, -2, 3, 0.5, 4, -1]);
  const chain = (
    gemmNode: ReturnType<typeof gemm>,
    extra: { nodes?: ReturnType<typeof gemm>[]; outputs?: string[] } = {},
  ) =>
    model({
      nodes: [
        { op_type: 'Sub', input: ['x', 'c'], output: ['xc'] },
        { op_type: 'Div', input: ['xc', 's'], output: ['xs'] },
        gemmNode,
        { op_type: 'Mul', input: ['g', 'a'], output: ['gm'] },
        { op_type: 'Add', input: ['gm', 'm'], output: ['y'] },
        ...(extra.nodes ?? []),
      ],
      inits: [
        f32('c', [3], [0.5, -1, 2]),
        f32('s', [3], [2, 0.25, 4]),
        f32('W', [2, 3], [1, 2, 3, -1, 0.5, 0.25]),
        f32('Wt', [3, 2], [1, -1, 2, 0.5, 3, 0.25]),
        f32('b', [2], [0.1, -0.2]),
        f32('a', [1], [3]),
        f32('m', [2], [10, -10]),
      ],
      inputs: [vi('x', DataType.FLOAT, ['batch', 3])],
      outputs: ['y', ...(extra.outputs ?? [])].map((n) => vi(n, DataType.FLOAT, ['batch', 2])),
    });

  it('transB = 1 and transB = 0 (W stored in × out) fold to the same numbers', async () => {
    for (const g of [gemm('xs', 'W', 'b', 'g'), { op_type: 'Gemm', input: ['xs', 'Wt', 'b'], output: ['g'] }]) {
      const bytes = chain(g);
      const folded = fold(bytes);
      expect(folded.removed).toBe(4);
      relClose(await run(folded.bytes, x, 2, 3), await run(bytes, x, 2, 3), 1e-6);
    }
  });

  it('leaves the graph alone when a step is shared, an output, or the Gemm is scaled', async () => {
    // the standardised input is also a graph output: the input side must stay; the output side folds
    const shared = chain(gemm('xs', 'W', 'b', 'g'), { outputs: ['xs'] });
    const f1 = fold(shared);
    expect(f1.removed).toBe(2);
    relClose(await run(f1.bytes, x, 2, 3), await run(shared, x, 2, 3), 1e-6);
    // alpha = 2: nothing folds
    const scaled = chain({
      op_type: 'Gemm',
      input: ['xs', 'W', 'b'],
      output: ['g'],
      attribute: [
        { name: 'transB', type: AttributeType.INT, i: 1 },
        { name: 'alpha', type: AttributeType.FLOAT, f: 2 },
      ],
    });
    expect(fold(scaled).removed).toBe(0);
  });
});
