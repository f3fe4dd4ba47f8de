/**
 * The Monte Carlo statistics, one table per task: each row says what a statistic is called where (record
 * key, /v1 field, V2 tensor), its shape, what it needs (the running moments, or the samples themselves)
 * and how it is computed from them. Everything that carries a statistic follows these tables:
 * - the record's TypeScript type and makeStats (record.ts), the worker wire (record-wire.ts),
 * - the accumulators' finish (accumulators.ts: every row's `value`, the samples kept only when a row
 *   needs them),
 * - the /v1 JSON of an uncertainty prediction and its zod response schema (src/server/protocol/v1.ts,
 *   src/server/schemas/v1.ts), the V2 output tensors and `mc_outputs` (src/server/protocol/v2.ts).
 * So a new statistic is one row here (plus a codec in protocol/v1.ts only when its /v1 JSON is not a
 * plain number, or array, per row).
 *
 * Shapes: 'row' is one value per input row; 'row×width' one per row and output (regression) or class
 * (classification), row-major. Regression statistics are computed per row and output ('row×width').
 *
 * Regression (per row and output), with T samples ŷ_t of the mean output, s the card's epistemic_scale
 * and σ its aleatoric_std:
 *   mean = (1/T) Σ ŷ_t;  epistemic_std = s·√(Σ (ŷ_t − mean)² / (T − 1));
 *   homoscedastic:   aleatoric_std = σ;
 *   heteroscedastic: aleatoric_std = √((1/T) Σ exp(clamp(v_t)) + σ²), v_t the log-variance output of
 *                    sample t (target units², Kendall & Gal 2017 eq. 9; σ a calibrated floor);
 *   std = √(epistemic_std² + aleatoric_std²)   (Gal & Ghahramani 2016, eq. 8: τ⁻¹ + sample variance);
 *   interval = mean ± m·std: gaussian m = z = Φ⁻¹((1 + level)/2), the central interval of N(mean, std²);
 *   conformal m = q, the split-conformal quantile of the card's scores (src/model/uncertainty.ts);
 *   quantile_25, quantile_75 = the 0.25 and 0.75 quantiles of mean + s·(ŷ_t − mean) (type 7, quantiles.ts):
 *   the samples scaled as epistemic_std is, so the two describe the same distribution.
 * Classification (per row), with p_t = softmax(logits_t / temperature) (for a model that outputs
 * probabilities, softmax(log p_t / temperature)):
 *   probabilities = p̄ = (1/T) Σ p_t;  entropy = H(p̄);  mutual_information = H(p̄) − (1/T) Σ H(p_t) ≥ 0
 *   (BALD, Houlsby et al. 2011);  variation_ratio = 1 − (count of the modal label)/T.
 */

/** Whether a statistic is in every answer or only in those that ask for it. */
export type StatServed = 'always' | 'on-request';

/** What a statistic is computed from: the running moments (always there) or the T samples (kept for it). */
export type StatNeeds = 'moments' | 'samples';

export interface StatDescriptor {
  /** The field of the record. */
  readonly key: string;
  readonly shape: 'row' | 'row×width';
  /** Integer values (class indices): an Int32Array in the record. */
  readonly int?: boolean;
  readonly needs: StatNeeds;
  /**
   * 'always': in every record and answer. 'on-request': only when the request names it (McOptions.statistics;
   * /v1 `statistics`, V2 `outputs`), so a request that does not pays nothing for it: every statistic that
   * needs the samples is served on request.
   */
  readonly served: StatServed;
  /**
   * The field of a /v1 uncertainty prediction, or null to leave it out. Plain statistics are a number
   * per row (an array per row when the model has several outputs); a field with a codec in
   * protocol/v1.ts (`interval`, `label`, `probabilities`) is built by it, and several statistics may
   * share one (`lower` and `upper` → `interval`).
   */
  readonly v1: string | null;
  /** The output tensor of a V2 Monte Carlo infer (FP32, [rows] or [rows, width]), or null. */
  readonly v2: string | null;
  /** For the API documentation (OpenAPI). */
  readonly description: string;
}

/** One row and output of a regression, as the accumulator's finish hands it to each statistic. */
export interface RegressionElement {
  mean: number;
  epistemicStd: number;
  aleatoricStd: number;
  /** √(epistemic_std² + aleatoric_std²). */
  std: number;
  /** The interval's m: z (gaussian) or q (conformal). */
  multiplier: number;
  /** T. */
  samples: number;
  /**
   * The q-quantile (type 7, quantiles.ts) of this row and output's T samples, scaled about the mean by the
   * card's epistemic_scale as epistemic_std is: for statistics that need 'samples' (kept only when one does).
   */
  quantile(q: number): number;
}

