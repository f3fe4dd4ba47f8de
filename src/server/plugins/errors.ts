/**
 * Errors and unknown routes. describeError turns any error into a status, a message and a code (5xx
 * details are hidden and logged); the shape of the body is the protocol's: each protocol's codec has an
 * errorBody (protocol/v1.ts: Fastify's {statusCode, error, message, code}; protocol/v2.ts: {"error"}).
 * This plugin installs the /v1 shape for the whole app; a protocol's route plugin installs its own for
 * its encapsulated context with useErrorShape (routes/v2.ts), so the shape follows the route, not the URL.
 */
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { RequestError } from '../../model/errors.js';
import { OverloadedError } from '../../serving/errors.js';
import * as v1 from '../protocol/v1.js';
import { appPlugin } from './app-plugin.js';
import { INFERENCE_HEADER_CONTENT_LENGTH } from './v2-body.js';
import { paceRefusal } from './refusal-pacing.js';

/** A protocol's error body. */
export type ErrorShape = (status: number, message: string, code?: string) => unknown;

interface ZodIssueLike {
  code?: string;
  path: PropertyKey[];
  message: string;
  errors?: ZodIssueLike[][];
}

/** zod reports a failed union as one "Invalid input"; follow the branch that got furthest instead. */
function resolveIssue(issue: ZodIssueLike): { path: PropertyKey[]; message: string } {
  if (issue.code !== 'invalid_union' || !issue.errors?.length) return issue;
  const best = issue.errors
    .flat()
    .map(resolveIssue)
    .reduce((a, b) => (b.path.length > a.path.length ? b : a));
  return { path: [...issue.path, ...best.path], message: best.message };
}

/**
 * Fastify's own errors whose message we write: its status, and a message that says what to do. A JSON body
 * over the limit learns of the V2 binary tensor data extension, which carries tensors without JSON's cost
 * (an 8-image JSON request is 4.6 MB; issue 19).
 */
const FASTIFY_MESSAGES: Record<string, { status: number; message: (req: FastifyRequest) => string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    message: (req) =>
      `content-type "${String(req.headers['content-type'] ?? '').slice(0, 100)}" is not supported; send application/json`,
  },
  FST_ERR_CTP_BODY_TOO_LARGE: {
    status: 413,
    message: (req) =>
      `body: more than BODY_LIMIT_BYTES=${req.routeOptions.bodyLimit} bytes${req.headers[INFERENCE_HEADER_CONTENT_LENGTH] === undefined ? '; tensors travel without the cost of JSON in the V2 binary tensor data extension (POST /v2/models/{name}/infer: a JSON header, its length in Inference-Header-Content-Length, then the raw tensor bytes)' : ''}`,
  },
};

/** Turn any error into a status, a message and a code; 5xx messages are hidden from the client. */
export function describeError(
  err: FastifyError | Error,
  req: FastifyRequest,
): { status: number; message: string; code?: string } {
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = (err as FastifyError).validationContext ?? 'body';
    const issues = (err as FastifyError).validation!.slice(0, 3).map((v) => {
      const resolved = resolveIssue({
        code: v.keyword,
        path: v.instancePath.split('/').filter(Boolean),
        message: v.message ?? 'invalid',
        ...(v.params as object),
      });
      const path = resolved.path.map((p) => (/^\d+$/.test(String(p)) ? `[${String(p)}]` : `.${String(p)}`)).join('');
      return `${where}${path}: ${resolved.message}`;
    });
    return { status: 400, message: issues.join('; '), code: 'FST_ERR_VALIDATION' };
  }
  if (err instanceof RequestError) return { status: err.status, message: err.message, code: v1.errorCode(err.kind) };
  const status = (err as FastifyError).statusCode;
  const code = (err as FastifyError).code;
  const fastify = code === undefined ? undefined : FASTIFY_MESSAGES[code];
  if (fastify) return { status: fastify.status, message: fastify.message(req), code };
  // client errors, and our own 503s, carry their message to the client
  if (typeof status === 'number' && ((status >= 400 && status < 500) || code?.startsWith('DS_')))
    return { status, message: err.message, code };
  return { status: typeof status === 'number' && status >= 500 ? status : 500, message: 'internal server error' };
}

/** Log a request that was not served; refusals (503 overloaded) are summed, one line a second at most. */
function logFailure(err: Error, req: FastifyRequest, status: number, message: string): void {
  // overload, deadlines and clients that left are the server working as designed: no stack, info level
  if (status >= 500 && !(err instanceof RequestError)) req.log.error({ err, req }, 'request failed');
  else if (err instanceof OverloadedError) logRefusal(req.log, message);
  else if (status >= 499)
    req.log.info(
      { statusCode: status, message },
      err instanceof RequestError && err.kind === 'cancelled'
        ? 'request cancelled: the client left'
        : 'request not served',
    );
  else req.log.info({ statusCode: status, message }, 'client error');
}

/** Refusals since the last line, and when that line was written (performance.now(), ms). */
const refusals = { count: 0, loggedAt: Number.NEGATIVE_INFINITY };
const REFUSAL_LOG_EVERY_MS = 1000;

/** A line per refusal would cost more than the refusal itself under a retry storm: one line a second. */
export function logRefusal(log: FastifyBaseLogger, message: string): void {
  refusals.count++;
  const now = performance.now();
  if (now - refusals.loggedAt < REFUSAL_LOG_EVERY_MS) return;
  log.info({ statusCode: 503, message, refused: refusals.count }, 'request not served (refused: server busy)');
  refusals.count = 0;
  refusals.loggedAt = now;
}

/**
 * Send a refusal (503 overloaded) at once; when its connection retried before its Retry-After, the
 * connection is not read again for a while (refusal-pacing.ts): the retry waits in the kernel's socket
 * buffer, and the server holds nothing of it meanwhile.
 */
function sendRefusal(req: FastifyRequest, reply: FastifyReply, body: unknown, retryAfterSeconds: number) {
  paceRefusal(req.raw, reply.raw, retryAfterSeconds);
  return reply.send(body);
}

/** Answer errors and unknown routes of `app`'s context in `shape`. */
export function useErrorShape(app: FastifyInstance, shape: ErrorShape): void {
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const { status, message, code } = describeError(err, req);
    const retryAfter = err instanceof RequestError ? err.retryAfterSeconds : undefined;
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
    logFailure(err, req, status, message);
    reply.code(status);
    if (err instanceof OverloadedError) return sendRefusal(req, reply, shape(status, message, code), retryAfter ?? 1);
    return reply.send(shape(status, message, code));
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send(shape(404, `route ${req.method} ${req.url.split('?')[0]!.slice(0, 200)} not found`)),
  );
}

/** The whole app answers in the /v1 (Fastify) shape unless a protocol's routes say otherwise. */
export const errors = appPlugin(async (app) => {
  useErrorShape(app, v1.errorBody);
});
