/**
 * The Monte Carlo part of a tuning run's time (issue 22: on 500,000 rows it outweighs the training):
 * every scored checkpoint runs the validation rows through T dropout passes, and after the search the
 * calibration rows, the validation metrics and the report run theirs. Measured per row and pass on this
 * machine, like the optimiser steps (tune-estimate.ts).
 */
import { Rng } from '../util/rng.js';
import type { Dataset } from './data.js';
import { createMlp, type MlpSpec } from './mlp.js';
import { mcPasses, PASS_CHUNK_ROWS } from './train.js';

/** Passes of one timed round of the probe, and the rounds: the first ones warm the compiled kernels up. */
const PROBE_PASSES = 4;
const PROBE_ROUNDS = 4;

/**
 * Milliseconds per row and Monte Carlo pass of a `spec` network (the first rows of `data`, a short run):
 * the fastest of the timed rounds, after the warm-up rounds (the first pass over a new network ran 5×
 * slower than the steady speed, the second round 2×).
 */
export function measureMcRowMs(data: Dataset, spec: MlpSpec): number {
  const rows = Math.min(data.n, PASS_CHUNK_ROWS);
  const xs = Float32Array.from(data.x.subarray(0, rows * data.f));
  const net = createMlp(spec, new Rng(0));
  const noop = (): void => {};
  let best = Infinity;
  for (let round = 0; round < PROBE_ROUNDS; round++) {
    const started = performance.now();
    mcPasses(net, xs, rows, PROBE_PASSES, round, noop);
    if (round >= PROBE_ROUNDS / 2) best = Math.min(best, performance.now() - started);
  }
  return best / (rows * PROBE_PASSES);
}

/** The rows whose Monte Carlo passes follow the search: the calibration, validation metrics and report. */
export interface AfterSearchRows {
  calibrationRows: number;
  validationRows: number;
  testRows: number;
}

/**
 * Row-passes after the search: the calibration rows once, the validation and test rows twice (their
 * metrics, then the report's plots).
 */
export function afterSearchRowPasses(r: AfterSearchRows, samples: number): number {
  return (r.calibrationRows + 2 * (r.validationRows + r.testRows)) * samples;
}
