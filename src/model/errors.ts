/**
 * Core errors, protocol-neutral. A RequestError is the client's or the server state's fault and has a
 * kind with its HTTP-style status; the protocol codecs (src/server/protocol) render it in their shape.
 * The data plane's own errors (unknown model, limits, not ready) are in src/serving/errors.ts.
 * ModelLoadError is a load failure (start-up or repository load), not a request's.
 */

/** Every kind of request error and its status. */
export const ERROR_STATUS = {
  invalid_input: 400,
  model_not_found: 404,
  too_large: 413,
  no_dropout: 422,
  /** The interval asked for cannot be served (conformal without scores, or a level they cannot reach). */
  interval_unavailable: 422,
  /** A model asked to load (V2 repository extension) failed to: 400, as Triton answers it. */
  load_failed: 400,
  /** A statistic (or predict output) came out NaN or infinite. */
  non_finite: 422,
  /** Inputs far outside the training range, with OUT_OF_RANGE=reject. */
  out_of_range: 422,
  /** The client left; never sent (nginx's "client closed request", for logs and metrics). */
  cancelled: 499,
  not_ready: 503,
  /** The queue is full: retry after Retry-After seconds. */
  overloaded: 503,
  /** The request's deadline passed while it waited or ran. */
  deadline_exceeded: 504,
} as const;

export type ErrorKind = keyof typeof ERROR_STATUS;

export class RequestError extends Error {
  /** Seconds after which a retry may succeed (the Retry-After header of a 503). */
  retryAfterSeconds?: number;

  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
  }

  get status(): number {
    return ERROR_STATUS[this.kind];
  }
}

/** Bad rows or options; messages name the field, row and expectation. */
export class InputError extends RequestError {
  override name = 'InputError';
  constructor(message: string) {
    super('invalid_input', message);
  }
}

export class NoDropoutError extends RequestError {
  override name = 'NoDropoutError';
  constructor(model: string) {
    super('no_dropout', `model "${model}" has no Dropout node, so Monte Carlo dropout is not available; use predict`);
  }
}

/**
 * A run stopped between chunks because its signal was set (the client left or the deadline passed).
 * `samplesDone` of `samples` were computed before it stopped.
 */
export class CancelledError extends RequestError {
  override name = 'CancelledError';
  constructor(
    readonly samplesDone = 0,
    readonly samples = 0,
  ) {
    super('cancelled', `cancelled after ${samplesDone} of ${samples} samples`);
  }
}

export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}