/** One row of a classification, as the accumulator's finish hands it to each statistic. */
export interface ClassificationRow {
  /** p̄, the mean probability of each class. */
  probabilities: Float64Array;
  /** argmax p̄ (the first on ties). */
  label: number;
  /** H(p̄). */
  entropy: number;
  /** (1/T) Σ H(p_t). */
  meanEntropy: number;
  /** Samples whose own top class is the modal one. */
  modalVotes: number;
  /** T. */
  samples: number;
  /**
   * The probabilities of every sample, samples × rows × classes, and this row's index in them; kept only
   * when a statistic needs 'samples' (else empty).
   */
  sampled: Float32Array;
  row: number;
}

export interface RegressionStatDescriptor extends StatDescriptor {
  readonly shape: 'row×width';
  readonly value: (e: RegressionElement) => number;
}

export interface ClassificationStatDescriptor extends StatDescriptor {
  /** `k`: the class of a 'row×width' statistic (0 for a 'row' one). */
  readonly value: (r: ClassificationRow, k: number) => number;
}

export const REGRESSION_STATS = [
  {
    key: 'mean',
    shape: 'row×width',
    needs: 'moments',
    served: 'always',
    v1: 'mean',
    v2: 'mean',
    description: 'Mean of the Monte Carlo samples',
    value: (e) => e.mean,
  },
  {
    key: 'std',
    shape: 'row×width',
    needs: 'moments',
    served: 'always',
    v1: 'std',
    v2: 'std',
    description: 'Total predictive std √(epistemic_std² + aleatoric_std²)',
    value: (e) => e.std,
  },
  {
    key: 'epistemicStd',
    shape: 'row×width',
    needs: 'moments',
    served: 'always',
    v1: 'epistemic_std',
    v2: 'epistemic_std',
    description: "Std of the Monte Carlo samples of the mean × the card's epistemic_scale",
    value: (e) => e.epistemicStd,
  },
  {
    key: 'aleatoricStd',
    shape: 'row×width',
    needs: 'moments',
    served: 'always',
    v1: 'aleatoric_std',
    v2: 'aleatoric_std',
    description:
      "Observation noise: the card's aleatoric_std (homoscedastic; 0 when absent), or per row √(MC mean of exp(log_variance) + aleatoric_std²) (heteroscedastic)",
    value: (e) => e.aleatoricStd,
  },
  {
    key: 'lower',
    shape: 'row×width',
    needs: 'moments',
    served: 'always',
    v1: 'interval',
    v2: 'lower',
    description:
      'Lower end of the central interval: mean − z·std (gaussian, z = Φ⁻¹((1+level)/2)) or mean − q·std (conformal, q the split-conformal quantile)',
    value: (e) => e.mean - e.multiplier * e.std,
  },
  {
    key: 'upper',
    shape: 'row×width',
    needs: 'moments',
    served: 'always',
    v1: 'interval',
    v2: 'upper',
    description: 'Upper end of the central interval: mean + z·std or mean + q·std',
    value: (e) => e.mean + e.multiplier * e.std,
  },
  {
    key: 'quantile25',
    shape: 'row×width',
    needs: 'samples',
    served: 'on-request',
    v1: 'quantile_25',
    v2: 'quantile_25',
    description:
      "First quartile of the Monte Carlo samples of the mean, scaled about the mean by the card's epistemic_scale (linear interpolation, numpy type 7): their spread alone, without the noise",
    value: (e) => e.quantile(0.25),
  },
  {
    key: 'quantile75',
    shape: 'row×width',
    needs: 'samples',
    served: 'on-request',
    v1: 'quantile_75',
    v2: 'quantile_75',
    description:
      "Third quartile of the Monte Carlo samples of the mean, scaled about the mean by the card's epistemic_scale (linear interpolation, numpy type 7)",
    value: (e) => e.quantile(0.75),
  },
] as const satisfies readonly RegressionStatDescriptor[];

