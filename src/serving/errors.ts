/**
 * The data plane's errors (protocol-neutral; the codecs in src/server/protocol render them). With the
 * core errors of src/model/errors.ts (InputError, NoDropoutError) they are every RequestError kind.
 */
import { RequestError } from '../model/errors.js';

export class ModelNotFoundError extends RequestError {
  override name = 'ModelNotFoundError';
  constructor(message: string) {
    super('model_not_found', message);
  }

  /** `unknown model "x" (available: a, b)`; long names are cut. */
  static unknown(name: string, available: readonly string[]): ModelNotFoundError {
    return new ModelNotFoundError(`unknown model "${name.length > 100 ? `${name.slice(0, 100)}…` : name}" (available: ${available.join(', ') || 'none'})`);
  }
}

/** A request over a size limit (MAX_BATCH_ROWS, MC_MAX_WORK). */
export class TooLargeError extends RequestError {
  override name = 'TooLargeError';
  constructor(message: string) {
    super('too_large', message);
  }
}

/** Loading or shutting down. */
export class NotReadyError extends RequestError {
  override name = 'NotReadyError';
  constructor(message: string) {
    super('not_ready', message);
  }
}

/** A model load asked for by a client (the repository extension) failed; the message says why. */
export class ModelLoadFailedError extends RequestError {
  override name = 'ModelLoadFailedError';
  constructor(message: string) {
    super('load_failed', message);
  }
}
