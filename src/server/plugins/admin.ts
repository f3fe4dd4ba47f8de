/**
 * ADMIN_API_KEY for the model management routes (routes/repository.ts), apart from API_KEY: a client
 * that may predict may not swap models. useAdminAuth(context, key) installs, on that encapsulated
 * context only:
 * - without a key: every route answers 404 (management is off: the routes do not exist on this server,
 *   as the extension is not advertised in GET /v2; a 403 would suggest that some credential could pass);
 * - with a key: `Authorization: Bearer <ADMIN_API_KEY>`, compared in constant time (SHA-256 digests,
 *   timingSafeEqual, as plugins/auth.ts), else 401 with WWW-Authenticate;
 * - an audit line per request (log level info, message "model management"): request id, remote address,
 *   a short hash of the bearer token presented (never the token; the admin key's hash when it passed),
 *   the action, the model, the status and the outcome (what was done, or the error message).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import createError from '@fastify/error';
import type { FastifyInstance, FastifyRequest } from 'fastify';

export const AdminUnauthorized = createError(
  'DS_UNAUTHORIZED',
  'missing or invalid admin bearer token (Authorization: Bearer <ADMIN_API_KEY>)',
  401,
);
export const ManagementOff = createError(
  'DS_MANAGEMENT_OFF',
  'model management is off: the server was started without ADMIN_API_KEY',
  404,
);

/** The management routes' path prefix: plugins/auth.ts leaves them to this check (they do not take API_KEY). */
export const ADMIN_PREFIX = '/v2/repository';

export function isAdminPath(url: string): boolean {
  return url === ADMIN_PREFIX || url.startsWith(`${ADMIN_PREFIX}/`) || url.startsWith(`${ADMIN_PREFIX}?`);
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
/** 12 hex digits of SHA-256: tells keys apart in the logs (rotation, a leaked key) without revealing one. */
export const keyHash = (key: string): string => digest(key).toString('hex').slice(0, 12);

const outcomes = new WeakMap<FastifyRequest, string>();

/** What a management request did, for its audit line (the error message is taken when it fails). */
export function auditOutcome(req: FastifyRequest, outcome: string): void {
  outcomes.set(req, outcome);
}

const bearer = (req: FastifyRequest): string | null => {
  const header = req.headers.authorization ?? '';
  return header.startsWith('Bearer ') ? header.slice(7) : null;
};

export function useAdminAuth(app: FastifyInstance, adminKey: string | undefined): void {
  const keyDigest = adminKey ? digest(adminKey) : null;
  app.addHook('onRequest', (req, reply, done) => {
    if (!keyDigest) return done(new ManagementOff());
    // constant-time: compare fixed-length digests
    if (!timingSafeEqual(digest(bearer(req) ?? ''), keyDigest)) {
      reply.header('www-authenticate', 'Bearer');
      return done(new AdminUnauthorized());
    }
    done();
  });
  app.addHook('onError', (req, _reply, err, done) => {
    outcomes.set(req, err.message);
    done();
  });
  app.addHook('onResponse', (req, reply, done) => {
    const token = bearer(req);
    const url = req.routeOptions.url ?? req.url;
    const action = /\/(index|load|unload)$/.exec(url)?.[1] ?? 'unknown';
    const model = (req.params as { name?: string } | undefined)?.name;
    req.log.info(
      {
        audit: {
          req_id: req.id,
          remote: req.ip,
          key: token === null ? null : keyHash(token),
          action,
          ...(model !== undefined ? { model: model.slice(0, 100) } : {}),
          status: reply.statusCode,
          outcome: outcomes.get(req) ?? '',
        },
      },
      'model management',
    );
    done();
  });
}