export const CLASSIFICATION_STATS = [
  {
    key: 'label',
    shape: 'row',
    int: true,
    needs: 'moments',
    served: 'always',
    v1: 'label',
    v2: null,
    description: 'The class with the highest mean probability',
    value: (r) => r.label,
  },
  {
    key: 'probabilities',
    shape: 'row×width',
    needs: 'moments',
    served: 'always',
    v1: 'probabilities',
    v2: 'probabilities',
    description: "Mean of the per-sample softmax of logits / the card's temperature",
    value: (r, k) => r.probabilities[k]!,
  },
  {
    key: 'entropy',
    shape: 'row',
    needs: 'moments',
    served: 'always',
    v1: 'entropy',
    v2: 'entropy',
    description: 'Entropy of the mean probabilities (nats): total uncertainty',
    value: (r) => r.entropy,
  },
  {
    key: 'mutualInformation',
    shape: 'row',
    needs: 'moments',
    served: 'always',
    v1: 'mutual_information',
    v2: 'mutual_information',
    description: 'Entropy of the mean − mean entropy (nats): epistemic part (BALD)',
    // clamp rounding noise: MI is non-negative by Jensen's inequality
    value: (r) => Math.max(0, r.entropy - r.meanEntropy),
  },
  {
    key: 'variationRatio',
    shape: 'row',
    needs: 'moments',
    served: 'always',
    v1: 'variation_ratio',
    v2: 'variation_ratio',
    description: '1 − share of samples voting for the modal label',
    value: (r) => 1 - r.modalVotes / r.samples,
  },
] as const satisfies readonly ClassificationStatDescriptor[];

export type Task = 'regression' | 'classification';

/** The descriptor table of each task. */
export const STATS: { readonly [T in Task]: readonly StatDescriptor[] } = {
  regression: REGRESSION_STATS,
  classification: CLASSIFICATION_STATS,
};

/** Whether a table has a statistic computed from the samples (the accumulator then keeps them). */
export function needsSamples(table: readonly StatDescriptor[]): boolean {
  return table.some((d) => d.needs === 'samples');
}

/** Each task's statistics served always: the table of a request that asks for none on request. */
const ALWAYS: { readonly [T in Task]: readonly StatDescriptor[] } = {
  regression: REGRESSION_STATS.filter((d) => d.served === 'always'),
  classification: CLASSIFICATION_STATS.filter((d) => d.served === 'always'),
};

/**
 * The statistics a request is served, in table order: those served always, plus the on-request ones whose
 * record key is in `asked` (McOptions.statistics; keys of the other task's table are not this task's).
 */
export function servedTable<D extends StatDescriptor>(
  table: readonly D[],
  task: Task,
  asked: readonly string[] | undefined,
): readonly D[] {
  if (!asked || asked.length === 0) return ALWAYS[task] as readonly D[];
  return table.filter((d) => d.served === 'always' || asked.includes(d.key));
}

/**
 * The record keys of a task's on-request statistics named by `names` (their /v1 fields, or V2 tensors),
 * or the first name that is none of them (the caller's 400).
 */
export function onRequestKeys(
  task: Task,
  names: readonly string[],
  by: 'v1' | 'v2',
): { keys: string[] } | { unknown: string } {
  const keys: string[] = [];
  for (const name of names) {
    const d = STATS[task].find((x) => x.served === 'on-request' && x[by] === name);
    if (!d) return { unknown: name };
    if (!keys.includes(d.key)) keys.push(d.key);
  }
  return { keys };
}

/** The names (/v1 fields, or V2 tensors) of a task's on-request statistics, for messages and docs. */
export function onRequestNames(task: Task, by: 'v1' | 'v2'): string[] {
  return STATS[task].filter((d) => d.served === 'on-request' && d[by] !== null).map((d) => d[by]!);
}

/**
 * Every on-request statistic's record key, both tables: bit j of a mask (the coalesced batch's wire,
 * src/serving/wire.ts) stands for ON_REQUEST_KEYS[j].
 */
export const ON_REQUEST_KEYS: readonly string[] = [...REGRESSION_STATS, ...CLASSIFICATION_STATS]
  .filter((d) => d.served === 'on-request')
  .map((d) => d.key);

/** The on-request keys as a bit mask (ON_REQUEST_KEYS), and back. */
export function statisticsMask(keys: readonly string[] | undefined): number {
  let mask = 0;
  for (const k of keys ?? []) {
    const j = ON_REQUEST_KEYS.indexOf(k);
    if (j < 0) throw new Error(`"${k}" is not a statistic served on request`);
    mask |= 1 << j;
  }
  return mask;
}

export function maskStatistics(mask: number): string[] {
  return ON_REQUEST_KEYS.filter((_, j) => (mask & (1 << j)) !== 0);
}
