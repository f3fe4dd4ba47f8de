import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  chunkRows,
  DEFAULT_UCI_OPTIONS,
  loadUci,
  QUERY_ROWS,
  meanSe,
  parseUciArgs,
  runUci,
  scoreSplit,
  splitCsv,
  trainingOrder,
} from '../../bench/uci.js';
import { gaussianLogLik } from '../../src/uncertainty/scoring.js';
import { nextAutoCheck } from '../../src/uncertainty/stopping.js';

describe('UCI benchmark harness', () => {
  it('reads the published splits: 90/10, disjoint, every row once per split', () => {
    const ds = loadUci('data/uci', 'yacht');
    expect(ds.rows).toHaveLength(308);
    expect(ds.features).toEqual([0, 1, 2, 3, 4, 5]);
    expect(ds.target).toBe(6);
    expect(ds.splits).toBe(20);
    const tr = ds.train(3);
    const te = ds.test(3);
    expect(tr.length + te.length).toBe(308);
    expect(new Set([...tr, ...te]).size).toBe(308);
    expect(splitCsv(ds, [0]).split('\n')[0]).toBe('x0,x1,x2,x3,x4,x5,y');
  });

  it('scores served rows: RMSE, log-likelihood, coverage and width of the gaussian and the conformal intervals', () => {
    const y = [1, 2, 3, 10];
    const row = (mean: number, std: number, z: number) => ({ mean, std, lower: mean - z * std, upper: mean + z * std });
    const byLevel = Object.fromEntries(
      [0.5, 0.8, 0.9, 0.95].map((l) => [String(l), y.map((_, i) => row(i + 1, 1, l === 0.9 ? 1.6449 : 0.5))]),
    );
    // conformal: served at 0.5 and 0.9 (half-widths 0.5 and 7), refused at 0.8 and 0.95
    const conformal = {
      '0.5': y.map((_, i) => row(i + 1, 1, 0.5)),
      '0.8': null,
      '0.9': y.map((_, i) => row(i + 1, 1, 7)),
    };
    const s = scoreSplit(y, byLevel, conformal);
    expect(s.rmse).toBeCloseTo(Math.sqrt(36 / 4), 12);
    expect(s.ll).toBeCloseTo((3 * gaussianLogLik(0, 0, 1) + gaussianLogLik(10, 4, 1)) / 4, 12);
    expect(s.coverage['0.9']).toBe(0.75);
    expect(s.width_90).toBeCloseTo(2 * 1.6449, 12);
    expect(s.conformal_coverage).toEqual({ '0.5': 0.75, '0.9': 1 });
    expect(s.conformal_width_90).toBeCloseTo(14, 12);
    expect(scoreSplit(y, byLevel, {}).conformal_width_90).toBeNaN();
    expect(meanSe([1, 2, 3])).toEqual([2, Math.sqrt(1 / 3)]);
  });

  it('trains every split in one queue, the largest training sets first (ties in the given order)', () => {
    const order = trainingOrder([
      { rows: 455, splits: 2 },
      { rows: 41157, splits: 2 },
      { rows: 455, splits: 1 },
      { rows: 8611, splits: 1 },
    ]);
    expect(order.map((o) => `${o.dataset}.${o.split}`)).toEqual(['1.0', '1.1', '3.0', '0.0', '0.1', '2.0']);
    expect(trainingOrder([])).toEqual([]);
  });

  it('parses its options and passes everything else to the training CLI', () => {
    const o = parseUciArgs([
      '--datasets',
      'yacht,energy',
      '--splits',
      '3',
      '--samples',
      '200',
      '--threads',
      '1',
      '--tune-epochs=10,20',
    ]);
    expect(o.datasets).toEqual(['yacht', 'energy']);
    expect([o.splits, o.samples]).toEqual([3, 200]);
    expect(o.trainArgs).toEqual(['--tune', '--members', '3', '--threads', '1', '--tune-epochs=10,20']);
    expect(parseUciArgs(['--members', '2']).trainArgs.slice(-2)).toEqual(['--members', '2']);
    expect(parseUciArgs(['--no-tune', '--epochs', '5']).trainArgs).toEqual(['--epochs', '5']);
    expect(parseUciArgs(['--jobs', '1']).trainArgs.slice(0, 2)).toEqual(['--tune', '--threads']);
    expect(() => parseUciArgs(['--datasets', 'iris'])).toThrow('--datasets: unknown dataset iris');
  });

  it('parses --samples auto with --tolerance, --trained and --paired-with as its own options', () => {
    const o = parseUciArgs([
      '--samples',
      'auto',
      '--tolerance',
      '0.02',
      '--trained',
      '/tmp/kept',
      '--paired-with',
      'ref.json',
      '--jobs',
      '1',
      '--nll-beta',
      '0.5',
    ]);
    expect([o.samples, o.tolerance, o.trained, o.pairedWith]).toEqual(['auto', 0.02, '/tmp/kept', 'ref.json']);
    expect(o.trainArgs).toEqual(['--tune', '--threads', expect.any(String), '--members', '3', '--nll-beta', '0.5']);
    expect(parseUciArgs(['--samples', 'auto'])).toMatchObject({ samples: 'auto', tolerance: null });
    expect(parseUciArgs([])).toMatchObject({ samples: 1000, tolerance: null, trained: null, pairedWith: null });
    expect(() => parseUciArgs(['--tolerance', '0.02'])).toThrow('--tolerance: only with --samples auto');
    expect(() => parseUciArgs(['--samples', 'auto', '--tolerance', '0'])).toThrow(
      '--tolerance 0: expected a number in (0, 1]',
    );
    expect(() => parseUciArgs(['--samples', 'many'])).toThrow('--samples many: expected a positive integer');
  });

  it('smoke run: yacht, 2 splits, short tuning → real server process → HTTP → finite, sane scores; the kept models served again, fixed and "auto"', async () => {
    const logs: string[] = [];
    const base = {
      ...DEFAULT_UCI_OPTIONS,
      datasets: ['yacht'],
      splits: 2,
      samples: 50,
      jobs: 2,
      runtime: 'tsx' as const,
      out: null,
      log: (line: string) => logs.push(line),
    };
    const r = await runUci({
      ...base,
      keep: true,
      trainArgs: [
        '--tune',
        '--tune-epochs',
        '30,60',
        '--tune-dropout',
        '0.05',
        '--tune-weight-decay',
        '1',
        '--tune-noise',
        'homoscedastic,heteroscedastic',
        '--threads',
        '1',
        '--mc-samples',
        '20',
        '--batch-size',
        '64',
      ],
    });
    const kept = /^kept (.+)$/.exec(logs.find((l) => l.startsWith('kept ')) ?? '')?.[1];
    expect(kept).toBeDefined();
    try {
      checkSmokeRun(r);
      // the kept models served again: the same answers at the same samples and seed, no training
      const again = await runUci({ ...base, trained: kept!, trainArgs: [] });
      const split = (x: typeof r) => x.datasets[0]!.per_split.map(({ train_ms: _m, train_cpu_s: _c, ...s }) => s);
      expect(split(again)).toEqual(split(r));
      expect(again.datasets[0]!.train_cpu_s).toBeNaN();
      // "auto": each split's requests stop at one of the rule's checks (30, 60, …, 270, 304, …, 1000)
      const auto = await runUci({ ...base, trained: kept!, trainArgs: [], samples: 'auto', tolerance: 0.1 });
      const checks = [nextAutoCheck(0, 1000)];
      while (checks.at(-1)! < 1000) checks.push(nextAutoCheck(checks.at(-1)!, 1000));
      expect(checks.slice(0, 10)).toEqual([30, 60, 90, 120, 150, 180, 210, 240, 270, 304]);
      for (const s of auto.datasets[0]!.per_split) {
        expect(checks, `split ${s.split}: ${s.samples_used}`).toContain(s.samples_used);
        expect(Number.isFinite(s.ll)).toBe(true);
      }
      expect(r.datasets[0]!.per_split.map((s) => s.samples_used)).toEqual([50, 50]);
    } finally {
      rmSync(kept!, { recursive: true, force: true });
    }
  });
});

