/**
 * The load-time self-check's tolerance and inputs (issue 19 item 4): values agree within a tolerance
 * scaled to the output's magnitude and the graph's depth, on rows like real ones (a sample beside the
 * model, the card's feature statistics, else a bounded smooth range), and a graph that really differs
 * is still refused.
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelLoadError } from '../../../src/model/errors.js';
import {
  boundedInput,
  checkInputFor,
  readSampleInput,
  sampleInput,
  sampleInputFiles,
  statsInput,
} from '../../../src/model/onnx/check-input.js';
import { accumulatingLayers } from '../../../src/model/onnx/graph-query.js';
import { inspect } from '../../../src/model/onnx/inspect.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import {
  DEFAULT_AGREEMENT,
  type ServingRuns,
  agreementFor,
  magnitude,
  rtolForDepth,
  selfCheck,
} from '../../../src/model/onnx/self-check.js';
import { serving } from '../../helpers/serving.js';

const dir = mkdtempSync(join(tmpdir(), 'ds-selfcheck-'));
const tabular = 'test/fixtures/torch/legacy_train_op13.onnx';

/** Runs whose eval output is `evalOut(row)` and whose MC output (masks of 1) is `mcOut(row, sample)`. */
function fakeRuns(
  evalOut: (row: number, k: number) => number,
  mcOut: (row: number, k: number) => number,
  K = 3,
): ServingRuns {
  const rowIds = (x: Float32Array, rows: number): number[] =>
    Array.from({ length: rows }, (_, i) => Math.round(x[i * 2]! * 1000));
  const fill = (ids: number[], f: (r: number, k: number) => number): Float32Array =>
    Float32Array.from(ids.flatMap((r) => Array.from({ length: K }, (_, k) => f(r, k))));
  return {
    features: 2,
    outputSize: K,
    maxRunRows: 64,
    evalRun: async (x, rows) => fill(rowIds(x, rows), evalOut),
    mcGraphs: [
      {
        label: 'plain',
        runOnes: async (x, rows, samples) => {
          const one = fill(rowIds(x, rows), mcOut);
          const out = new Float32Array(samples * one.length);
          for (let t = 0; t < samples; t++) out.set(one, t * one.length);
          return out;
        },
      },
    ],
  };
}
/** Row i's first feature encodes i, so fake runs can tell the rows apart. */
const idInput = (rows: number, features: number): Float32Array => {
  const x = new Float32Array(rows * features);
  for (let i = 0; i < rows; i++) x[i * features] = i / 1000;
  return x;
};

