/**
 * The tensor sampler's behaviour (src/model/onnx/tensor-mc.ts): seeds, chunking to the byte budget, the
 * load-time check, the shared prefix, masks of a Dropout input's own shape, and a prefix tensor that
 * cannot be tiled. Accuracy against PyTorch is tensor-mc-accuracy.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError } from '../../../src/model/errors.js';
import { DataType, decodeModel } from '../../../src/onnx-proto/proto.js';
import { accumulatingLayers } from '../../../src/model/onnx/graph-query.js';
import { agreementFor } from '../../../src/model/onnx/self-check.js';
import { type TensorSampler, createTensorSampler } from '../../../src/model/onnx/tensor-mc.js';
import type { ClassificationStats, RegressionStats } from '../../../src/uncertainty/record.js';
import { model as buildModel, vi } from '../../helpers/onnx.js';
import { dropoutsOf, inputsOf, references, samplerInit, samplerOf } from './tensor-mc-fixtures.js';

const probsOf = (s: { stats: unknown }): Float64Array => (s.stats as ClassificationStats).probabilities;

describe('tensor MC: seeds and chunks (bayes_cnn, 3 Dropouts)', () => {
  let sampler: TensorSampler;
  const inputs = inputsOf('bayes_cnn');
  beforeAll(async () => {
    sampler = await samplerOf('bayes_cnn');
  });
  afterAll(() => sampler.close());

  it('the same seed gives a bit-identical answer, another seed a different one', async () => {
    const opts = { samples: 40, interval: 0.9 };
    const a = await sampler.sample(inputs, 8, { ...opts, seed: 7 });
    const b = await sampler.sample(inputs, 8, { ...opts, seed: 7 });
    const c = await sampler.sample(inputs, 8, { ...opts, seed: 8 });
    expect(a.seed).toBe(7);
    expect(Array.from(probsOf(b))).toEqual(Array.from(probsOf(a)));
    expect(Array.from(probsOf(c))).not.toEqual(Array.from(probsOf(a)));
  });

  it('a small byte budget cuts the samples, then the rows, into runs: same distribution as one run', async () => {
    const perRow = sampler.runBytesPerRow;
    expect(perRow).toBeGreaterThan(20_000); // 3 conv/pool stages of a 28×28 image: tens of kB per row
    const T = 400;
    const one = await sampler.sample(inputs, 8, { samples: T, interval: 0.9, seed: 1 });
    for (const budget of [perRow * 8 * 7, perRow * 3]) {
      const small = await samplerOf('bayes_cnn', { maxRunBytes: budget });
      try {
        const size = small.runSize(8, T);
        expect(size.rows * size.samples * perRow).toBeLessThanOrEqual(budget);
        expect(size.rows * size.samples).toBeLessThan(8 * T);
        const chunked = await small.sample(inputs, 8, { samples: T, interval: 0.9, seed: 2 });
        const p1 = probsOf(one);
        const p2 = probsOf(chunked);
        // each estimate's sd is at most 0.5/√T: their difference within 5 sd of a difference
        for (let i = 0; i < p1.length; i++) expect(Math.abs(p1[i]! - p2[i]!)).toBeLessThan(5 * 0.5 * Math.sqrt(2 / T));
        expect(chunked.stats.samples).toBe(T);
      } finally {
        await small.close();
      }
    }
  });

  it('the samples of a chunked run differ from each other (each run draws fresh masks)', async () => {
    const small = await samplerOf('bayes_cnn', { maxRunBytes: sampler.runBytesPerRow * 2 });
    try {
      const r = await small.sample(inputs, 1, { samples: 6, interval: 0.9, seed: 3, returnSamples: true });
      const raw = r.stats.raw!;
      const rowsOf = Array.from({ length: 6 }, (_, t) => Array.from(raw.subarray(t * 10, (t + 1) * 10)).join());
      expect(new Set(rowsOf).size).toBe(6);
    } finally {
      await small.close();
    }
  });

  it('"auto" stops at a check once within the tolerance; an aborted signal stops before the next run', async () => {
    const r = await sampler.sample(inputs, 2, { samples: 2000, tolerance: 0.05, interval: 0.9, seed: 4 });
    expect(r.stats.samples).toBeGreaterThanOrEqual(30);
    expect(r.stats.samples).toBeLessThan(2000);
    const signal = { aborted: true };
    await expect(sampler.sample(inputs, 2, { samples: 10, interval: 0.9, signal })).rejects.toBeInstanceOf(
      CancelledError,
    );
  });
});

describe('tensor MC: the load-time check (every mask 1 = eval)', () => {
  for (const name of ['bayes_cnn', 'unet', 'text_classifier', 'conv1d_regressor']) {
    it(`${name}: agrees with PyTorch's eval outputs at every run shape, refuses them shifted by 1% of their scale`, async () => {
      const ref = references[name]!;
      const init = samplerInit(name);
      const sampler = await createTensorSampler(init);
      try {
        const agree = agreementFor(accumulatingLayers(init.model.graph!));
        const evalOut = Float32Array.from(ref.eval.batch8);
        await sampler.check(inputsOf(name), 8, evalOut, agree);
        const scale = Math.max(...ref.eval.batch8.map(Math.abs));
        const shifted = evalOut.map((v, i) => (i === 3 ? v + 0.01 * scale : v));
        await expect(sampler.check(inputsOf(name), 8, shifted, agree)).rejects.toThrow(/every mask 1, gives/);
      } finally {
        await sampler.close();
      }
    });
  }
});

describe('tensor MC: the shared prefix', () => {
  it("mobilenet's feature extractor runs once: only the classifier head repeats, with the same answer", async () => {
    const shared = await samplerOf('mobilenet');
    const plain = await samplerOf('mobilenet', { sharedPrefix: false });
    try {
      expect(shared.sharedPrefix).toBe(true);
      // the head after the first Dropout: Mul(mask), Gemm (the Hardswish before it is in the prefix)
      expect(shared.shape.repeatedNodes).toBeLessThanOrEqual(3);
      expect(shared.shape.prefixNodes).toBeGreaterThan(200);
      expect(plain.sharedPrefix).toBe(false);
      expect(plain.shape.prefixNodes).toBe(0);
      expect(plain.runBytesPerRow).toBeGreaterThan(100 * shared.runBytesPerRow);
      const inputs = inputsOf('mobilenet');
      const opts = { samples: 20, interval: 0.9, seed: 9 };
      const a = probsOf(await shared.sample(inputs, 2, opts));
      const b = probsOf(await plain.sample(inputs, 2, opts));
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(1e-4);
    } finally {
      await Promise.all([shared.close(), plain.close()]);
    }
  });

  it('the UNet: its encoder runs once, the spatial-dropout bottleneck and the decoder repeat', async () => {
    const s = await samplerOf('unet');
    try {
      expect(s.sharedPrefix).toBe(true);
      expect(s.shape.prefixNodes).toBeGreaterThan(30);
      expect(s.shape.tiles.every((t) => t.axis === 0)).toBe(true);
    } finally {
      await s.close();
    }
  });
});

/**
 * x [N, 3, 4] → Reshape [-1, 3, 2] ([2N, 3, 2]) → Dropout(p) → Reshape [-1, 3, 4] → y: each output
 * element is one mask value. The rate as torch writes it: an attribute (opset 10) or a `ratio` input
 * with a `training_mode` input (opset ≥ 12).
 */
