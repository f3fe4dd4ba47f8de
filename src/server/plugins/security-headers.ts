/**
 * Security headers and request ids on every response.
 *
 * The headers are the set the OWASP REST Security Cheat Sheet lists for a JSON API, written from a
 * constant (@fastify/helmet computes its larger browser-page set on every request, which halved predict
 * throughput; the bytes of the extra browser headers cost another third). Nothing is ever rendered, so
 * the CSP forbids everything; the Swagger UI under /docs replaces it with its own (plugins/docs.ts).
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { FastifyReply, FastifyServerOptions } from 'fastify';

export const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'strict-transport-security': 'max-age=31536000',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
} as const;

const REQUEST_ID_RE = /^[\w.:-]{1,128}$/;
const REQUEST_ID_PREFIX = randomUUID().slice(0, 8);
let requestCounter = 0;

/**
 * The request id (Fastify's genReqId): the client's x-request-id when it is `[\w.:-]{1,128}`, else a
 * process-unique prefix and a counter (unique across replicas, cheaper than a UUID per request).
 */
export const genReqId: NonNullable<FastifyServerOptions['genReqId']> = (req) => {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID_RE.test(given)
    ? given
    : `${REQUEST_ID_PREFIX}-${(requestCounter++).toString(36)}`;
};

/**
 * Where a Fastify reply keeps its headers until it writes them (fastify/lib/symbols.js; undefined if a
 * Fastify version stops exporting it, and then reply.headers() sets them).
 */
const REPLY_HEADERS: symbol | undefined = (() => {
  try {
    const symbols = createRequire(import.meta.url)('fastify/lib/symbols.js') as { kReplyHeaders?: unknown };
    return typeof symbols.kReplyHeaders === 'symbol' ? symbols.kReplyHeaders : undefined;
  } catch {
    return undefined;
  }
})();

/**
 * The headers of every response, set when its request comes (request-gate.ts, the first hook: the
 * reply has no header yet). Written as one object literal in place of the reply's empty headers
 * object: reply.headers() and reply.header() lowercased each name and set it with a keyed load and
 * store that every header name shares (megamorphic), about 1.4 k instructions a request in callgrind
 * (issue 20). A reply that already has a header gets them through reply.headers().
 */
export function setSecurityHeaders(reply: FastifyReply, requestId: string): void {
  const holder = reply as unknown as Record<symbol, Record<string, unknown> | undefined>;
  const current = REPLY_HEADERS === undefined ? undefined : holder[REPLY_HEADERS];
  if (current !== undefined && isEmpty(current)) {
    holder[REPLY_HEADERS!] = {
      'cache-control': SECURITY_HEADERS['cache-control'],
      'content-security-policy': SECURITY_HEADERS['content-security-policy'],
      'strict-transport-security': SECURITY_HEADERS['strict-transport-security'],
      'x-content-type-options': SECURITY_HEADERS['x-content-type-options'],
      'x-frame-options': SECURITY_HEADERS['x-frame-options'],
      'x-request-id': requestId,
    };
    return;
  }
  reply.headers(SECURITY_HEADERS);
  reply.header('x-request-id', requestId);
}

function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}
