/**
 * The model card as the runtime reads it (the trainer writes it: src/train/card.ts). Only these fields
 * are read; any other field is kept and passed through to clients (/v1/models).
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ModelLoadError } from './errors.js';

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

/**
 * The card from `cardPath` (a missing file is no card), else from `embedded` (a card stored in the model
 * file, e.g. ONNX metadata_props; ignored when it is not JSON), else empty. `source` names where it came
 * from, for messages. `contents` is the card file's text when the caller read it already. Throws
 * ModelLoadError for an unreadable or invalid card.
 */
export async function readCard(
  cardPath: string | null,
  embedded?: { text: string; source: string },
  contents?: string | null,
): Promise<{ card: Card; source: string | null }> {
  let raw: unknown;
  let source = '';
  if (cardPath) {
    // `contents`: the card's text already read (ModelSource.contents); null: there was no card file
    let text: string | null = contents === undefined ? null : contents;
    if (contents === undefined) {
      try {
        text = await readFile(cardPath, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          throw new ModelLoadError(cardPath, `cannot read the card (${(err as NodeJS.ErrnoException).code})`);
      }
    }
    if (text !== null) {
      try {
        raw = JSON.parse(text);
      } catch (err) {
        throw new ModelLoadError(cardPath, `the card is not valid JSON (${(err as Error).message})`);
      }
      source = cardPath;
    }
  }
  if (raw === undefined && embedded) {
    try {
      raw = JSON.parse(embedded.text);
      source = embedded.source;
    } catch {
      raw = undefined;
    }
  }
  if (raw === undefined) return { card: {}, source: null };
  const parsed = CardSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ModelLoadError(source, `card field "${issue.path.join('.') || '(root)'}": ${issue.message}`);
  }
  const problem = cardProblem(parsed.data);
  if (problem) throw new ModelLoadError(source, problem);
  return { card: parsed.data, source };
}

/** What is inconsistent between a card's fields (each alone already valid), or null. */
export function cardProblem(card: Card): string | null {
  const scores = card.conformal?.scores;
  if (scores) {
    const k = scores.findIndex((v, i) => i > 0 && v < scores[i - 1]!);
    if (k > 0)
      return `card field "conformal.scores": must be in ascending order (scores[${k}] = ${scores[k]} < scores[${k - 1}] = ${scores[k - 1]})`;
    if (card.conformal!.rows !== undefined && card.conformal!.rows !== scores.length)
      return `card field "conformal.rows": ${card.conformal!.rows}, but conformal.scores holds ${scores.length} scores`;
  }
  const classifier =
    card.task === 'classification' ||
    (card.task === undefined && (card.labels !== undefined || card.class_axis !== undefined));
  if (classifier) {
    for (const f of ['noise', 'output_roles', 'interval_method', 'conformal'] as const) {
      if (card[f] !== undefined) return `card field "${f}": applies to regression models; this card is a classifier's`;
    }
    return null;
  }
  if (card.class_axis !== undefined)
    return 'card field "class_axis": applies to classifiers; this card is for regression';
  const roles = card.output_roles;
  if (card.noise === 'heteroscedastic' && !roles?.log_variance)
    return 'card field "output_roles.log_variance": a heteroscedastic model (noise: heteroscedastic) must name its log-variance output';
  if (card.noise === 'homoscedastic' && roles?.log_variance)
    return 'card field "output_roles.log_variance": given, but noise is "homoscedastic" (say "heteroscedastic", or remove the log-variance role)';
  if (roles && card.output !== undefined && card.output !== roles.mean)
    return `card field "output_roles.mean": "${roles.mean}", but output is "${card.output}" (they must name the same graph output)`;
  if (roles?.log_variance !== undefined && roles.log_variance === roles.mean)
    return 'card field "output_roles.log_variance": the same output as the mean';
  if (card.interval_method === 'conformal' && !scores?.length)
    return 'card field "interval_method": "conformal", but the card has no conformal scores (conformal.scores)';
  return null;
}