function reshapedDropout(p: number, opset: 10 | 13): Uint8Array {
  const dropout =
    opset === 10
      ? {
          op_type: 'Dropout',
          input: ['h'],
          output: ['d', 'm'],
          name: 'drop',
          attribute: [{ name: 'ratio', type: 1, f: p }],
        }
      : { op_type: 'Dropout', input: ['h', 'ratio', 'train'], output: ['d'], name: 'drop' };
  return buildModel({
    opset,
    nodes: [
      { op_type: 'Reshape', input: ['x', 'half'], output: ['h'] },
      dropout,
      { op_type: 'Reshape', input: ['d', 'whole'], output: ['y'] },
    ],
    inits: [
      { name: 'half', dims: [3], data_type: DataType.INT64, int64_data: [-1, 3, 2] },
      { name: 'whole', dims: [3], data_type: DataType.INT64, int64_data: [-1, 3, 4] },
      { name: 'ratio', dims: [], data_type: DataType.FLOAT, float_data: [p] },
      { name: 'train', dims: [], data_type: DataType.BOOL, int32_data: [1] },
    ],
    inputs: [vi('x', DataType.FLOAT, ['N', 3, 4])],
    outputs: [vi('y', DataType.FLOAT, ['N', 3, 4])],
  });
}

/** x [N, 4] → Dropout → Reshape to [Shape(x)[0], 2, 2]: the batch size is computed before the Dropout. */
function shapeFromPrefix(): Uint8Array {
  return buildModel({
    opset: 13,
    nodes: [
      { op_type: 'Shape', input: ['x'], output: ['s'] },
      { op_type: 'Gather', input: ['s', 'zero'], output: ['n'], attribute: [{ name: 'axis', type: 2, i: 0 }] },
      { op_type: 'Concat', input: ['n', 'twotwo'], output: ['target'], attribute: [{ name: 'axis', type: 2, i: 0 }] },
      { op_type: 'Dropout', input: ['x', 'ratio'], output: ['d'], name: 'drop' },
      { op_type: 'Reshape', input: ['d', 'target'], output: ['y'] },
    ],
    inits: [
      { name: 'zero', dims: [1], data_type: DataType.INT64, int64_data: [0] },
      { name: 'twotwo', dims: [2], data_type: DataType.INT64, int64_data: [2, 2] },
      { name: 'ratio', dims: [], data_type: DataType.FLOAT, float_data: [0.25] },
    ],
    inputs: [vi('x', DataType.FLOAT, ['N', 4])],
    outputs: [vi('y', DataType.FLOAT, ['N', 2, 2])],
  });
}

