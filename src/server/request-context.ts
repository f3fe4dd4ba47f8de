/**
 * What the data plane needs to know of an HTTP request beyond its body: the client's connection (a
 * client that disconnects cancels its queued and running work) and its deadline (`x-request-timeout`,
 * milliseconds; V2's `parameters.timeout` is read by the V2 codec).
 *
 * Why not Fastify's `request.signal`: it aborts on the IncomingMessage's 'close', which Node 20 emits
 * once the body has been read, so every POST looked cancelled. The response's 'close' before it
 * finished is the client leaving. And an AbortController costs ≈ 12 µs to make on this machine, a
 * sixth of a predict request: this link costs a closure.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { InputError } from '../model/errors.js';
import type { ClientLink, PredictRequest } from '../serving/dataplane.js';

const TIMEOUT_RE = /^\s*\d{1,10}\s*$/;

/** A connection's close callbacks of its requests in flight, on the socket: one listener per connection. */
const CLOSE_CALLBACKS = Symbol('closeCallbacks');
interface LinkSocket {
  destroyed?: boolean;
  once?: (event: 'close', f: () => void) => unknown;
  [CLOSE_CALLBACKS]?: Set<() => void>;
}

/**
 * The client link of one HTTP request. A class, not an object literal with a getter: a literal's
 * accessor is a new closure per request, and V8 gave each such object a map of its own, allocated in
 * old space (predict under wrk c=32: 3.5 KB promoted per request against 0.5 with the class, and
 * roughly twice the server CPU per request; bench notes in the h7 report). `onClose` listens on the
 * socket, once per connection (a keep-alive connection carries many requests), rather than with a
 * listener added to and removed from each response (issue 20: the EventEmitter's bookkeeping was a
 * Monte Carlo request's cost); the response's own 'close' only where there is no socket to listen to.
 */
class HttpClientLink implements ClientLink {
  constructor(
    private readonly res: FastifyReply['raw'],
    private readonly socket: LinkSocket | null,
  ) {}

  get closed(): boolean {
    return this.socket?.destroyed === true && !this.res.writableFinished;
  }

  onClose(cb: () => void): () => void {
    const res = this.res;
    const f = (): void => {
      if (!res.writableFinished) cb();
    };
    const socket = this.socket;
    if (typeof socket?.once !== 'function') {
      res.once('close', f);
      return () => res.removeListener('close', f);
    }
    let callbacks = socket[CLOSE_CALLBACKS];
    if (callbacks === undefined) {
      const all = new Set<() => void>();
      socket.once('close', () => {
        for (const g of all) g();
        all.clear();
      });
      socket[CLOSE_CALLBACKS] = all;
      callbacks = all;
    }
    callbacks.add(f);
    return () => callbacks.delete(f);
  }
}

/**
 * `r` (a protocol codec's request) with what the HTTP request adds: the client's link, the time already
 * spent, and the deadline, the sooner of `x-request-timeout` and the codec's own (V2's
 * `parameters.timeout`). Set on `r` itself: a spread of two objects per request cost two allocations.
 * Throws InputError for a bad header.
 */
export function withContext<R extends PredictRequest>(r: R, req: FastifyRequest, reply: FastifyReply): R {
  r.client = new HttpClientLink(reply.raw, req.raw.socket as LinkSocket | null);
  r.elapsedMs = reply.elapsedTime;
  const header = req.headers['x-request-timeout'];
  if (header === undefined) return r;
  const ms = typeof header === 'string' && TIMEOUT_RE.test(header) ? Number(header) : Number.NaN;
  if (!(ms >= 1))
    throw new InputError(
      `x-request-timeout: expected a whole number of milliseconds ≥ 1, got ${JSON.stringify(String(header).slice(0, 40))}`,
    );
  r.timeoutMs = minTimeout(r.timeoutMs, ms);
  return r;
}

/** The smaller of two optional timeouts. */
export function minTimeout(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}
