/**
 * An open-loop HTTP load generator (child process of bench/run.ts, section overload): sends POST
 * requests at a fixed rate whatever the answers take, as independent clients would (a closed loop of
 * N connections hides overload: it slows down with the server). Each request goes out on an idle
 * keep-alive connection or a new one. Raw sockets and prebuilt request bytes, because the generator
 * shares the machine's two cores with the server: node:http cost about three times the CPU per request.
 * Prints one JSON line: counts by status, latencies (ms, from the moment a request was written) of the
 * 200s, how many 503s had a Retry-After, socket errors, and the generator's own CPU (ms).
 *
 * argv[2]: JSON {url, body, rate (req/s), seconds}
 */
import { type Socket, connect } from 'node:net';

const { url, body, rate, seconds } = JSON.parse(process.argv[2]!) as {
  url: string;
  body: unknown;
  rate: number;
  seconds: number;
};
const target = new URL(url);
const payload = Buffer.from(JSON.stringify(body));
const requestBytes = Buffer.concat([
  Buffer.from(
    `POST ${target.pathname} HTTP/1.1\r\nhost: ${target.host}\r\ncontent-type: application/json\r\ncontent-length: ${payload.length}\r\n\r\n`,
  ),
  payload,
]);

const statuses: Record<string, number> = {};
const okMs: number[] = [];
let retryAfter503 = 0;
let errors = 0;
let inFlight = 0;
let maxInFlight = 0;
let sent = 0;

interface Conn {
  socket: Socket;
  started: number;
  buf: Buffer;
  /** Bytes of the response still expected once the head is read; -1 before. */
  need: number;
  status: number;
  retryAfter: boolean;
}

const idle: Conn[] = [];

function finish(c: Conn): void {
  inFlight--;
  const s = String(c.status);
  statuses[s] = (statuses[s] ?? 0) + 1;
  if (c.status === 200) okMs.push(performance.now() - c.started);
  if (c.status === 503 && c.retryAfter) retryAfter503++;
}

function onData(c: Conn, chunk: Buffer): void {
  c.buf = c.buf.length ? Buffer.concat([c.buf, chunk]) : chunk;
  for (;;) {
    if (c.need < 0) {
      const end = c.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = c.buf.subarray(0, end).toString('latin1');
      c.status = Number(head.slice(9, 12));
      c.retryAfter = /\r\nretry-after:/i.test(head);
      const length = /\r\ncontent-length: *(\d+)/i.exec(head);
      c.need = length ? Number(length[1]) : 0;
      c.buf = c.buf.subarray(end + 4);
    }
    if (c.buf.length < c.need) return;
    c.buf = c.buf.subarray(c.need);
    c.need = -1;
    finish(c);
    idle.push(c);
    if (c.buf.length === 0) return;
  }
}

function open(): Conn {
  const c: Conn = {
    socket: connect(Number(target.port), target.hostname),
    started: 0,
    buf: Buffer.alloc(0),
    need: -1,
    status: 0,
    retryAfter: false,
  };
  c.socket.setNoDelay(true);
  c.socket.on('data', (d: Buffer) => onData(c, d));
  c.socket.on('error', () => undefined);
  c.socket.on('close', () => {
    const i = idle.indexOf(c);
    if (i >= 0) idle.splice(i, 1);
    else if (c.started > 0 && c.need !== -2) {
      // closed with a request in flight (a 503 with connection: close is answered before the close)
      errors++;
      inFlight--;
    }
    c.need = -2;
  });
  return c;
}

function send(): void {
  const c = idle.pop() ?? open();
  c.started = performance.now();
  c.need = -1;
  c.buf = Buffer.alloc(0);
  sent++;
  inFlight++;
  maxInFlight = Math.max(maxInFlight, inFlight);
  c.socket.write(requestBytes);
}

const started = performance.now();
const total = Math.round(rate * seconds);
// every millisecond, send what is due: request i is due at i / rate seconds
await new Promise<void>((resolve) => {
  const timer = setInterval(() => {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
    while (sent < due) send();
    if (sent >= total) {
      clearInterval(timer);
      resolve();
    }
  }, 1);
});
const sendSeconds = (performance.now() - started) / 1000;
// wait for the answers (at most 60 s)
const end = performance.now() + 60_000;
while (inFlight > 0 && performance.now() < end) await new Promise((r) => setTimeout(r, 20));
const cpu = process.cpuUsage();
okMs.sort((a, b) => a - b);
const q = (p: number): number =>
  okMs.length ? okMs[Math.min(okMs.length - 1, Math.floor(okMs.length * p))]! : Number.NaN;
process.stdout.write(
  `${JSON.stringify({ sent, sendSeconds, statuses, ok: okMs.length, p50: q(0.5), p99: q(0.99), max: okMs[okMs.length - 1] ?? Number.NaN, retryAfter503, errors, unanswered: inFlight, maxInFlight, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`,
);
for (const c of idle) c.socket.destroy();
