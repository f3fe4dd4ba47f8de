/**
 * Request validation and response serialisation. zod validates (fastify-type-provider-zod); the predict
 * and uncertainty bodies first try a fast path that accepts only what zod would accept, unchanged
 * (schemas/fast-path.ts), and leave everything else to zod. Responses are built by our own code and their
 * zod schemas document them (OpenAPI); encoding them through zod on every request cost ~10% of predict
 * throughput, so they are serialised directly. JSON only: a text/plain body is a 415. JSON nested
 * deeper than MAX_JSON_DEPTH is a 400 before it is parsed (json-depth.ts); a body whose client has gone
 * is not parsed (499, plugins/client-gone.ts).
 */
import createError from '@fastify/error';
import type { FastifyBodyParser, FastifyInstance } from 'fastify';
import { validatorCompiler } from 'fastify-type-provider-zod';
import { ClientGoneError } from '../../serving/errors.js';
import {
  JSON_PLAIN,
  JSON_TOO_DEEP,
  MAX_JSON_DEPTH,
  PARSE_FIRST_MAX_BYTES,
  checkParsed,
  scanJson,
} from '../json-depth.js';
import { fastPathOf } from '../schemas/fast-path.js';
import { appPlugin } from './app-plugin.js';
import { clientLeft } from './client-gone.js';

export const TooDeep = createError(
  'DS_JSON_TOO_DEEP',
  `body: JSON nested deeper than ${MAX_JSON_DEPTH} levels (no valid request needs more)`,
  400,
);

/**
 * JSON bytes → a value, as Fastify's own JSON parser (secure-json-parse: `__proto__` and `constructor`
 * keys refused) would, after the depth limit. A small body (PARSE_FIRST_MAX_BYTES, every one-row
 * request) is parsed by JSON.parse and its value checked (json-depth.ts checkParsed: the depth, and
 * whether a key could be refused); a larger one is first scanned (json-depth.ts scanJson: the same two
 * answers from the bytes, before any parse). A body with neither is JSON.parse's value; a suspect one,
 * or invalid or empty JSON (its error), goes to Fastify's parser.
 */
export function jsonBodyParser(app: FastifyInstance): FastifyBodyParser<Buffer> {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  return (req, body, done) => {
    if (body.length <= PARSE_FIRST_MAX_BYTES) {
      const text = body.toString('utf8');
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        // invalid JSON: too deep as the scan sees it, else Fastify's parser writes the error
        if (scanJson(body) === JSON_TOO_DEEP) return done(new TooDeep(), undefined);
        return void parseJson(req, text, done);
      }
      const check = checkParsed(value);
      if (check === JSON_PLAIN) return done(null, value);
      if (check === JSON_TOO_DEEP) return done(new TooDeep(), undefined);
      return void parseJson(req, text, done);
    }
    const scan = scanJson(body);
    if (scan === JSON_TOO_DEEP) return done(new TooDeep(), undefined);
    const text = body.toString('utf8');
    if (scan === JSON_PLAIN && text.length > 0) {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        return void parseJson(req, text, done); // its error
      }
      return done(null, value);
    }
    void parseJson(req, text, done);
  };
}

export const validation = appPlugin(async (app) => {
  app.removeContentTypeParser('text/plain');
  // JSON: the nesting depth is checked on the raw bytes before it is parsed
  const parseJson = jsonBodyParser(app);
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body: Buffer, done) => {
    if (clientLeft(req)) return done(new ClientGoneError(), undefined);
    void parseJson(req, body, done);
  });
  app.setValidatorCompiler((route) => {
    const zod = validatorCompiler(route as Parameters<typeof validatorCompiler>[0]);
    const fast = fastPathOf(route.schema);
    if (!fast) return zod;
    // `true` when the fast path accepts the value unchanged (Fastify keeps it: no result object per part)
    return (data) => {
      const value = fast(data);
      return value === undefined ? zod(data) : value === data ? true : { value };
    };
  });
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
});
