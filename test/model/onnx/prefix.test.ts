import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspect } from '../../../src/model/onnx/inspect.js';
import { mcGraph, sharedPrefixPoint } from '../../../src/model/onnx/rewrite.js';
import type { RegressionStats } from '../../../src/uncertainty/record.js';
import { DEFAULT_RUNTIME_OPTIONS } from '../../../src/model/model.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import { DataType, decodeModel } from '../../../src/onnx-proto/proto.js';
import { readCsvFile, toDataset } from '../../../src/train/data.js';
import { exportOnnx } from '../../../src/train/export-onnx.js';
import { DEFAULT_TRAIN_OPTIONS, train } from '../../../src/train/train.js';
import { f32, gemm, model, vi } from '../../helpers/onnx.js';

const dir = mkdtempSync(join(tmpdir(), 'ds-prefix-'));
const diabetes = toDataset(readCsvFile('data/diabetes.csv').table, { target: 'target' });

describe('shared prefix (layers before the first dropout run once per row)', () => {
  // 10 → 32 → 32 → 32 → Dropout(0.4) → 1: three deterministic layers, then the only live dropout
  const trained = train(diabetes, {
    ...DEFAULT_TRAIN_OPTIONS,
    hidden: [32, 32, 32],
    dropout: [0, 0, 0.4],
    epochs: 15,
    mcSamples: 10,
  });
  const file = join(dir, 'deep.onnx');
  writeFileSync(file, exportOnnx(trained, {}));
  const rows = Float32Array.from(diabetes.x.subarray(0, 40));

  it('the exporter writes no Dropout node for rate-0 layers; the rows are repeated after the three layers (by broadcast in the head)', () => {
    const { model: m, info } = inspect(exportOnnx(trained, {}));
    expect(info.dropouts.map((d) => d.ratio)).toEqual([0.4]);
    const point = sharedPrefixPoint(m, info)!;
    expect(point.tensors).toEqual(['hidden.2.relu']);
    const ops = decodeModel(mcGraph(m, info, point)).graph!.node.map((n) => n.op_type);
    // the one-column head after the dropout reads the prefix's rows by broadcast, without a Tile (mc-head.ts)
    const head = ops.indexOf('Reshape');
    expect(ops.slice(0, head).filter((o) => o === 'Gemm')).toHaveLength(3);
    expect(ops.slice(head, head + 5)).toEqual(['Reshape', 'Mul', 'ReduceSum', 'Add', 'Reshape']);
    expect(ops).not.toContain('Tile');
  });

  it('gives the same answer as the unsplit graph for the same seed, and the same statistics', async () => {
    const split = await OnnxModel.load('deep', file, null, { ...DEFAULT_RUNTIME_OPTIONS, sharedPrefix: true });
    const plain = await OnnxModel.load('deep', file, null, { ...DEFAULT_RUNTIME_OPTIONS, sharedPrefix: false });
    expect([split.sharedPrefix, plain.sharedPrefix]).toEqual([true, false]);
    const opts = { samples: 2000, interval: 0.9, seed: 77 };
    const a = (await split.sample(rows, 4, opts)).stats as RegressionStats;
    const b = (await plain.sample(rows, 4, opts)).stats as RegressionStats;
    // same masks (same seed, same mask shapes and order): equal up to float32 kernel differences
    for (let i = 0; i < 4; i++) {
      expect(Math.abs(a.mean[i]! - b.mean[i]!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(b.mean[i]!)));
      expect(Math.abs(a.epistemicStd[i]! - b.epistemicStd[i]!)).toBeLessThan(1e-3 * b.epistemicStd[i]!);
      expect(a.epistemicStd[i]).toBeGreaterThan(0);
    }
    // different seeds: equal in distribution (within Monte Carlo error)
    const c = (await plain.sample(rows, 4, { ...opts, seed: 78 })).stats as RegressionStats;
    for (let i = 0; i < 4; i++) {
      expect(Math.abs(a.mean[i]! - c.mean[i]!)).toBeLessThan((5 * Math.SQRT2 * c.epistemicStd[i]!) / Math.sqrt(2000));
      expect(Math.abs(a.epistemicStd[i]! / c.epistemicStd[i]! - 1)).toBeLessThan(0.1);
    }
    await split.close();
    await plain.close();
  });

  it('a dropout on the input itself leaves nothing to share: no split', () => {
    const bytes = model({
      nodes: [{ op_type: 'Dropout', input: ['x', 'r'], output: ['d'] }, gemm('d', 'W', 'b', 'y')],
      inits: [f32('r', [], [0.5]), f32('W', [1, 3], [1, 2, 3]), f32('b', [1], [0])],
      inputs: [vi('x', DataType.FLOAT, ['batch', 3])],
      outputs: [vi('y', DataType.FLOAT, ['batch', 1])],
    });
    const { model: m, info } = inspect(bytes);
    expect(sharedPrefixPoint(m, info)).toBeNull();
  });
});