describe('the tolerance: scaled to the output and to the graph depth', () => {
  it('rtol grows with the accumulating layers, never below 4 layers (1e-4)', () => {
    expect(rtolForDepth(0)).toBeCloseTo(1e-4, 12);
    expect(rtolForDepth(4)).toBeCloseTo(1e-4, 12);
    expect(rtolForDepth(54)).toBeCloseTo(1.35e-3, 12);
  });

  it("the issue's numbers: 2.9046688 vs 2.9020252 with logits up to 9 is refused at depth 4 and accepted at mobilenet's depth", () => {
    expect(DEFAULT_AGREEMENT(2.9046688, 2.9020252, 9.15)).toBe(false);
    expect(agreementFor(54)(2.9046688, 2.9020252, 9.15)).toBe(true);
    // a real difference at that depth (1 % of the largest logit) is still refused
    expect(agreementFor(54)(2.9020252 + 0.0915, 2.9020252, 9.15)).toBe(false);
  });

  it('scaled to the run, not the element: a logit near 0 may differ by rtol of the largest one; NaN agrees with NaN', () => {
    const agree = agreementFor(4);
    expect(agree(0.0009, 0, 10)).toBe(true);
    expect(agree(0.0012, 0, 10)).toBe(false);
    expect(agree(Number.NaN, Number.NaN, 1)).toBe(true);
    expect(agree(Number.NaN, 0, 1)).toBe(false);
    expect(magnitude(Float32Array.of(-3, Number.POSITIVE_INFINITY, 2, Number.NaN))).toBe(3);
  });

  it('selfCheck passes an MC graph within the tolerance and refuses one outside it, naming the run and the values', async () => {
    const ev = (r: number, k: number): number => 100 * Math.sin(r + k);
    const tol = rtolForDepth(4) * (1 + 100);
    // 0.5 × the tolerance on the largest element: float32 noise at that scale
    const near = fakeRuns(ev, (r, k) => ev(r, k) + 0.5 * tol * Math.sign(ev(r, k)));
    await selfCheck(near, { input: idInput });
    const off = fakeRuns(ev, (r, k) => ev(r, k) + (r === 2 && k === 1 ? 2 * tol : 0));
    await expect(selfCheck(off, { input: idInput })).rejects.toThrow(
      /^self-check: the plain Monte Carlo graph for 3 rows × 1 samples \(a few rows, one sample\) with dropout masks of 1 gives \S+ for sample 0 of row 2 where the eval graph gives \S+$/,
    );
  });

  it('a real ONNX graph whose MC variant is perturbed by 2 × the tolerance is refused; by 0.5 × it passes', async () => {
    const perturbed = async (factor: number): Promise<void> => {
      const s = await serving(readFileSync(tabular), { maxRunRows: 64, sharedPrefix: false });
      const g = s.runs.mcGraphs[0]!;
      const runOnes: typeof g.runOnes = async (x, rows, samples) => {
        const out = (await g.runOnes(x, rows, samples)).slice();
        out[out.length - 1]! += factor * rtolForDepth(4) * (1 + magnitude(out));
        return out;
      };
      try {
        await selfCheck({ ...s.runs, mcGraphs: [{ label: 'plain', runOnes }] });
      } finally {
        await s.close();
      }
    };
    await perturbed(0.5);
    await expect(perturbed(2)).rejects.toThrow(/^self-check: the plain Monte Carlo graph for 1 rows × 1 samples/);
  });

  it('accumulatingLayers counts the nodes that sum products (mobilenet_v3_small: its convolutions and linears)', () => {
    const { model } = inspect(readFileSync('test/fixtures/tensor/mobilenet_flat.onnx'));
    const n = accumulatingLayers(model.graph!);
    expect(n).toBeGreaterThan(40);
    expect(n).toBeLessThan(80);
    expect(accumulatingLayers(inspect(readFileSync(tabular)).model.graph!)).toBeLessThanOrEqual(4);
  });
});