function regressionInit(bytes: Uint8Array, dims: number[], x: Float32Array, rows: number, outDims = dims) {
  const model = decodeModel(bytes);
  return {
    model,
    dropouts: dropoutsOf(model),
    controlInputs: [],
    inputs: [{ name: 'x', datatype: 'FP32' as const, shape: [-1, ...dims] }],
    outputName: 'y',
    layout: { dims: outDims, classAxis: null },
    task: 'regression' as const,
    outputKind: 'regression' as const,
    uncertainty: samplerInit('conv1d_regressor').uncertainty,
    runtime: { intraOpThreads: 1, sharedPrefix: true },
    probeInputs: [{ name: 'x', dims: [rows, ...dims], data: x }],
  };
}

describe("tensor MC: masks of the Dropout input's own shape", () => {
  it.each([
    [10, 0.3],
    [13, 0.15],
  ] as const)(
    'a Dropout on [2N, 3, 2] (opset %i, p = %f): every element kept at rate 1 − p, scaled by 1/(1 − p)',
    async (opset, p) => {
      const rows = 2;
      const s = await createTensorSampler(
        regressionInit(reshapedDropout(p, opset), [3, 4], new Float32Array(24).fill(1), rows),
      );
      try {
        const T = 1000;
        const r = await s.sample([{ name: 'x', dims: [rows, 3, 4], data: new Float32Array(24).fill(1) }], rows, {
          samples: T,
          interval: 0.9,
          seed: 11,
          returnSamples: true,
        });
        const raw = r.stats.raw!;
        const kept = new Float64Array(24);
        let other = 0;
        for (let t = 0; t < T; t++)
          for (let i = 0; i < 24; i++) {
            const v = raw[t * 24 + i]!;
            if (v !== 0) kept[i]!++;
            if (v !== 0 && Math.abs(v - 1 / (1 - p)) > 1e-3) other++;
          }
        expect(other).toBe(0);
        const sd = Math.sqrt((p * (1 - p)) / T);
        for (const k of kept) expect(Math.abs(k / T - (1 - p))).toBeLessThan(5 * sd);
        // the mean of an inverted-dropout mask is 1, its std √(p/(1 − p))
        for (const m of (r.stats as RegressionStats).mean)
          expect(Math.abs(m - 1)).toBeLessThan(5 * Math.sqrt(p / (1 - p) / T));
      } finally {
        await s.close();
      }
    },
  );

  it('a batch size computed before the Dropout is recomputed after the tiling (its nodes move out of the prefix)', async () => {
    const x = Float32Array.from({ length: 12 }, (_, i) => i + 1);
    const s = await createTensorSampler(regressionInit(shapeFromPrefix(), [4], x, 3, [2, 2]));
    try {
      expect(s.shape.movedNodes).toBe(3);
      expect(s.shape.prefixNodes).toBe(0);
      const r = await s.sample([{ name: 'x', dims: [3, 4], data: x }], 3, { samples: 50, interval: 0.9, seed: 1 });
      expect(r.outputDims).toEqual([3, 2, 2]);
      const mean = (r.stats as RegressionStats).mean;
      for (let i = 0; i < 12; i++) expect(Math.abs(mean[i]! - x[i]!)).toBeLessThan(5 * x[i]! * Math.sqrt(1 / 3 / 50));
    } finally {
      await s.close();
    }
  });
});

describe('tensor MC: free non-batch dimensions', () => {
  it('a free dimension: each input shape gets its own probed mask and output shapes (x [N, F] → Dropout → y at F = 4, then 6, then 4 again)', async () => {
    const bytes = buildModel({
      opset: 13,
      nodes: [{ op_type: 'Dropout', input: ['x', 'ratio'], output: ['y'], name: 'drop' }],
      inits: [{ name: 'ratio', dims: [], data_type: DataType.FLOAT, float_data: [0.5] }],
      inputs: [vi('x', DataType.FLOAT, ['N', 'F'])],
      outputs: [vi('y', DataType.FLOAT, ['N', 'F'])],
    });
    const x = (F: number) => Float32Array.from({ length: 2 * F }, (_, i) => i + 1);
    const s = await createTensorSampler({
      ...regressionInit(bytes, [4], x(4), 2, [-1]),
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, -1] }],
    });
    try {
      for (const F of [4, 6, 4]) {
        const r = await s.sample([{ name: 'x', dims: [2, F], data: x(F) }], 2, {
          samples: 200,
          interval: 0.9,
          seed: F,
        });
        expect(r.outputDims).toEqual([2, F]);
        const { mean, epistemicStd } = r.stats as RegressionStats;
        expect(mean.length).toBe(2 * F);
        // a p = 0.5 inverted-dropout mask: mean x, std x (0 or 2x)
        for (let i = 0; i < 2 * F; i++) {
          expect(Math.abs(mean[i]! - (i + 1))).toBeLessThan(5 * (i + 1) * Math.sqrt(1 / 200));
          expect(Math.abs(epistemicStd[i]! - (i + 1))).toBeLessThan(0.25 * (i + 1));
        }
      }
    } finally {
      await s.close();
    }
  });
});
