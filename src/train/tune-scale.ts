/**
 * How a search halved by the data size trains (issue 22, "bigger data in bounded time"): the rule of
 * tune-search.ts chooses successive halving when fit rows × the grid's longest length reach
 * HALVING_ROW_EPOCHS; this file says at which batch size and learning rate its candidates train. One pure
 * function of the fit rows and the base options, so that the small datasets (the full grid) fall outside
 * it and keep their results to the bit.
 *
 * The batch grows with the data (budgetBatchSize: 128, doubled per doubling of the fit rows past 16,384,
 * at most 1024), so that the budget's steps cover more rows; the search then trains each candidate for a
 * fraction of the full grid's 4000 epochs (protein: at most 3100 epochs of batch 256 where the grid trains
 * 4000 of batch 128), and Adam at the default 10⁻³ is still far from done. LARGE_DATA_LR_FACTOR scales
 * the learning rate on such a search (measured on protein split 0, scripts/tune-budget.mts, 400,000 steps
 * of batch 256 with the refit, test LL: lr 0.001 −2.848, 0.002 −2.838, 0.004 −2.831; docs/benchmarks.md).
 */
import { budgetBatchSize } from './tune-halving.js';

/** The learning rate of a search halved by the data size, as a multiple of the given one (default 10⁻³). */
export const LARGE_DATA_LR_FACTOR = 4;

/** The batch size and learning rate a search halved by the data size trains at. */
export interface LargeDataTraining {
  batchSize: number;
  lr: number;
}

/**
 * The training of a search halved by the rule (`auto`) on `fitRows` rows: the batch from the data size
 * (unless `batchSize` is given) and the learning rate × LARGE_DATA_LR_FACTOR. A budget the user asked
 * for (`auto` false) keeps the given learning rate.
 */
export function largeDataTraining(
  fitRows: number,
  base: { batchSize: number; lr: number },
  search: { auto: boolean; batchSize?: number },
): LargeDataTraining {
  const batchSize = search.batchSize ?? budgetBatchSize(fitRows, base.batchSize);
  return { batchSize, lr: search.auto ? base.lr * LARGE_DATA_LR_FACTOR : base.lr };
}