describe('the check input: like real rows, never white noise', () => {
  const F = 300;
  it('bounded: in [−1, 1], smooth along the features, rows distinct, row i the same whatever the rows asked', () => {
    const x = boundedInput(8, F);
    expect(Math.max(...x.map(Math.abs))).toBeLessThanOrEqual(1);
    let step = 0;
    for (let i = 0; i < 8; i++)
      for (let j = 1; j < F; j++) step = Math.max(step, Math.abs(x[i * F + j]! - x[i * F + j - 1]!));
    // white noise in [−1, 1] jumps by ~1 between neighbours; three waves of ≤ 4 cycles over F features move ≤ 2π·4/F
    expect(step).toBeLessThan((2 * Math.PI * 4) / F);
    expect(Array.from(boundedInput(3, F))).toEqual(Array.from(x.subarray(0, 3 * F)));
    expect(x.subarray(0, F)).not.toEqual(x.subarray(F, 2 * F));
    expect(Math.max(...x) - Math.min(...x)).toBeGreaterThan(0.5);
  });

  it("from the card's feature_stats: within [min, max] of each feature, centred near its mean", () => {
    const stats = { rows: 10, min: [0, -5, 10], max: [1, 5, 10.5], mean: [0.5, 0, 10.2], std: [0.2, 3, 0.1] };
    const x = statsInput(stats)(400, 3);
    for (let i = 0; i < x.length; i++) {
      expect(x[i]!).toBeGreaterThanOrEqual(Math.fround(stats.min[i % 3]!));
      expect(x[i]!).toBeLessThanOrEqual(Math.fround(stats.max[i % 3]!));
    }
    const mean1 = x.filter((_, i) => i % 3 === 1).reduce((a, b) => a + b, 0) / 400;
    expect(Math.abs(mean1)).toBeLessThan(5 * (3 / Math.sqrt(400)));
  });

  it('from sample rows: each row a blend of two neighbouring sample rows (within their range), all rows distinct', () => {
    const sample = Float32Array.of(0, 10, 1, 20, 2, 30);
    const x = sampleInput(sample, 3)(7, 2);
    for (let i = 0; i < 7; i++) {
      const a = i % 3;
      const b = (i + 1) % 3;
      for (let j = 0; j < 2; j++) {
        const lo = Math.min(sample[a * 2 + j]!, sample[b * 2 + j]!);
        const hi = Math.max(sample[a * 2 + j]!, sample[b * 2 + j]!);
        expect(x[i * 2 + j]!).toBeGreaterThanOrEqual(lo + 0.25 * (hi - lo) - 1e-5);
        expect(x[i * 2 + j]!).toBeLessThanOrEqual(lo + 0.75 * (hi - lo) + 1e-5);
      }
    }
    expect(new Set(Array.from({ length: 7 }, (_, i) => x[i * 2])).size).toBe(7);
    const one = sampleInput(Float32Array.of(1, 2), 1)(4, 2);
    expect(new Set(Array.from({ length: 4 }, (_, i) => one[i * 2])).size).toBe(4);
  });

  it('checkInputFor prefers the sample, then the statistics, then the bounded range', () => {
    const stats = { rows: 1, min: [5], max: [5], mean: [5], std: [0] };
    const sample = { data: Float32Array.of(7, 7), rows: 2, file: 's' };
    expect(checkInputFor(sample, stats)(1, 1)[0]).toBe(7);
    expect(checkInputFor(null, stats)(1, 1)[0]).toBe(5);
    expect(checkInputFor(null, undefined)).toBe(boundedInput);
  });
});

describe('the sample input beside the model', () => {
  it('X.sample_input.bin (float32 rows) or X.sample_input.json (an array of rows) beside X.onnx; null when absent', async () => {
    expect(sampleInputFiles('/m/model.onnx')).toEqual({
      bin: '/m/model.sample_input.bin',
      json: '/m/model.sample_input.json',
    });
    const bin = join(dir, 'b.onnx');
    writeFileSync(join(dir, 'b.sample_input.bin'), Buffer.from(Float32Array.of(1, 2, 3, 4, 5, 6).buffer));
    expect(await readSampleInput(bin, 3)).toEqual({
      data: Float32Array.of(1, 2, 3, 4, 5, 6),
      rows: 2,
      file: join(dir, 'b.sample_input.bin'),
    });
    writeFileSync(join(dir, 'j.sample_input.json'), '[[1, 2], [3, 4], [5, 6]]');
    expect((await readSampleInput(join(dir, 'j.onnx'), 2))!.rows).toBe(3);
    expect(await readSampleInput(join(dir, 'none.onnx'), 2)).toBeNull();
    await expect(readSampleInput(bin, 4)).rejects.toThrow(
      `${join(dir, 'b.sample_input.bin')}: 24 bytes is not a whole number of float32 rows of 4`,
    );
    await expect(readSampleInput(join(dir, 'j.onnx'), 3)).rejects.toThrow(
      `${join(dir, 'j.sample_input.json')}: expected a non-empty array of rows of 3 finite numbers`,
    );
  });

  it('the loader reads it: a sample of the wrong width is a ModelLoadError naming the file', async () => {
    const file = join(dir, 'tab.onnx');
    copyFileSync(tabular, file);
    writeFileSync(join(dir, 'tab.sample_input.json'), '[[1, 2, 3]]');
    const err = await OnnxModel.load('tab', file, null).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as Error).message).toMatch(
      /tab\.sample_input\.json: expected a non-empty array of rows of \d+ finite numbers$/,
    );
  });
});
