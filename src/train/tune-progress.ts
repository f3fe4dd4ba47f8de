/**
 * The tuning progress line (issue 22: show the remaining time): the search's share of steps done and its
 * time left at the speed so far, then the calibration and refit after it, from the estimate made before
 * the start (tune-estimate.ts) corrected by how the search's speed compares with that estimate's.
 */
import type { TuneProgress } from './tune.js';

/** Milliseconds as the progress lines show them: 850ms, 12.5s, 3m07s; '?' when unknown. */
export function formatEta(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** What the estimate before the start said: the search's and the calibration and refit's milliseconds. */
export interface PhaseEstimate {
  searchMs: number;
  afterMs: number;
  /**
   * The search's estimated time at the end of each of its phases (successive halving's rungs), cumulative:
   * a rung that scores more checkpoints a step costs more a step, so the steps done are not the share of
   * the time done. Absent: the time is taken as even over the steps.
   */
  searchProfile?: { steps: number; ms: number }[];
}

/** The estimated milliseconds of the search's first `steps` steps (linear within a phase of the profile). */
function estimatedMsAt(estimate: PhaseEstimate, steps: number, stepsTotal: number): number {
  let from = { steps: 0, ms: 0 };
  for (const to of estimate.searchProfile ?? [{ steps: stepsTotal, ms: estimate.searchMs }]) {
    if (steps <= to.steps) return from.ms + ((to.ms - from.ms) * (steps - from.steps)) / (to.steps - from.steps || 1);
    from = to;
  }
  return from.ms;
}

/**
 * The time left, ms: without an estimate, the search's remaining steps at its speed so far; with one, the
 * estimate's remaining search time and its calibration and refit, each scaled by (elapsed / the estimate's
 * time for the steps done). NaN before the first step.
 */
export function timeLeft(p: TuneProgress, estimate: PhaseEstimate | null): { searchMs: number; afterMs: number } {
  if (!(p.stepsDone > 0)) return { searchMs: NaN, afterMs: NaN };
  const searchMs = (p.elapsedMs / p.stepsDone) * (p.stepsTotal - p.stepsDone);
  if (!estimate || !(estimate.searchMs > 0)) return { searchMs, afterMs: estimate ? estimate.afterMs : 0 };
  const done = estimatedMsAt(estimate, p.stepsDone, p.stepsTotal);
  const slower = p.elapsedMs / done;
  return { searchMs: (estimate.searchMs - done) * slower, afterMs: estimate.afterMs * slower };
}

/** One progress line: runs done, the best score, the share of steps, the search's ETA and the time left in all. */
export function tuneProgressText(p: TuneProgress, estimate: PhaseEstimate | null): string {
  const left = timeLeft(p, estimate);
  const best = Number.isFinite(p.best) ? p.best.toFixed(4) : '-';
  const steps = `${Math.round((100 * p.stepsDone) / p.stepsTotal)}% of ${p.stepsTotal} steps`;
  const all = estimate
    ? `  then calibration and refit ≈ ${formatEta(left.afterMs)}: ${formatEta(left.searchMs + left.afterMs)} left`
    : '';
  return `tuning: ${p.unit} ${p.runsDone}/${p.runs} done  best score ${best}  ${steps}  ETA ${formatEta(left.searchMs)}${all}`;
}
