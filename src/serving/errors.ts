/**
 * The data plane's errors (protocol-neutral; the codecs in src/server/protocol render them), made from
 * the error catalogue (src/model/errors.ts: a kind gives the status and the /v1 code). With the core
 * errors there (InputError, NoDropoutError, CancelledError) they are every RequestError kind.
 */
import { createError } from '../model/errors.js';

/** A model or version that is not served (or not on disk, for the management load). */
export class ModelNotFoundError extends createError('ModelNotFoundError', 'model_not_found') {
  /** `unknown model "x" (available: a, b)`; long names are cut. */
  static unknown(name: string, available: readonly string[]): ModelNotFoundError {
    return new ModelNotFoundError(
      `unknown model "${name.length > 100 ? `${name.slice(0, 100)}…` : name}" (available: ${available.join(', ') || 'none'})`,
    );
  }
}

/** A request over a size limit (MAX_BATCH_ROWS, MC_MAX_WORK). */
export const TooLargeError = createError('TooLargeError', 'too_large');
export type TooLargeError = InstanceType<typeof TooLargeError>;

/** Loading or shutting down. */
export const NotReadyError = createError('NotReadyError', 'not_ready');
export type NotReadyError = InstanceType<typeof NotReadyError>;

/** A model load asked for by a client (the repository extension) failed; the message says why. */
export const ModelLoadFailedError = createError('ModelLoadFailedError', 'load_failed');
export type ModelLoadFailedError = InstanceType<typeof ModelLoadFailedError>;

/** A statistic or output came out NaN or infinite (422): the message names the rows and statistics. */
export const NonFiniteError = createError('NonFiniteError', 'non_finite');
export type NonFiniteError = InstanceType<typeof NonFiniteError>;

/** Inputs far outside the training range with OUT_OF_RANGE=reject (422). */
export const OutOfRangeError = createError('OutOfRangeError', 'out_of_range');
export type OutOfRangeError = InstanceType<typeof OutOfRangeError>;

/**
 * The request's deadline (x-request-timeout, V2 parameters.timeout, at most MAX_REQUEST_MS) passed:
 * queued work is dropped, running Monte Carlo stops between chunks. 504, not 503: the server did take
 * the request; its time budget ran out (gRPC's DEADLINE_EXCEEDED maps to 504), and a 503 means "retry
 * after Retry-After", which a client should not do blindly with the same deadline.
 */
export const DeadlineExceededError = createError(
  'DeadlineExceededError',
  'deadline_exceeded',
  (timeoutMs: number, where: 'queued' | 'running') =>
    `the request's deadline of ${Math.round(timeoutMs * 1000) / 1000} ms passed while it was ${where === 'queued' ? 'waiting in the queue' : 'running'}`,
);
export type DeadlineExceededError = InstanceType<typeof DeadlineExceededError>;

/**
 * The client's connection closed before its request was validated (its body had already arrived): the
 * request is dropped without validating or running it. Never sent (499, nginx's "client closed request").
 */
export const ClientGoneError = createError(
  'ClientGoneError',
  'cancelled',
  () => 'the client closed the connection before its request was handled',
);
export type ClientGoneError = InstanceType<typeof ClientGoneError>;

/** The queue of a lane is full (MAX_QUEUE): 503 with Retry-After. */
export class OverloadedError extends createError('OverloadedError', 'overloaded') {
  constructor(message: string, retryAfterSeconds: number) {
    super(message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}
