/**
 * bench/auto-samples.ts: its options, where a model's rows come from, the equal-error T, and a small run
 * on the shipped diabetes model whose figures follow the Monte Carlo error's 1/√T.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchModel, dataCsvFor, dataRows, fixedTAtEqualError, parseAutoArgs } from '../../bench/auto-samples.js';

describe('bench/auto-samples.ts', () => {
  it('parses its options: the shipped models by default, --model with --data paired in order', () => {
    const d = parseAutoArgs([]);
    expect(d.models).toEqual([
      { dir: 'models/diabetes', data: null },
      { dir: 'models/wine', data: null },
    ]);
    expect([d.rows, d.seeds, d.truth, d.tolerances, d.passes, d.batchRows, d.batchOnly, d.out]).toEqual([
      20,
      10,
      20000,
      [0.1, 0.05, 0.02, 0.01],
      3,
      64,
      false,
      null,
    ]);
    const o = parseAutoArgs([
      '--model',
      'a',
      '--data',
      'a.csv',
      '--model',
      'b',
      '--tolerances',
      '0.02',
      '--out',
      'x.json',
    ]);
    expect(o.models).toEqual([
      { dir: 'a', data: 'a.csv' },
      { dir: 'b', data: null },
    ]);
    expect([o.tolerances, o.out]).toEqual([[0.02], 'x.json']);
    expect(() => parseAutoArgs(['--model', 'a', '--data', 'x', '--data', 'y'])).toThrow(
      '--data given 2 times for 1 --model',
    );
    expect(() => parseAutoArgs(['--tolerances', '0.05,0'])).toThrow('--tolerances 0.05,0: each in (0, 1]');
    expect(() => parseAutoArgs(['--rows', '0'])).toThrow('--rows 0: expected a positive integer');
  });

  it("finds a model's rows: the CSV given, data/<name>.csv, or the UCI harness's kept training split", () => {
    expect(dataCsvFor('models/diabetes', null)).toBe(join('data', 'diabetes.csv'));
    expect(dataCsvFor('anything', 'mine.csv')).toBe('mine.csv');
    const kept = mkdtempSync(join(tmpdir(), 'auto-samples-'));
    try {
      const model = join(kept, 'yacht', 'models', 'yacht-3');
      mkdirSync(model, { recursive: true });
      writeFileSync(join(kept, 'yacht', 'train_3.csv'), 'x0,x1,y\n1,2,3\n4,5,6\n7,8,9\n');
      expect(dataCsvFor(model, null)).toBe(join(model, '..', '..', 'train_3.csv'));
      // two rows spread over three, columns by the model's feature names
      expect(dataRows(join(kept, 'yacht', 'train_3.csv'), ['x1', 'x0'], 2)).toEqual([
        Float32Array.from([2, 1]),
        Float32Array.from([5, 4]),
      ]);
      expect(() => dataRows(join(kept, 'yacht', 'train_3.csv'), ['x0', 'x9'], 2)).toThrow(
        "no column for the model's features x9",
      );
      expect(() => dataCsvFor(join(kept, 'yacht', 'models', 'yacht-4'), null)).toThrow('give --data CSV');
    } finally {
      rmSync(kept, { recursive: true, force: true });
    }
  });

  it('the fixed T at equal error goes with the squared error ratio', () => {
    expect(fixedTAtEqualError(0.01, 0.01)).toBe(1000);
    expect(fixedTAtEqualError(0.01, 0.01 * Math.sqrt(10))).toBe(100);
    expect(fixedTAtEqualError(0.01, 0.02)).toBe(250);
  });

  it('diabetes: fixed T uses T, the error at T = 100 is about √10 that at 1000, auto stops at a check', async () => {
    const logs: string[] = [];
    const r = await benchModel(
      { dir: 'models/diabetes', data: null },
      {
        models: [],
        rows: 20,
        seeds: 10,
        truth: 20000,
        tolerances: [0.05],
        passes: 1,
        batchRows: 16,
        batchOnly: false,
        out: null,
        log: (l) => logs.push(l),
      },
    );
    expect(r.methods.map((m) => m.method)).toEqual(['fixed T=100', 'fixed T=1000', 'auto tol=0.05']);
    const [t100, t1000, auto] = r.methods;
    expect([t100!.samples, t1000!.samples]).toEqual([100, 1000]);
    expect(t1000!.fixedTSameError).toBe(1000);
    // the equal-error CPU lies on the line through the two fixed T
    expect(t1000!.fixedCpuMsSameError).toBeCloseTo(t1000!.cpuMs, 12);
    expect(t100!.fixedCpuMsSameError).toBeCloseTo(
      t100!.cpuMs + ((t1000!.cpuMs - t100!.cpuMs) * (t100!.fixedTSameError - 100)) / 900,
      12,
    );
    // 200 requests per method (a few rows carry most of the std's error, so fewer are noisy): the
    // equal-error T of fixed T = 100 lands near 100
    expect(t100!.fixedTSameError).toBeGreaterThan(50);
    expect(t100!.fixedTSameError).toBeLessThan(200);
    expect(t100!.stdError).toBeGreaterThan(2 * t1000!.stdError);
    // every one-row "auto" request stops at one of the checks 30, 60, 90, …
    for (const s of auto!.rowSamples) expect(s).toBeGreaterThanOrEqual(30);
    expect(auto!.samples).toBeLessThan(1000);
    const [b] = r.batch;
    expect(b!.rows).toBe(20);
    expect(b!.requestSamples).toBeGreaterThanOrEqual(30);
    expect(b!.wasted).toBeCloseTo(1 - b!.rowMeanSamples / b!.drawnPerRow, 12);
    expect(b!.rowMaxSamples).toBe(Math.max(...auto!.rowSamples));
    // each row stops on its own: the request draws fewer row-samples than rows × its slowest row's
    expect(b!.drawnPerRow).toBeLessThan(b!.requestSamples);
    const [multi] = r.multiRow;
    expect(multi!.rows).toBe(16);
    expect(multi!.saved).toBeCloseTo(1 - multi!.drawnPerRow / multi!.requestSamples, 12);
    expect(multi!.saved).toBeGreaterThan(0);
  });
});
