/**
 * Pacing of refusals on a connection that retries at once. A closed-loop client (wrk, many client
 * pools) resends as soon as it is answered: 256 such connections sending heavy Monte Carlo got about
 * 5,400 answers of 503 per second, and the main thread answering them took the CPU the work needed
 * (goodput 2–21 requests/s against a capacity of 34; issue 20). A refusal that arrives at once only
 * invites the next one. So every refusal is answered at once, but after one that follows on the same
 * connection before its Retry-After the server stops reading that connection for a while (50 ms,
 * doubling, at most 1 s): the retry waits in the kernel's socket buffer, and the server spends
 * nothing and holds nothing for it meanwhile (a paused socket and a timer). A client that waits its
 * Retry-After is never paused. The state lives on the socket (once per connection), so nothing is
 * kept for a connection that closed.
 *
 * The paused connections share one timer: every FIRST_HOLD_MS while any is paused, it resumes those
 * whose pause is over (a pause lasts its hold, up to FIRST_HOLD_MS more). Their retries then arrive
 * together and are read in one turn of the event loop, as an unpaced closed loop's are; a timer per
 * refusal woke the loop for each one alone (main-thread CPU per 503 in bench/storm.ts: 247 µs against
 * 59 for an echo of the same body).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** The first pause of a connection that retried before its Retry-After (ms); it doubles from there. */
export const FIRST_HOLD_MS = 50;
/** The longest pause (ms): never more than the smallest Retry-After (1 s). */
export const MAX_HOLD_MS = 1000;

interface Streak {
  /** Refusals in a row on this connection, each sent before the previous one's Retry-After. */
  count: number;
  /** When the connection was last free to send again (the refusal answered, or its pause over; ms) and the Retry-After (ms). */
  answeredAt: number;
  retryAfterMs: number;
}

const STREAK = Symbol('refusalStreak');
type Paced = { [STREAK]?: Streak };

/**
 * How long to stop reading `connection` after this refusal (ms, 0: not at all), counting it.
 * `retryAfterSeconds` is the Retry-After the answer carries; `now` the clock (performance.now()). Call
 * `refusalAnswered` when the connection may send again (the refusal sent, or the pause over).
 */
export function refusalHoldMs(connection: object, retryAfterSeconds: number, now: number): number {
  const c = connection as Paced;
  const s = c[STREAK];
  if (s === undefined) {
    c[STREAK] = { count: 0, answeredAt: Number.NaN, retryAfterMs: retryAfterSeconds * 1000 };
    return 0;
  }
  // a polite client waited (most of) its Retry-After: its next refusal is answered at once
  if (!(now - s.answeredAt < 0.9 * s.retryAfterMs)) {
    s.count = 0;
  } else s.count++;
  s.retryAfterMs = retryAfterSeconds * 1000;
  return s.count === 0 ? 0 : Math.min(MAX_HOLD_MS, FIRST_HOLD_MS * 2 ** (s.count - 1));
}

/** `connection` may send again from `now` on (its refusal was sent, or its pause is over). */
export function refusalAnswered(connection: object, now: number): void {
  const s = (connection as Paced)[STREAK];
  if (s) s.answeredAt = now;
}

/** The connections not read now, and when each may be read again (performance.now(), ms). */
const held: { socket: Socket; until: number }[] = [];
let ticker: ReturnType<typeof setInterval> | null = null;

/** Resume the connections whose pause is over; the timer stops when none is left. */
function resumeDue(): void {
  const now = performance.now();
  let kept = 0;
  for (const h of held) {
    // a timer may fire a little before its time on performance.now()'s clock
    if (h.until - now < 1) {
      refusalAnswered(h.socket, now);
      h.socket.resume();
    } else held[kept++] = h;
  }
  held.length = kept;
  if (kept === 0 && ticker) {
    clearInterval(ticker);
    ticker = null;
  }
}

/** Stop reading `socket` for `ms` (at most FIRST_HOLD_MS more), on the shared timer. */
function hold(socket: Socket, ms: number): void {
  socket.pause();
  held.push({ socket, until: performance.now() + ms });
  if (!ticker) {
    ticker = setInterval(resumeDue, FIRST_HOLD_MS);
    ticker.unref(); // a paused connection never keeps the process alive
  }
}

/**
 * A refusal of `req` is being answered on `res` with Retry-After `retryAfterSeconds`: when its
 * connection retried before the previous one's Retry-After, stop reading it for its hold once Node is
 * done with the refused request (it reads an unread body to its end after the answer, resuming the
 * socket, so the pause starts at that end); else it may send again from now.
 */
export function paceRefusal(req: IncomingMessage, res: ServerResponse, retryAfterSeconds: number): void {
  const socket = req.socket;
  if (!socket) return;
  const pauseMs = refusalHoldMs(socket, retryAfterSeconds, performance.now());
  if (pauseMs === 0) {
    refusalAnswered(socket, performance.now());
    return;
  }
  const pause = (): void => hold(socket, pauseMs);
  if (req.readableEnded) res.once('finish', pause);
  else req.once('end', pause);
}

/** Connections paused now (tests). */
export function heldConnections(): number {
  return held.length;
}
