import { describe, expect, it } from 'vitest';
import { pairedDeltas, pairedTable } from '../../bench/uci-paired.js';
import type { DatasetResult } from '../../bench/uci.js';

/** A dataset result with only what the pairing reads. */
function dataset(name: string, splits: [number, number, number, number, string?][]): DatasetResult {
  return {
    name,
    per_split: splits.map(([split, ll, rmse, cov, noise]) => ({
      split,
      ll,
      rmse,
      coverage: { '0.9': cov },
      conformal_coverage: { '0.9': cov - 0.01 },
      train_cpu_s: 10,
      noise: noise ?? 'homoscedastic',
    })),
  } as unknown as DatasetResult;
}

describe('UCI runs paired split by split', () => {
  it('differences over the common splits: mean ± SE, this run’s means, CPU, heteroscedastic count', () => {
    const run = {
      datasets: [
        dataset('wine-quality-red', [
          [0, -0.9, 0.6, 0.9, 'heteroscedastic'],
          [1, -1.0, 0.7, 0.8],
          [2, -0.8, 0.5, 1.0],
        ]),
        dataset('yacht', [[0, 1, 1, 1]]),
      ],
    };
    const reference = {
      datasets: [
        dataset('wine-quality-red', [
          [0, -0.95, 0.6, 0.9],
          [1, -1.0, 0.6, 0.9],
          [5, -9, 9, 0],
        ]),
      ],
    };
    const [p, ...rest] = pairedDeltas(run, reference);
    expect(rest).toEqual([]); // yacht has no reference
    expect(p!.dataset).toBe('wine-quality-red');
    expect(p!.splits).toEqual([0, 1]); // split 2 has no reference, split 5 no run
    // Δ LL: +0.05 and 0 → mean 0.025, SE = sd/√2 = 0.0354/1.414 = 0.025
    expect(p!.ll[0]).toBeCloseTo(0.025, 12);
    expect(p!.ll[1]).toBeCloseTo(0.025, 12);
    expect(p!.rmse[0]).toBeCloseTo(0.05, 12);
    expect(p!.coverage_90[0]).toBeCloseTo(-0.05, 12);
    expect(p!.conformal_90[0]).toBeCloseTo(-0.05, 12);
    expect(p!.mean.ll).toBeCloseTo(-0.95, 12);
    expect(p!.mean.rmse).toBeCloseTo(0.65, 12);
    expect(p!.mean.coverage_90).toBeCloseTo(0.85, 12);
    expect(p!.train_cpu_s).toEqual([20, 20]);
    expect(p!.heteroscedastic).toBe(1);
    expect(pairedTable([p!]).split('\n')[2]).toBe(
      '| wine-quality-red | 2 | +0.025 ± 0.025 | +0.050 ± 0.050 | -0.050 ± 0.050 | -0.050 ± 0.050 | -0.950 | 0.650 | 0.850 | 20 s / 20 s | 1 of 2 |',
    );
  });
});
