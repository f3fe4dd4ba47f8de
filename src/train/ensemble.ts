/**
 * Ensembles of MC dropout networks (`--members`, issue 22): M networks of one architecture and one
 * setting, trained with their own seeds, served as their uniform mixture. Each Monte Carlo pass is one
 * member's pass (the exported graph picks the member with Dropout ops: export-onnx.ts), so the served
 * mean and variance are the mixture's; the prediction (dropout off) is the members' average.
 *
 * Here, for the trainer's own predictive (calibration, metrics, reports): each member's T passes give
 * its moments, and the mixture's are
 *   mean = (1/M) Σ_j mean_j,   epistemic variance = (1/M) Σ_j (var_j + (mean_j − mean)²),
 *   aleatoric variance (heteroscedastic) = (1/M) Σ_j aleatoric_j
 * (the law of total variance over a uniformly chosen member): the same distribution the server samples,
 * estimated with every member's passes instead of a random share of T.
 */
import { stream } from '../util/rng.js';
import type { Predictive } from './train.js';
import type { CalibrationSource } from './tune-calibrate.js';

/**
 * The members of a tuning run asked for `given` (--members): given where the calibration is cross-fitted
 * (regression on small data: the folds and the refit are trained once per member), one elsewhere
 * (successive halving on large data serves its winner without a refit; classifiers calibrate on the
 * validation rows).
 */
export const ensembleMembers = (given: number, task: string, source: CalibrationSource): number =>
  task === 'regression' && source === 'crossfit' ? given : 1;

/**
 * The keep probabilities of an M-member ensemble's selectors (export-onnx.ts mixNodes): selector k keeps
 * member k with probability 1/(M − k) of the passes that reach it, so each member gets 1/M of them.
 * Each selector is a Dropout of rate 1 − q_k in the graph.
 */
export const selectorKeeps = (M: number): number[] => Array.from({ length: M - 1 }, (_, k) => 1 / (M - k));

/** The card's record of an ensemble: how many members and how the served answer is formed. */
export function ensembleRecord(M: number): { members: number; selector_dropout: number[]; answer: string } {
  return {
    members: M,
    selector_dropout: selectorKeeps(M).map((q) => 1 - q),
    answer: `a uniform mixture of ${M} MC dropout networks trained with their own seeds: each Monte Carlo pass is one member's pass (the member drawn per row and pass by the selector Dropout ops, after the members' own), so the mean, spread, intervals and statistics are the mixture's; predict (dropout off) is the members' average`,
  };
}

/** Member j's seed from `seed`, a run's or a Monte Carlo stream's (member 0: the seed itself, so one member is unchanged). */
export const memberSeed = (seed: number, j: number): number => (j === 0 ? seed : stream(seed, 'ensembleMember', j));

/** The uniform mixture of the members' predictives (same rows, in target units). */
export function mixPredictives(ps: Predictive[]): Predictive {
  const M = ps.length;
  const n = ps[0]!.mean.length;
  const mean = new Float64Array(n);
  const epistemicVar = new Float64Array(n);
  const hetero = ps.every((p) => p.aleatoricVar);
  const aleatoricVar = hetero ? new Float64Array(n) : null;
  for (let i = 0; i < n; i++) {
    let mu = 0;
    for (const p of ps) mu += p.mean[i]!;
    mu /= M;
    let v = 0;
    let a = 0;
    for (const p of ps) {
      v += p.epistemicVar[i]! + (p.mean[i]! - mu) ** 2;
      if (aleatoricVar) a += p.aleatoricVar![i]!;
    }
    mean[i] = mu;
    epistemicVar[i] = v / M;
    if (aleatoricVar) aleatoricVar[i] = a / M;
  }
  return { mean, epistemicVar, aleatoricVar };
}
