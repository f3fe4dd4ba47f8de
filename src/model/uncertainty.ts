/**
 * How a model turns its Monte Carlo samples into the served predictive distribution: the settings its
 * card gives (noise model, epistemic scale, temperature, interval method and conformal scores) and the
 * choice of a request's interval. Protocol-neutral; the formulas are in src/uncertainty.
 */
import {
  conformalQuantile,
  conformalRowsNeeded,
  INTERVAL_METHODS,
  type IntervalMethod,
  type IntervalSpec,
  intervalLevelMessage,
  isIntervalLevel,
} from '../uncertainty/intervals.js';
import type { Task } from '../uncertainty/statistics.js';
import { normalQuantile } from '../util/special-functions.js';
import { InputError, RequestError } from './errors.js';

export { conformalRowsNeeded, INTERVAL_METHODS, type IntervalMethod, type IntervalSpec };

export type NoiseModel = 'homoscedastic' | 'heteroscedastic';

/** A model's uncertainty settings, read from its card at load (card.ts, onnx/card-check.ts). */
export interface UncertaintySettings {
  /** Regression: one noise σ for all rows, or a predicted log-variance per row (a second output). */
  noise: NoiseModel;
  /** The served epistemic std is this × the MC std of the mean (> 0; 1 when the card has none). */
  epistemicScale: number;
  /** Classification: logits (or log-probabilities) are divided by it per MC sample before the softmax. */
  temperature: number;
  /** The interval a request gets when it names none. */
  intervalMethod: IntervalMethod;
  /** Split-conformal scores |y − mean| / std of the calibration rows, ascending; null when the card has none. */
  conformalScores: Float64Array | null;
}

/** What a model without a card (or with an old one) serves. */
export const DEFAULT_UNCERTAINTY: UncertaintySettings = {
  noise: 'homoscedastic',
  epistemicScale: 1,
  temperature: 1,
  intervalMethod: 'gaussian',
  conformalScores: null,
};

/** The interval asked for cannot be served by this model (no conformal scores, or too few for the level). */
export class IntervalUnavailableError extends RequestError {
  override name = 'IntervalUnavailableError';
  constructor(message: string) {
    super('interval_unavailable', message);
  }
}

/**
 * The interval of a request at `level` with `method` (the model's default when absent). Throws
 * IntervalUnavailableError (422) for `conformal` on a model without conformal scores, and for a level
 * whose conformal quantile is infinite (⌈(n + 1)·level⌉ > n: too few calibration rows), naming the rows
 * the level needs; InputError (400) for a level outside (0, 1) or an unknown method.
 */
export function resolveInterval(
  model: string,
  settings: UncertaintySettings,
  level: number,
  method?: IntervalMethod,
): IntervalSpec {
  if (!isIntervalLevel(level)) throw new InputError(intervalLevelMessage('interval', level));
  if (method !== undefined && !INTERVAL_METHODS.includes(method))
    throw new InputError(`interval_method: expected one of ${INTERVAL_METHODS.join(', ')}, got ${String(method)}`);
  const m = method ?? settings.intervalMethod;
  if (m === 'gaussian') return { level, method: m, multiplier: normalQuantile((1 + level) / 2) };
  const scores = settings.conformalScores;
  if (!scores || scores.length === 0) {
    throw new IntervalUnavailableError(
      `interval_method "conformal": model "${model}" has no conformal calibration scores in its card; use interval_method "gaussian"`,
    );
  }
  const q = conformalQuantile(scores, level);
  if (!Number.isFinite(q)) {
    throw new IntervalUnavailableError(
      `interval ${level} with interval_method "conformal": model "${model}" was calibrated on ${scores.length} rows, and a finite conformal quantile at level ${level} needs at least ${conformalRowsNeeded(level)}; ask for a lower level or interval_method "gaussian"`,
    );
  }
  return { level, method: m, multiplier: q };
}

/**
 * What /v1/models and the V2 model metadata show of a model's settings: a classifier its temperature; a
 * regression model its noise model, epistemic scale, default interval method and the methods it serves.
 */
export function describeUncertainty(task: Task, u: UncertaintySettings): Record<string, unknown> {
  if (task === 'classification') return { temperature: u.temperature };
  return {
    noise: u.noise,
    epistemic_scale: u.epistemicScale,
    interval_method: u.intervalMethod,
    interval_methods: u.conformalScores ? ['gaussian', 'conformal'] : ['gaussian'],
  };
}
