/**
 * The byte budget on the tabular path (sessions.ts byteCappedRows): a tabular model's maxRunRows — the
 * tiled rows of one MC run and of its load-time self-check — is capped by maxRunBytes over the probed
 * activation bytes of one row, so a wide network no longer self-checks thousands of full-network rows.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RUNTIME_OPTIONS, type RuntimeOptions } from '../../../src/model/model.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import type { RegressionStats } from '../../../src/uncertainty/record.js';
import { tinyDropoutNet } from '../../helpers/onnx.js';

const dir = mkdtempSync(join(tmpdir(), 'ds-cap-'));

describe('tabular models: maxRunRows capped by maxRunBytes', () => {
  it('a 3 → 4 → 1 network: 96 bytes a row (13 activations, 3 tiled inputs, a 4-value mask twice), so 960 bytes cap runs at 10 rows, with the same answer', async () => {
    const file = join(dir, 'tiny.onnx');
    writeFileSync(file, tinyDropoutNet(3, 4, 0.5));
    const wide = await OnnxModel.load('wide', file, null, DEFAULT_RUNTIME_OPTIONS);
    const capped = await OnnxModel.load('capped', file, null, {
      ...DEFAULT_RUNTIME_OPTIONS,
      maxRunBytes: 960,
    } as RuntimeOptions);
    try {
      expect(wide.maxRunRows).toBe(DEFAULT_RUNTIME_OPTIONS.maxRunRows);
      expect(capped.maxRunRows).toBe(10);
      const x = Float32Array.from({ length: 21 }, (_, i) => (i % 5) / 5 - 0.4);
      const opts = { samples: 40, interval: 0.9, seed: 5 };
      // one live dropout: the mask stream runs on across chunks, so chunking does not change the answer
      const a = (await wide.sample(x, 7, opts)).stats as RegressionStats;
      const b = (await capped.sample(x, 7, opts)).stats as RegressionStats;
      for (let i = 0; i < 7; i++) {
        expect(b.mean[i]).toBeCloseTo(a.mean[i]!, 6);
        expect(b.epistemicStd[i]).toBeCloseTo(a.epistemicStd[i]!, 6);
      }
    } finally {
      await Promise.all([wide.close(), capped.close()]);
    }
  });

  it('the flat mobilenet (megabytes a row) loads with the default 4096 rows in seconds: its check runs ≤ 256 MiB', async () => {
    const card = join(dir, 'card.json');
    writeFileSync(card, JSON.stringify({ task: 'classification', output_kind: 'logits' }));
    const m = await OnnxModel.load('flat', 'test/fixtures/tensor/mobilenet_flat.onnx', card, DEFAULT_RUNTIME_OPTIONS);
    try {
      // 3·96·96 inputs alone are 110 kB a row; the whole network's activations a few MB
      expect(m.maxRunRows).toBeGreaterThan(10);
      expect(m.maxRunRows).toBeLessThan((256 * 1024 * 1024) / (1024 * 1024));
      expect(m.copyOptions().maxRunRows).toBe(m.maxRunRows);
    } finally {
      await m.close();
    }
  }, 60_000);
});
