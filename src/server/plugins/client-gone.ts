/**
 * A request whose client has already gone when its body has been read is dropped before the body is
 * parsed and validated and before the handler: under a burst, bodies that arrived before their clients
 * reset would otherwise each be parsed, validated and decoded on the main thread after the client left
 * (50 aborted requests of 1000 rows kept the main thread busy 128–506 ms after the resets, the bench's
 * abort probe). The body parsers ask (plugins/validation.ts, plugins/v2-body.ts): a preValidation hook
 * asked the same of every request, a hook phase per request for a check that only bodies need. Once a
 * request is admitted, the data plane's client link (request-context.ts) cancels its queued and running work.
 */
import type { FastifyRequest } from 'fastify';

/** The client of `req` has closed its connection. */
export function clientLeft(req: FastifyRequest): boolean {
  return (req.raw.socket as { destroyed?: boolean } | null)?.destroyed === true;
}
