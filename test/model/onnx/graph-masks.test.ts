/**
 * Dropout masks drawn inside the graph (src/model/onnx/graph-masks.ts, issue 19 item 3): the graph's
 * keep bits equal the host reference of the hash bit for bit, on a Dropout whose input has no batch
 * first (attention weights [N·heads, L, L]); the keep rate is within binomial error; masks are
 * independent across elements, rows, samples and seeds (pairwise agreement rates); the same keys give
 * the same answer and other seeds another; and a tabular model's Monte Carlo statistics equal the
 * host-mask path's in distribution.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RUNTIME_OPTIONS } from '../../../src/model/model.js';
import {
  MASK_KEYS_INPUT,
  hashMaskedModel,
  keepThreshold,
  maskKeys,
  squares32,
} from '../../../src/model/onnx/graph-masks.js';
import { inspect } from '../../../src/model/onnx/inspect.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import { type OrtSession, createSession } from '../../../src/model/onnx/ort.js';
import { inputTilePoint, mcGraph, repeatsInputName } from '../../../src/model/onnx/rewrite.js';
import type { RegressionStats } from '../../../src/uncertainty/record.js';
import { DataType, encodeModel } from '../../../src/onnx-proto/proto.js';
import { f32, model, vi } from '../../helpers/onnx.js';

const HEADS = 4;
const L = 16;
const P = 0.3;
const KEEP = 1 - P;

/** x [N, heads·L·L] → Reshape [N·heads, L, L] → Softmax → Dropout(P) → a [N·heads, L, L], also y [N, heads·L·L]. */
function attentionGraph(): Uint8Array {
  return model({
    opset: 14,
    nodes: [
      { op_type: 'Reshape', input: ['x', 'heads_shape'], output: ['s'] },
      { op_type: 'Softmax', input: ['s'], output: ['w'] },
      { op_type: 'Dropout', input: ['w', 'ratio', 'tm'], output: ['a'] },
      { op_type: 'Reshape', input: ['a', 'rows_shape'], output: ['y'] },
    ],
    inits: [
      { name: 'heads_shape', dims: [3], data_type: DataType.INT64, int64_data: [-1, L, L] },
      { name: 'rows_shape', dims: [2], data_type: DataType.INT64, int64_data: [-1, HEADS * L * L] },
      f32('ratio', [], [P]),
      { name: 'tm', dims: [], data_type: DataType.BOOL, raw_data: new Uint8Array([1]) },
    ],
    inputs: [vi('x', DataType.FLOAT, ['batch', HEADS * L * L])],
    outputs: [vi('y', DataType.FLOAT, ['batch', HEADS * L * L]), vi('a', DataType.FLOAT, ['heads', L, L])],
  });
}

const N = 8;
const F = HEADS * L * L;
let attention: OrtSession;
/** Keep bits (1/0) of the attention dropout for rows N of x = 0 (softmax = 1/L everywhere) and `keys`. */
async function keepBits(keys: BigInt64Array, rows = N): Promise<Uint8Array> {
  const out = await attention.run(
    { x: { data: new Float32Array(rows * F), dims: [rows, F] }, [MASK_KEYS_INPUT]: { data: keys, dims: [1] } },
    ['a'],
  );
  expect(out.a!.dims).toEqual([rows * HEADS, L, L]);
  return Uint8Array.from(out.a!.data, (v) => (v === 0 ? 0 : 1));
}
const agreement = (a: Uint8Array, b: Uint8Array): number => {
  let same = 0;
  for (let i = 0; i < a.length; i++) same += a[i] === b[i] ? 1 : 0;
  return same / a.length;
};
/** Pairwise agreement of independent keep bits: KEEP² + P²; 5 binomial standard errors for n pairs. */
const AGREE = KEEP * KEEP + P * P;
const agreeTol = (n: number): number => 5 * Math.sqrt((AGREE * (1 - AGREE)) / n);

beforeAll(async () => {
  const { model: m, info } = inspect(attentionGraph());
  attention = await createSession(encodeModel(hashMaskedModel(m, info)), { intraOpThreads: 1 });
});
afterAll(() => attention?.release());

