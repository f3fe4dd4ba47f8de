/**
 * The model card as the runtime reads it (the trainer writes it: src/train/card.ts). Only these fields
 * are read; any other field is kept and passed through to clients (/v1/models).
 *
 * The schema (zod) is apart from card.ts so that only a thread that validates a card loads
 * zod: an MC worker's copy of a model takes the card its main thread validated (issue 20: zod alone is
 * about 6 MB of every worker thread's memory).
 */
import { z } from 'zod';

export const CardSchema = z.looseObject({
  name: z.string().optional(),
  task: z.enum(['regression', 'classification']).optional(),
  features: z.array(z.string().min(1)).min(1).optional(),
  target: z.string().optional(),
  labels: z.array(z.string()).min(2).optional(),
  output: z.string().optional(),
  output_kind: z.enum(['regression', 'logits', 'probabilities']).optional(),
  /**
   * A tensor classifier's class axis in the full output shape (the batch is axis 0): 1 for [N, K, H, W],
   * 2 for [N, L, K]. Absent: inferred (src/model/onnx/tensor-output.ts).
   */
  class_axis: z.number().int().min(1).optional(),
  dropout: z.array(z.number().min(0).lt(1)).optional(),
  /**
   * Regression: homoscedastic, the observation noise σ; heteroscedastic, a floor whose square is added
   * to the predicted variance.
   */
  aleatoric_std: z.union([z.number().nonnegative(), z.array(z.number().nonnegative())]).optional(),
  /** Regression noise model (absent: heteroscedastic when output_roles names a log_variance output). */
  noise: z.enum(['homoscedastic', 'heteroscedastic']).optional(),
  /** Graph outputs by meaning: the mean, and for a heteroscedastic model the log-variance (target units²). */
  output_roles: z.object({ mean: z.string().min(1), log_variance: z.string().min(1).optional() }).optional(),
  /** The served epistemic std is epistemic_scale × the MC std of the mean (default 1). */
  epistemic_scale: z.number().positive().optional(),
  /** Classification: every MC sample's logits are divided by it before the softmax (default 1). */
  temperature: z.number().positive().optional(),
  /** The default interval of the uncertainty route (absent: conformal when the card has scores). */
  interval_method: z.enum(['gaussian', 'conformal']).optional(),
  /** Split-conformal calibration: scores |y − mean| / std of the calibration rows, ascending. */
  conformal: z
    .object({
      score: z.string().optional(),
      rows: z.number().int().nonnegative().optional(),
      source: z.string().optional(),
      scores: z.array(z.number().nonnegative()),
    })
    .optional(),
  /** Per-feature statistics of the training rows, arrays in feature order (the loader checks the lengths). */
  feature_stats: z
    .object({
      rows: z.number().int().nonnegative(),
      min: z.array(z.number()),
      max: z.array(z.number()),
      mean: z.array(z.number()),
      std: z.array(z.number().nonnegative()),
    })
    .optional(),
});
export type Card = z.infer<typeof CardSchema>;
