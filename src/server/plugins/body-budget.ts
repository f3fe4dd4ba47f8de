/**
 * A budget for request bodies being received: each request with a body reserves its declared length
 * (content-length, at most BODY_LIMIT_BYTES; a chunked body reserves BODY_LIMIT_BYTES) until the body
 * has been read or the connection is gone; a request that would take the total past
 * MAX_BODY_BYTES_IN_FLIGHT is answered 503 with Retry-After before its body is read, and its connection
 * closed. Why: slow or stalled uploads hold their bytes until REQUEST_TIMEOUT_MS; 400 uploads stalled one
 * byte short of 1 MB held 400 MB, and although the Buffers are freed once their connections close
 * (plugins/idle-gc.ts), glibc keeps the freed memory in the process (RSS stays at the high-water mark;
 * the allocator setting that returns it, MALLOC_MMAP_THRESHOLD_=8192, cost half the throughput). The
 * budget bounds that high-water mark.
 */
import type { IncomingMessage } from 'node:http';
import { refusalError } from '../../serving/scheduler.js';
import { appPlugin } from './app-plugin.js';

/** The bytes a request reserved, kept on its message. */
const RESERVED = Symbol('bodyBytesReserved');
type Reserving = IncomingMessage & { [RESERVED]?: number };

export const bodyBudget = appPlugin<{ maxBytes: number; bodyLimit: number }>(async (app, { maxBytes, bodyLimit }) => {
  if (maxBytes <= 0) return;
  let inFlight = 0;
  // preParsing: after the onRequest hooks and the routes' own (the Monte Carlo admission), so that a
  // request refused there reserves nothing; before the body is read. Callback-style: an async hook
  // costs a promise per request.
  app.addHook('preParsing', (req, reply, payload, done) => {
    const raw = req.raw;
    const length = raw.headers['content-length'];
    if (length === undefined && raw.headers['transfer-encoding'] === undefined) return done(null, payload);
    const bytes = Math.min(bodyLimit, length === undefined ? bodyLimit : Number(length) || 0);
    if (bytes === 0) return done(null, payload);
    if (inFlight + bytes > maxBytes) {
      reply.header('connection', 'close');
      return done(
        refusalError(
          `server busy: ${inFlight} bytes of request bodies are being received (MAX_BODY_BYTES_IN_FLIGHT=${maxBytes}); retry later`,
          1,
        ),
      );
    }
    inFlight += bytes;
    // 'close': the body was read (Node emits it once the message is consumed) or the connection is gone.
    // One listener for every request, the bytes on the message: no closure per request.
    (raw as Reserving)[RESERVED] = bytes;
    raw.on('close', release);
    done(null, payload);
  });
  function release(this: Reserving): void {
    inFlight -= this[RESERVED] ?? 0;
  }
});