describe('in-graph dropout masks on attention weights [N·heads, L, L]', () => {
  it('kept values are x/(1 − p), dropped ones 0, and every keep bit equals the host reference squares32(index, key) < (1 − p)·2³²', async () => {
    const keys = maskKeys(7, 0, 1);
    const out = await attention.run(
      { x: { data: new Float32Array(N * F), dims: [N, F] }, [MASK_KEYS_INPUT]: { data: keys, dims: [1] } },
      ['a'],
    );
    const thr = Number(keepThreshold(P));
    const a = out.a!.data;
    for (let i = 0; i < a.length; i++) {
      const keep = squares32(BigInt(i), keys[0]!) < thr;
      expect(a[i]).toBe(keep ? Math.fround(Math.fround(1 / L) * Math.fround(1 / KEEP)) : 0);
    }
  });

  it('keep rate within binomial error, over 20 runs of 32 × 16 × 16', async () => {
    let kept = 0;
    let n = 0;
    for (let run = 0; run < 20; run++) {
      const bits = await keepBits(maskKeys(11, run, 1));
      kept += bits.reduce((s, b) => s + b, 0);
      n += bits.length;
    }
    expect(Math.abs(kept / n - KEEP)).toBeLessThan(5 * Math.sqrt((KEEP * P) / n));
  });

  it('independent across neighbouring elements, rows, heads, samples (runs) and seeds: pairwise agreement KEEP² + P²', async () => {
    const a = await keepBits(maskKeys(3, 0, 1));
    const shifted = (by: number): [Uint8Array, Uint8Array] => [a.subarray(0, a.length - by), a.subarray(by)];
    // next element, next row of one head's L × L, next head, next batch row
    for (const by of [1, L, L * L, F]) {
      const [x, y] = shifted(by);
      expect(Math.abs(agreement(x, y) - AGREE)).toBeLessThan(agreeTol(x.length));
    }
    const nextRun = await keepBits(maskKeys(3, 1, 1));
    const otherSeed = await keepBits(maskKeys(4, 0, 1));
    expect(Math.abs(agreement(a, nextRun) - AGREE)).toBeLessThan(agreeTol(a.length));
    expect(Math.abs(agreement(a, otherSeed) - AGREE)).toBeLessThan(agreeTol(a.length));
  });

  it('the same seed gives the same masks (keys and graph); another seed other masks; masks do not depend on rows after the first', async () => {
    expect(maskKeys(5, 2, 3)).toEqual(maskKeys(5, 2, 3));
    expect(new Set([...maskKeys(5, 2, 3), ...maskKeys(5, 3, 3), ...maskKeys(6, 2, 3)]).size).toBe(9);
    const a = await keepBits(maskKeys(5, 0, 1));
    expect(await keepBits(maskKeys(5, 0, 1))).toEqual(a);
    expect(await keepBits(maskKeys(6, 0, 1))).not.toEqual(a);
    // the counter is the element's flat index: a run of 2 rows draws the first 2 rows' masks of a run of 8
    expect(await keepBits(maskKeys(5, 0, 1), 2)).toEqual(a.subarray(0, 2 * F));
  });

  it('refuses a model below opset 11 (no Range, no BitShift)', () => {
    const { model: m, info } = inspect(attentionGraph());
    expect(() => hashMaskedModel(m, { ...info, opset: 10 })).toThrow(
      'in-graph dropout masks need opset ≥ 11; the model has 10',
    );
  });
});

describe('in-graph masks on a shipped tabular model: the same distribution as the host-mask path', () => {
  it("diabetes, one row, T = 4000: mean and std of the MC samples agree with OnnxModel.sample's (5 standard errors)", async () => {
    const file = 'models/diabetes/model.onnx';
    const host = await OnnxModel.load('diabetes', file, 'models/diabetes/model.json', DEFAULT_RUNTIME_OPTIONS);
    const Fd = host.features.length;
    const x = Float32Array.from(
      { length: Fd },
      (_, j) => host.featureStats!.mean[j]! + 0.5 * host.featureStats!.std[j]!,
    );
    const T = 4000;
    const { stats } = await host.sample(x, 1, { samples: T, interval: 0.9, seed: 1, returnSamples: true });
    const hostRaw = Array.from((stats as RegressionStats).raw!);
    await host.close();

    const { model: m, info } = inspect(readFileSync(file));
    const session = await createSession(mcGraph(m, info, inputTilePoint(info), hashMaskedModel), { intraOpThreads: 1 });
    const live = info.dropouts.filter((d) => d.ratio > 0).length;
    const graphRaw: number[] = [];
    for (let run = 0; run < 4; run++) {
      const out = await session.run(
        {
          [info.input.name]: { data: x, dims: [1, Fd] },
          [repeatsInputName(0)]: { data: BigInt64Array.of(BigInt(T / 4), 1n), dims: [2] },
          [MASK_KEYS_INPUT]: { data: maskKeys(1, run, live), dims: [live] },
        },
        ['prediction'],
      );
      graphRaw.push(...out.prediction!.data);
    }
    await session.release();
    const mean = (v: number[]): number => v.reduce((s, a) => s + a, 0) / v.length;
    const std = (v: number[]): number => Math.sqrt(v.reduce((s, a) => s + (a - mean(v)) ** 2, 0) / (v.length - 1));
    expect(graphRaw.length).toBe(T);
    const sd = std(hostRaw);
    expect(sd).toBeGreaterThan(0);
    // two independent estimates: SE of a mean σ√(2/T); of a std ≈ σ√(2/(2T)) (near-normal outputs), with room for kurtosis
    expect(Math.abs(mean(graphRaw) - mean(hostRaw))).toBeLessThan(5 * sd * Math.sqrt(2 / T));
    expect(Math.abs(std(graphRaw) - sd)).toBeLessThan(5 * sd * Math.sqrt(3 / T));
  });
});
