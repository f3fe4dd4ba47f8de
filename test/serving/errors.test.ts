/**
 * The error catalogue (src/model/errors.ts, src/serving/errors.ts): every class keeps its name, kind,
 * status and message, and `instanceof` sees its class and RequestError (the error handler and the
 * tests rely on both).
 */
import { describe, expect, it } from 'vitest';
import {
  CancelledError,
  ERROR_KINDS,
  InputError,
  ModelLoadError,
  NoDropoutError,
  RequestError,
  createError,
} from '../../src/model/errors.js';
import {
  ClientGoneError,
  DeadlineExceededError,
  ModelLoadFailedError,
  ModelNotFoundError,
  NonFiniteError,
  NotReadyError,
  OutOfRangeError,
  OverloadedError,
  TooLargeError,
} from '../../src/serving/errors.js';

describe('the error catalogue', () => {
  it('a kind gives the status and the /v1 code DS_<KIND>', () => {
    for (const [kind, { code }] of Object.entries(ERROR_KINDS)) expect(code).toBe(`DS_${kind.toUpperCase()}`);
    expect(Object.fromEntries(Object.entries(ERROR_KINDS).map(([k, v]) => [k, v.status]))).toMatchInlineSnapshot(`
      {
        "cancelled": 499,
        "deadline_exceeded": 504,
        "interval_unavailable": 422,
        "invalid_input": 400,
        "load_failed": 400,
        "model_not_found": 404,
        "no_dropout": 422,
        "non_finite": 422,
        "not_ready": 503,
        "out_of_range": 422,
        "overloaded": 503,
        "too_large": 413,
      }
    `);
  });

  it('every class: its name, kind, status and message; instanceof its class and RequestError', () => {
    const made: [new (...args: never[]) => RequestError, RequestError][] = [
      [InputError, new InputError('row 2, column "age": expected a number')],
      [NoDropoutError, new NoDropoutError('plain')],
      [CancelledError, new CancelledError(30, 100)],
      [ModelNotFoundError, ModelNotFoundError.unknown('x'.repeat(101), ['a', 'b'])],
      [TooLargeError, new TooLargeError('instances: 9 rows exceed MAX_BATCH_ROWS=8')],
      [NotReadyError, new NotReadyError('models are loading')],
      [ModelLoadFailedError, new ModelLoadFailedError('failed to load "a" version 2')],
      [NonFiniteError, new NonFiniteError('the output is not finite for row 0')],
      [OutOfRangeError, new OutOfRangeError('row 0 is out of range')],
      [DeadlineExceededError, new DeadlineExceededError(12.34567, 'queued')],
      [DeadlineExceededError, new DeadlineExceededError(5, 'running')],
      [ClientGoneError, new ClientGoneError()],
      [OverloadedError, new OverloadedError('the queue is full', 2)],
    ];
    for (const [cls, err] of made) {
      expect(err).toBeInstanceOf(cls);
      expect(err).toBeInstanceOf(RequestError);
      expect(err).toBeInstanceOf(Error);
      expect(err.name).toBe(cls.name);
      expect(err.status).toBe(ERROR_KINDS[err.kind].status);
    }
    expect(made.map(([, e]) => `${e.name} ${e.kind} ${e.status}: ${e.message}`)).toMatchInlineSnapshot(`
      [
        "InputError invalid_input 400: row 2, column "age": expected a number",
        "NoDropoutError no_dropout 422: model "plain" has no Dropout node, so Monte Carlo dropout is not available; use predict",
        "CancelledError cancelled 499: cancelled after 30 of 100 samples",
        "ModelNotFoundError model_not_found 404: unknown model "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…" (available: a, b)",
        "TooLargeError too_large 413: instances: 9 rows exceed MAX_BATCH_ROWS=8",
        "NotReadyError not_ready 503: models are loading",
        "ModelLoadFailedError load_failed 400: failed to load "a" version 2",
        "NonFiniteError non_finite 422: the output is not finite for row 0",
        "OutOfRangeError out_of_range 422: row 0 is out of range",
        "DeadlineExceededError deadline_exceeded 504: the request's deadline of 12.346 ms passed while it was waiting in the queue",
        "DeadlineExceededError deadline_exceeded 504: the request's deadline of 5 ms passed while it was running",
        "ClientGoneError cancelled 499: the client closed the connection before its request was handled",
        "OverloadedError overloaded 503: the queue is full",
      ]
    `);
    expect(new InputError('x')).not.toBeInstanceOf(TooLargeError);
    expect(ModelNotFoundError.unknown('y', []).message).toBe('unknown model "y" (available: none)');
  });

  it('the errors that carry data keep it', () => {
    const cancelled = new CancelledError(30, 100);
    expect([cancelled.samplesDone, cancelled.samples]).toEqual([30, 100]);
    expect(new CancelledError().message).toBe('cancelled after 0 of 0 samples');
    expect(new OverloadedError('full', 3).retryAfterSeconds).toBe(3);
    expect(new TooLargeError('big').retryAfterSeconds).toBeUndefined();
    const load = new ModelLoadError('m/model.onnx', 'not a model');
    expect([load.name, load.message, load instanceof RequestError]).toEqual([
      'ModelLoadError',
      'm/model.onnx: not a model',
      false,
    ]);
  });

  it('createError makes a class of a kind with a message from its arguments', () => {
    const Late = createError('LateError', 'deadline_exceeded', (ms: number) => `${ms} ms late`);
    const err = new Late(7);
    expect([err instanceof Late, err instanceof RequestError, err.name, err.status, err.message]).toEqual([
      true,
      true,
      'LateError',
      504,
      '7 ms late',
    ]);
    expect(Late.name).toBe('LateError');
  });
});
