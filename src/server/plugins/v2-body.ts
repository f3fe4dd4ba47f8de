/**
 * Request bodies of the V2 routes as KServe's and Triton's clients send them, for the /v2 context only
 * (call useV2Bodies in the route plugin; the rest of the app keeps JSON with a JSON content type):
 * - JSON with `Content-Type: application/json`, or with no Content-Type at all (tritonclient's HTTP
 *   client sends none);
 * - the binary tensor data extension: a JSON inference header followed by raw tensors, its length in
 *   `Inference-Header-Content-Length` (kserve's client sends it as application/octet-stream,
 *   tritonclient with no type, some clients as application/json). The tensors are decoded by
 *   protocol/v2-binary.ts and kept on the request (`req.v2Binary`); the body the route validates is the
 *   JSON header;
 * - `Content-Encoding: gzip` or `deflate` (tritonclient's request_compression_algorithm), decompressed
 *   up to the body limit.
 * Any other declared type is a 415; a malformed binary body a 400 naming the problem. JSON (the body,
 * or a binary body's JSON header) nested deeper than MAX_JSON_DEPTH is a 400 before it is parsed, as
 * in the rest of the app (plugins/validation.ts).
 */
import { gunzipSync, inflateSync } from 'node:zlib';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { InputError } from '../../model/errors.js';
import { ClientGoneError, TooLargeError } from '../../serving/errors.js';
import { exceedsJsonDepth } from '../json-depth.js';
import {
  type V2BinaryRequest,
  V2BinaryError,
  type V2RawInput,
  parseBinaryRequest,
  parseHeaderLength,
} from '../protocol/v2-binary.js';
import { clientLeft } from './client-gone.js';
import { TooDeep, jsonBodyParser } from './validation.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The binary tensors of a V2 request with Inference-Header-Content-Length (null otherwise). */
    v2Binary: V2BinaryRequest | null;
  }
}

export const INFERENCE_HEADER_CONTENT_LENGTH = 'inference-header-content-length';

/** Media types a V2 body may declare (none at all is JSON too). */
const V2_MEDIA_TYPES = new Set(['application/json', 'application/octet-stream']);

class UnsupportedMediaTypeError extends Error {
  readonly statusCode = 415;
  readonly code = 'DS_UNSUPPORTED_MEDIA_TYPE';
}

export interface V2BodyOptions {
  /**
   * The input of the route's model, for a raw binary request (Inference-Header-Content-Length: 0: the
   * whole body is the one input's data); undefined when the route has no model.
   */
  rawInput(req: FastifyRequest): V2RawInput | undefined;
}

/** Install the V2 body parsers in `app`'s (encapsulated) context. */
export function useV2Bodies(app: FastifyInstance, opts: V2BodyOptions): void {
  const bodyLimit = app.initialConfig.bodyLimit ?? 1048576;
  // the same JSON parser as the rest of the app's (plugins/validation.ts: the depth limit, then as
  // Fastify's own, __proto__ and constructor keys refused), applied to every V2 body without binary tensors
  const parseJson = jsonBodyParser(app);
  app.decorateRequest('v2Binary', null);
  app.removeAllContentTypeParsers();
  // '*' also serves requests without a Content-Type header
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, raw, done) => {
    if (clientLeft(req)) return done(new ClientGoneError(), undefined);
    try {
      const type = req.headers['content-type'];
      const media = type === undefined ? undefined : mediaType(type);
      if (media !== undefined && !V2_MEDIA_TYPES.has(media)) {
        throw new UnsupportedMediaTypeError(
          `content-type "${type!.slice(0, 100)}" is not supported; send application/json (or no content-type), or binary tensors with Inference-Header-Content-Length`,
        );
      }
      const body = decompress(raw as Buffer, req.headers['content-encoding'], bodyLimit);
      const headerLength = req.headers[INFERENCE_HEADER_CONTENT_LENGTH];
      if (headerLength === undefined) {
        if (media === 'application/octet-stream') {
          throw new InputError(
            'an application/octet-stream body holds binary tensors after a JSON header whose length must be given in the Inference-Header-Content-Length header',
          );
        }
        void parseJson(req, body, done);
        return;
      }
      const hlen = parseHeaderLength(headerLength);
      if (exceedsJsonDepth(body.subarray(0, hlen))) throw new TooDeep();
      const rawInput = hlen === 0 ? opts.rawInput(req) : undefined;
      const parsed = parseBinaryRequest(body, headerLength, { rawInput });
      req.v2Binary = parsed;
      done(null, parsed.header);
    } catch (err) {
      done(err instanceof V2BinaryError ? new InputError(err.message) : (err as Error), undefined);
    }
  });
}

/** A Content-Type's media type, lower case, without its parameters (no array per request, as split made). */
function mediaType(type: string): string {
  const semicolon = type.indexOf(';');
  return (semicolon < 0 ? type : type.slice(0, semicolon)).trim().toLowerCase();
}

/** The body without its Content-Encoding (gzip, deflate or identity), at most `limit` bytes. */
function decompress(body: Buffer, encoding: string | undefined, limit: number): Buffer {
  const enc = encoding?.trim().toLowerCase();
  if (enc === undefined || enc === '' || enc === 'identity') return body;
  const inflate = enc === 'gzip' || enc === 'x-gzip' ? gunzipSync : enc === 'deflate' ? inflateSync : null;
  if (!inflate)
    throw new UnsupportedMediaTypeError(
      `content-encoding "${encoding!.slice(0, 40)}" is not supported; send gzip, deflate or identity`,
    );
  try {
    return inflate(body, { maxOutputLength: limit });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      throw new TooLargeError(`the ${enc}-decoded body exceeds BODY_LIMIT_BYTES=${limit}`);
    throw new InputError(`the body is not valid ${enc} data (content-encoding): ${(err as Error).message}`);
  }
}
