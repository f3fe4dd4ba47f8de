/**
 * Reading a model's card: the file beside the model, or the one embedded in it, validated against the
 * schema (card-schema.ts, loaded only to validate) and for consistency between its fields.
 */
import { readFile } from 'node:fs/promises';
import type { Card, CardSchema } from './card-schema.js';
import { ModelLoadError } from './errors.js';

export type { Card } from './card-schema.js';

/**
 * The card from `cardPath` (a missing file is no card), else from `embedded` (a card stored in the model
 * file, e.g. ONNX metadata_props; ignored when it is not JSON), else empty. `source` names where it came
 * from, for messages. `contents` is the card file's text when the caller read it already. `checked`:
 * that text (or the embedded one) was validated already, by the thread that read it (an MC worker's copy
 * of a model: the main thread's card), so it is parsed, not validated again. Throws ModelLoadError for an
 * unreadable or invalid card.
 */
export async function readCard(
  cardPath: string | null,
  embedded?: { text: string; source: string },
  contents?: string | null,
  checked = false,
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
  // the schema's parse returns the JSON as it is (no defaults or transforms), so a checked card is the same object
  if (checked) return { card: raw as Card, source };
  const parsed = (await cardSchema()).safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ModelLoadError(source, `card field "${issue.path.join('.') || '(root)'}": ${issue.message}`);
  }
  const problem = cardProblem(parsed.data);
  if (problem) throw new ModelLoadError(source, problem);
  return { card: parsed.data, source };
}

/** The card schema, imported on first use, not at the top: a thread that only takes checked cards never loads zod. */
async function cardSchema(): Promise<typeof CardSchema> {
  try {
    return (await import('./card-schema.js')).CardSchema;
  } catch (err) {
    // a worker thread started from TypeScript (src/util/worker-shim.cjs) has tsx's require hook, not its
    // ESM hooks, so its import() finds no .ts file; its require does
    if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND' || typeof require !== 'function') throw err;
    return (require('./card-schema.js') as typeof import('./card-schema.js')).CardSchema;
  }
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