function checkSmokeRun(r: Awaited<ReturnType<typeof runUci>>): void {
  expect(r.datasets).toHaveLength(1);
  const d = r.datasets[0]!;
  // the verdict against the best published NN (yacht: −1.03): reached within one SE, or below it
  const [ll, se] = d.summary.ll!;
  expect(d.verdict.best_nn).toBe(ll >= -1.03 - se ? 'reached' : 'below');
  expect(r.table).toContain('| best NN LL | vs best NN |');
  expect(r.table).toContain(`| -1.03 | ${d.verdict.best_nn} |`);
  expect(d.per_split).toHaveLength(2);
  for (const s of d.per_split) {
    // yacht's target spans 0–62 (std ≈ 15): a short run still predicts far better than the mean
    expect(s.rmse).toBeGreaterThan(0);
    expect(s.rmse).toBeLessThan(8);
    expect(Number.isFinite(s.ll)).toBe(true);
    expect(s.ll).toBeGreaterThan(-6);
    expect(s.crps).toBeGreaterThan(0);
    expect(s.crps).toBeLessThan(s.rmse);
    for (const l of ['0.5', '0.8', '0.9', '0.95']) {
      expect(s.coverage[l]).toBeGreaterThanOrEqual(0);
      expect(s.coverage[l]).toBeLessThanOrEqual(1);
    }
    expect(s.coverage['0.95']!).toBeGreaterThanOrEqual(s.coverage['0.5']!);
    expect(s.coverage['0.9']!).toBeGreaterThan(0.5);
    expect(s.width_90).toBeGreaterThan(0);
    // the server's conformal intervals (the card's scores: about 55 validation rows reach every level)
    expect(Object.keys(s.conformal_coverage)).toHaveLength(4);
    expect(s.conformal_coverage['0.95']!).toBeGreaterThanOrEqual(s.conformal_coverage['0.5']!);
    expect(s.conformal_width_90).toBeGreaterThan(0);
    expect(s.conformal_width_90).not.toBeCloseTo(s.width_90, 6);
    expect(s.chosen).toMatchObject({ dropout: 0.05 });
  }
  expect(d.summary.ll![1]).toBeGreaterThanOrEqual(0);
  expect(d.paper).toEqual({ rmse: [0.67, 0.05], ll: [-1.25, 0.01] });
  expect(r.table).toContain('| yacht | 2 |');
}

describe('the test rows in requests the server takes', () => {
  it('splits protein-sized test sets under MAX_BATCH_ROWS and keeps smaller ones in one request', () => {
    const rows = Array.from({ length: 4573 }, (_, i) => [i]);
    const chunks = chunkRows(rows, QUERY_ROWS);
    expect(QUERY_ROWS).toBeLessThanOrEqual(1024);
    expect(chunks.map((c) => c.length)).toEqual([1000, 1000, 1000, 1000, 573]);
    expect(chunks.flat()).toEqual(rows);
    expect(chunkRows(rows.slice(0, 957), QUERY_ROWS)).toEqual([rows.slice(0, 957)]);
    expect(chunkRows([], QUERY_ROWS)).toEqual([]);
  });
});
