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
}

/**
 * The time left, ms: the search's remaining steps at its speed so far, and the estimate's calibration
 * and refit scaled by (elapsed / the estimate's time for the steps done). NaN before the first step.
 */
export function timeLeft(p: TuneProgress, estimate: PhaseEstimate | null): { searchMs: number; afterMs: number } {
  if (!(p.stepsDone > 0)) return { searchMs: NaN, afterMs: NaN };
  const searchMs = (p.elapsedMs / p.stepsDone) * (p.stepsTotal - p.stepsDone);
  if (!estimate || !(estimate.searchMs > 0)) return { searchMs, afterMs: estimate ? estimate.afterMs : 0 };
  const slower = p.elapsedMs / ((estimate.searchMs * p.stepsDone) / p.stepsTotal);
  return { searchMs, afterMs: estimate.afterMs * slower };
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
