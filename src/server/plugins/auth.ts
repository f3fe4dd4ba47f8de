/**
 * API_KEY bearer auth: when set, every route but health and metrics needs `Authorization: Bearer <key>`
 * (401 with WWW-Authenticate otherwise). Compared in constant time (SHA-256 digests, timingSafeEqual).
 * The model management routes (/v2/repository/…) take ADMIN_API_KEY instead (plugins/admin.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import createError from '@fastify/error';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isAdminPath } from './admin.js';

export const Unauthorized = createError(
  'DS_UNAUTHORIZED',
  'missing or invalid bearer token (Authorization: Bearer <API_KEY>)',
  401,
);

const PUBLIC_PREFIXES = ['/health/', '/v2/health/', '/metrics'];

/** Health and metrics stay open for probes and scrapers (and during loading and shutdown). */
export function isPublic(url: string): boolean {
  const path = url.split('?')[0]!;
  return PUBLIC_PREFIXES.some((p) => path === p.replace(/\/$/, '') || path.startsWith(p));
}

/** The token of `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 7235 §2.1). '' otherwise. */
export function bearerToken(header: string | undefined): string {
  const m = header === undefined ? null : /^bearer (.*)$/is.exec(header);
  return m ? m[1]! : '';
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * With an API key, the check of a request's bearer token (request-gate.ts calls it first thing after
 * the headers): the Unauthorized error, with WWW-Authenticate set, or undefined. null without a key.
 */
export function bearerCheck(
  apiKey: string | undefined,
): ((req: FastifyRequest, reply: FastifyReply) => Error | undefined) | null {
  if (!apiKey) return null;
  const keyDigest = digest(apiKey);
  return (req, reply) => {
    if (isPublic(req.url) || isAdminPath(req.url)) return undefined;
    const token = bearerToken(req.headers.authorization);
    // constant-time: compare fixed-length digests
    if (timingSafeEqual(digest(token), keyDigest)) return undefined;
    reply.header('www-authenticate', 'Bearer');
    return new Unauthorized();
  };
}
