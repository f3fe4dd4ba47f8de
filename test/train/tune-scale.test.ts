import { describe, expect, it } from 'vitest';
import { LARGE_DATA_LR_FACTOR, largeDataTraining } from '../../src/train/tune-scale.js';
import { chooseSearch } from '../../src/train/tune-search.js';

describe('the training of a search halved by the data size (issue 22)', () => {
  const base = { batchSize: 128, lr: 0.001 };

  it('protein: batch 256 and 4 × the learning rate; larger data a larger batch, at most 1024', () => {
    expect(LARGE_DATA_LR_FACTOR).toBe(4);
    // protein's 41,157 training rows, 32,926 fit rows: log2(32926 / 16384) ≈ 1.007 → one doubling
    expect(largeDataTraining(32_926, base, { auto: true })).toEqual({ batchSize: 256, lr: 0.004 });
    expect(largeDataTraining(100_000, base, { auto: true })).toEqual({ batchSize: 1024, lr: 0.004 });
    expect(largeDataTraining(1_000_000, base, { auto: true })).toEqual({ batchSize: 1024, lr: 0.004 });
    // the given learning rate is the one scaled
    expect(largeDataTraining(32_926, { batchSize: 128, lr: 0.0005 }, { auto: true }).lr).toBe(0.002);
  });

  it('a budget asked for keeps the given learning rate, and its batch size when given', () => {
    expect(largeDataTraining(32_926, base, { auto: false })).toEqual({ batchSize: 256, lr: 0.001 });
    expect(largeDataTraining(32_926, base, { auto: false, batchSize: 64 })).toEqual({ batchSize: 64, lr: 0.001 });
  });

  it('the five small UCI sets fall outside it: the full grid at the default 4000 epochs', () => {
    // fit rows of boston, concrete, energy, wine and yacht (0.9 × 0.8 of the rows)
    for (const fitRows of [364, 741, 553, 1151, 222])
      expect(chooseSearch(undefined, fitRows, 4000)).toEqual({ kind: 'grid' });
  });
});
