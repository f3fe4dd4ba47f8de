/**
 * Errors and unknown routes. describeError turns any error into a status, a message and a code (5xx
 * details are hidden and logged); the shape of the body is the protocol's: each protocol's codec has an
 * errorBody (protocol/v1.ts: Fastify's {statusCode, error, message, code}; protocol/v2.ts: {"error"}).
 * This plugin installs the /v1 shape for the whole app; a protocol's route plugin installs its own for
 * its encapsulated context with useErrorShape (routes/v2.ts), so the shape follows the route, not the URL.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { RequestError } from '../../model/errors.js';
import * as v1 from '../protocol/v1.js';
import { appPlugin } from './app-plugin.js';

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
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return {
      status: 415,
      message: `content-type "${String(req.headers['content-type'] ?? '').slice(0, 100)}" is not supported; send application/json`,
      code,
    };
  // client errors, and our own 503s, carry their message to the client
  if (typeof status === 'number' && ((status >= 400 && status < 500) || code?.startsWith('DS_')))
    return { status, message: err.message, code };
  return { status: typeof status === 'number' && status >= 500 ? status : 500, message: 'internal server error' };
}

/** Answer errors and unknown routes of `app`'s context in `shape`. */
export function useErrorShape(app: FastifyInstance, shape: ErrorShape): void {
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const { status, message, code } = describeError(err, req);
    if (err instanceof RequestError && err.retryAfterSeconds !== undefined)
      reply.header('retry-after', String(err.retryAfterSeconds));
    // overload, deadlines and clients that left are the server working as designed: no stack, info level
    if (status >= 500 && !(err instanceof RequestError)) req.log.error({ err, req }, 'request failed');
    else if (status >= 499)
      req.log.info(
        { statusCode: status, message },
        err instanceof RequestError && err.kind === 'cancelled'
          ? 'request cancelled: the client left'
          : 'request not served',
      );
    else req.log.info({ statusCode: status, message }, 'client error');
    return reply.code(status).send(shape(status, message, code));
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send(shape(404, `route ${req.method} ${req.url.split('?')[0]!.slice(0, 200)} not found`)),
  );
}

/** The whole app answers in the /v1 (Fastify) shape unless a protocol's routes say otherwise. */
export const errors = appPlugin(async (app) => {
  useErrorShape(app, v1.errorBody);
});
