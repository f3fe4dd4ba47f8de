/**
 * Reading a model: the file's bytes (or those the repository read already), inspection, a fixed batch
 * relaxed when the graph allows it, and the card (beside the file, else embedded in the model's
 * metadata). Problems are ModelLoadErrors naming the file.
 */
import { readFile } from 'node:fs/promises';
import { type Card, readCard } from '../card.js';
import { ModelLoadError } from '../errors.js';
import type { ModelSource, RuntimeOptions } from '../model.js';
import type { Model as OnnxProto } from '../../onnx-proto/proto.js';
import { type GraphInfo, ModelFormatError, inspect } from './inspect.js';
import { type BatchRelaxation, relaxBatch } from './relax-batch.js';

/** A model read and inspected, with its card. */
export interface ReadModel {
  model: OnnxProto;
  info: GraphInfo;
  /** What relaxBatch changed (null: the batch was already symbolic). */
  relaxed: BatchRelaxation | null;
  card: Card;
  /** Where the card came from (null: no card), named in messages. */
  cardSource: string | null;
}

/** The key under which a model file may embed its card in metadata_props. */
const EMBEDDED_CARD_KEY = 'dropout_serve.card';

/** Read `source`: bytes, graph, relaxed batch and card (see readModelCard for `runtime`), in that order. */
export async function readOnnx(source: ModelSource, runtime?: Partial<RuntimeOptions>): Promise<ReadModel> {
  const { file } = source;
  const bytes = await readModelBytes(source);
  const { model, info } = formatChecked(file, () => inspect(bytes));
  // before anything reads the input's dims or builds a graph: it rewrites `model` and `info`
  const relaxed = formatChecked(file, () => relaxBatch(model, info));
  const { card, cardSource } = await readModelCard(source, info, runtime);
  return { model, info, relaxed, card, cardSource };
}

/** The model file's bytes: those the repository read already, else the file's. ModelLoadError when unreadable. */
export async function readModelBytes(source: ModelSource): Promise<Uint8Array> {
  try {
    return source.contents?.model ?? (await readFile(source.file));
  } catch (err) {
    throw new ModelLoadError(
      source.file,
      `cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
}

/**
 * The card beside the file (or read already), else the one embedded in the model's metadata, else none.
 * A copy of a model loaded from the bytes the repository read (`source.contents`) with the self-check
 * off (`runtime.selfCheck === false`: an MC worker's, Model.copyOptions) takes the card as the main
 * thread validated it from those same bytes, so it does not validate it again (nor load zod).
 */
export async function readModelCard(
  source: ModelSource,
  info: GraphInfo,
  runtime?: Partial<RuntimeOptions>,
): Promise<{ card: Card; cardSource: string | null }> {
  const embedded = info.metadata[EMBEDDED_CARD_KEY];
  const { card, source: cardSource } = await readCard(
    source.card,
    embedded ? { text: embedded, source: `metadata_props ${EMBEDDED_CARD_KEY}` } : undefined,
    source.contents?.card,
    runtime?.selfCheck === false && source.contents !== undefined,
  );
  return { card, cardSource };
}

/** `step()`, with a ModelFormatError turned into a ModelLoadError naming the file (and the card's source). */
export function formatChecked<T>(file: string, step: () => T, cardSource: string | null = null): T {
  try {
    return step();
  } catch (err) {
    if (!(err instanceof ModelFormatError)) throw err;
    throw new ModelLoadError(file, cardSource ? `${err.message} (card: ${cardSource})` : err.message);
  }
}
