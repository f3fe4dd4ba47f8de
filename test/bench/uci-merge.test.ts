import { describe, expect, it } from 'vitest';
import { mergeRuns } from '../../bench/uci-merge.js';
import type { DatasetResult, UciResult } from '../../bench/uci.js';

/** A dataset result with what the table reads. */
function dataset(name: string, ll: number): DatasetResult {
  const summary: Record<string, [number, number]> = {
    rmse: [1, 0.1],
    ll: [ll, 0.01],
    crps: [0.5, 0.01],
    'coverage_0.9': [0.9, 0.01],
    width_90: [2, 0.1],
    'coverage_0.5': [0.5, 0.01],
    'coverage_0.8': [0.8, 0.01],
    'coverage_0.95': [0.95, 0.01],
  };
  return {
    name,
    splits: 2,
    wall_s: 10,
    train_cpu_s: 20,
    summary,
    paper: null,
    verdict: {},
  } as unknown as DatasetResult;
}

const run = (command: string, datasets: DatasetResult[]): UciResult =>
  ({ command, date: '2026-12-07', wall_s: 100, datasets }) as unknown as UciResult;

describe('UCI runs merged into one table', () => {
  it('keeps every dataset once, a later run replacing an earlier one, and records each run', () => {
    const merged = mergeRuns([
      {
        file: 'a.json',
        result: run('uci --datasets yacht,concrete', [dataset('yacht', -0.2), dataset('concrete', -2.9)]),
      },
      {
        file: 'b.json',
        result: run('uci --datasets concrete,power-plant', [dataset('concrete', -2.8), dataset('power-plant', -2.7)]),
      },
    ]);
    expect(merged.datasets.map((d) => [d.name, d.summary.ll![0]])).toEqual([
      ['yacht', -0.2],
      ['concrete', -2.8],
      ['power-plant', -2.7],
    ]);
    expect(merged.table.split('\n')).toHaveLength(5);
    expect(merged.table).toContain('| concrete | 2 |');
    expect(merged.table).not.toContain('-2.90');
    expect(merged.runs.map((r) => [r.file, r.datasets])).toEqual([
      ['a.json', ['yacht', 'concrete']],
      ['b.json', ['concrete', 'power-plant']],
    ]);
  });
});
