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
  dropout: z.array(z.number().min(0).lt(1)).optional(),
  aleatoric_std: z.union([z.number().nonnegative(), z.array(z.number().nonnegative())]).optional(),
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
 * from, for messages. Throws ModelLoadError for an unreadable or invalid card.
 */
export async function readCard(cardPath: string | null, embedded?: { text: string; source: string }): Promise<{ card: Card; source: string | null }> {
  let raw: unknown = undefined;
  let source = '';
  if (cardPath) {
    let text: string | null = null;
    try {
      text = await readFile(cardPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ModelLoadError(cardPath, `cannot read the card (${(err as NodeJS.ErrnoException).code})`);
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
  return { card: parsed.data, source };
}
