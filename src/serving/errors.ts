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
    return new ModelNotFoundError(
      `unknown model "${name.length > 100 ? `${name.slice(0, 100)}…` : name}" (available: ${available.join(', ') || 'none'})`,
    );
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

/** The queue of a lane is full (MAX_QUEUE): 503 with Retry-After. */
export class OverloadedError extends RequestError {
  override name = 'OverloadedError';
  constructor(message: string, retryAfterSeconds: number) {
    super('overloaded', message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * The request's deadline (x-request-timeout, V2 parameters.timeout, at most MAX_REQUEST_MS) passed:
 * queued work is dropped, running Monte Carlo stops between chunks. 504, not 503: the server did take
 * the request; its time budget ran out (gRPC's DEADLINE_EXCEEDED maps to 504), and a 503 means "retry
 * after Retry-After", which a client should not do blindly with the same deadline.
 */
export class DeadlineExceededError extends RequestError {
  override name = 'DeadlineExceededError';
  constructor(timeoutMs: number, where: 'queued' | 'running') {
    super(
      'deadline_exceeded',
      `the request's deadline of ${Math.round(timeoutMs * 1000) / 1000} ms passed while it was ${where === 'queued' ? 'waiting in the queue' : 'running'}`,
    );
  }
}

/** A statistic or output came out NaN or infinite (422): the message names the rows and statistics. */
export class NonFiniteError extends RequestError {
  override name = 'NonFiniteError';
  constructor(message: string) {
    super('non_finite', message);
  }
}

/** Inputs far outside the training range with OUT_OF_RANGE=reject (422). */
export class OutOfRangeError extends RequestError {
  override name = 'OutOfRangeError';
  constructor(message: string) {
    super('out_of_range', message);
  }
}

/**
 * The client's connection closed before its request was validated (its body had already arrived): the
 * request is dropped without validating or running it. Never sent (499, nginx's "client closed request").
 */
export class ClientGoneError extends RequestError {
  override name = 'ClientGoneError';
  constructor() {
    super('cancelled', 'the client closed the connection before its request was handled');
  }
}
