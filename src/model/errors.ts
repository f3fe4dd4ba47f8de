/**
 * The error catalogue, protocol-neutral. A RequestError is the client's or the server state's fault and
 * has a kind; the kind's row in ERROR_KINDS gives its HTTP-style status and its /v1 code, and the
 * protocol codecs (src/server/protocol) render it in their shape. Each error class is one kind with one
 * message (createError, after @fastify/error's); the core ones are here, the data plane's (unknown
 * model, limits, not ready, …) in src/serving/errors.ts. ModelLoadError is a load failure (start-up or
 * repository load), not a request's.
 */

/** Every kind of request error: its status and its /v1 code (`DS_<KIND>`). */
export const ERROR_KINDS = {
  /** Bad rows or options; messages name the field, row and expectation. */
  invalid_input: { status: 400, code: 'DS_INVALID_INPUT' },
  model_not_found: { status: 404, code: 'DS_MODEL_NOT_FOUND' },
  /** A request over a size limit (MAX_BATCH_ROWS, MC_MAX_WORK, BODY_LIMIT_BYTES decoded). */
  too_large: { status: 413, code: 'DS_TOO_LARGE' },
  /** Monte Carlo asked of a model without dropout. */
  no_dropout: { status: 422, code: 'DS_NO_DROPOUT' },
  /** The interval asked for cannot be served (conformal without scores, or a level they cannot reach). */
  interval_unavailable: { status: 422, code: 'DS_INTERVAL_UNAVAILABLE' },
  /** A model asked to load (V2 repository extension) failed to: 400, as Triton answers it. */
  load_failed: { status: 400, code: 'DS_LOAD_FAILED' },
  /** A statistic (or predict output) came out NaN or infinite. */
  non_finite: { status: 422, code: 'DS_NON_FINITE' },
  /** Inputs far outside the training range, with OUT_OF_RANGE=reject. */
  out_of_range: { status: 422, code: 'DS_OUT_OF_RANGE' },
  /** The client left; never sent (nginx's "client closed request", for logs and metrics). */
  cancelled: { status: 499, code: 'DS_CANCELLED' },
  /** Loading or shutting down. */
  not_ready: { status: 503, code: 'DS_NOT_READY' },
  /** The queue is full: retry after Retry-After seconds. */
  overloaded: { status: 503, code: 'DS_OVERLOADED' },
  /** The request's deadline passed while it waited or ran. */
  deadline_exceeded: { status: 504, code: 'DS_DEADLINE_EXCEEDED' },
} as const satisfies Record<string, { status: number; code: `DS_${string}` }>;

export type ErrorKind = keyof typeof ERROR_KINDS;

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
    return ERROR_KINDS[this.kind].status;
  }
}

/** A RequestError class made by createError: its constructor takes what its message is made of. */
export type RequestErrorClass<A extends unknown[]> = new (...args: A) => RequestError;

/**
 * A RequestError class of one kind, named `name` (the error's `name`, as a class field would set it),
 * whose message is `message(...args)` (by default the one argument, the message itself): the typed form
 * of @fastify/error's `createError(code, message, status)`, the status and code coming from the kind.
 */
export function createError(name: string, kind: ErrorKind): RequestErrorClass<[message: string]>;
export function createError<A extends unknown[]>(
  name: string,
  kind: ErrorKind,
  message: (...args: A) => string,
): RequestErrorClass<A>;
export function createError(
  name: string,
  kind: ErrorKind,
  message: (...args: unknown[]) => string = (text) => text as string,
): RequestErrorClass<unknown[]> {
  const made = class extends RequestError {
    constructor(...args: unknown[]) {
      super(kind, message(...args));
      this.name = name;
    }
  };
  Object.defineProperty(made, 'name', { value: name });
  return made;
}

/** Bad rows or options; messages name the field, row and expectation. */
export const InputError = createError('InputError', 'invalid_input');
export type InputError = InstanceType<typeof InputError>;

export const NoDropoutError = createError(
  'NoDropoutError',
  'no_dropout',
  (model: string) => `model "${model}" has no Dropout node, so Monte Carlo dropout is not available; use predict`,
);
export type NoDropoutError = InstanceType<typeof NoDropoutError>;

/**
 * A run stopped between chunks because its signal was set (the client left or the deadline passed).
 * `samplesDone` of `samples` were computed before it stopped (the worker wire carries the two numbers).
 */
export class CancelledError extends createError(
  'CancelledError',
  'cancelled',
  (samplesDone: number, samples: number) => `cancelled after ${samplesDone} of ${samples} samples`,
) {
  constructor(
    readonly samplesDone = 0,
    readonly samples = 0,
  ) {
    super(samplesDone, samples);
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
