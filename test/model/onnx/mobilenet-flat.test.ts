/**
 * The flattened mobilenet_v3_small fixture (test/fixtures/tensor/make_flat_fixtures.py: mobilenet.onnx
 * behind a Reshape from [N, 3·96·96]) loads through the ordinary loader, whose self-check runs on the
 * sample input stored beside it within the tolerance of its depth (issue 19 item 4), and answers as
 * PyTorch does: predict within 1e-4 of the output's scale at batch 1 and 8, MC class probabilities
 * within sampling error of PyTorch's Monte Carlo (references.json, `mobilenet`).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RUNTIME_OPTIONS } from '../../../src/model/model.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import type { ClassificationStats } from '../../../src/uncertainty/record.js';

const fx = 'test/fixtures/tensor';
const F = 3 * 96 * 96;
const ref = JSON.parse(readFileSync(`${fx}/references.json`, 'utf8')).fixtures.mobilenet as {
  eval: { batch8: number[]; batch1: number[] };
  mc: { rows: number; passes: number; probabilities: number[]; probabilities_std: number[] };
};
const bytes = readFileSync(`${fx}/mobilenet.input.bin`);
const images = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
const scaleOf = (v: number[]): number => Math.max(...v.map(Math.abs));

let model: OnnxModel;
beforeAll(async () => {
  // a small maxRunRows keeps the load-time check (full-network runs of up to maxRunRows images) short
  const card = join(mkdtempSync(join(tmpdir(), 'ds-flat-')), 'card.json');
  writeFileSync(card, JSON.stringify({ task: 'classification', output_kind: 'logits' }));
  model = await OnnxModel.load('mobilenet_flat', `${fx}/mobilenet_flat.onnx`, card, {
    ...DEFAULT_RUNTIME_OPTIONS,
    maxRunRows: 64,
  });
}, 120_000);
afterAll(() => model?.close());

describe('mobilenet_flat: a deep network flattened to [N, F] (issue 19 item 4)', () => {
  it('loads through the ordinary loader: [N, 27648] → [N, 10], one dropout, the shared prefix kept', () => {
    expect(model.features.length).toBe(F);
    expect(model.outputSize).toBe(10);
    expect(model.dropoutRates).toEqual([0.2]);
    expect(model.sharedPrefix).toBe(true);
  });

  it("predicts PyTorch's eval logits within 1e-4 of the output's scale at batch 1 and 8", async () => {
    const scale = scaleOf(ref.eval.batch8);
    const b8 = await model.predict(images, 8);
    const b1 = await model.predict(images.subarray(0, F), 1);
    expect(b8.length).toBe(80);
    for (let j = 0; j < 80; j++) expect(Math.abs(b8[j]! - ref.eval.batch8[j]!)).toBeLessThanOrEqual(1e-4 * scale);
    for (let j = 0; j < 10; j++) expect(Math.abs(b1[j]! - ref.eval.batch1[j]!)).toBeLessThanOrEqual(1e-4 * scale);
  });

  it("MC class probabilities agree with PyTorch's Monte Carlo within sampling error (5 standard errors)", async () => {
    const T = 1000;
    const rows = ref.mc.rows;
    const { stats } = await model.sample(images.subarray(0, rows * F), rows, { samples: T, interval: 0.9, seed: 19 });
    const s = stats as ClassificationStats;
    expect(s.kind).toBe('classification');
    let checked = 0;
    for (let j = 0; j < rows * 10; j++) {
      const se = ref.mc.probabilities_std[j]! * Math.sqrt(1 / T + 1 / ref.mc.passes);
      expect(Math.abs(s.probabilities[j]! - ref.mc.probabilities[j]!)).toBeLessThanOrEqual(5 * se + 1e-6);
      if (ref.mc.probabilities_std[j]! > 0.01) checked++;
    }
    // the dropout is live: most probabilities vary between passes, so the comparison is not of constants
    expect(checked).toBeGreaterThan(10);
  });
});
