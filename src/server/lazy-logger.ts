/**
 * Request loggers made when first used. Fastify gives every request a child logger with its id
 * (`req.log`); pino's child() builds an object and serialises the bindings to JSON, ≈1 µs of a predict
 * request's ≈45 µs of server CPU (its share of a CPU profile of the server under wrk, c=32), and a request
 * that logs nothing at an enabled level (every successful one above LOG_LEVEL=info) never uses it.
 * `lazyChildLogger` (Fastify's childLoggerFactory) answers a stand-in that makes the child on the first
 * call at an enabled level, so the line is written as before, with the request id.
 */
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify';

type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
type Bindings = Record<string, unknown>;
type LogCall = (...args: unknown[]) => void;

/** Whether `logger` writes at `level` (a logger that cannot say, other than pino, is asked to write). */
function enabled(logger: FastifyBaseLogger, level: LogLevel): boolean {
  const ask = (logger as { isLevelEnabled?: (l: string) => boolean }).isLevelEnabled;
  return typeof ask !== 'function' || ask.call(logger, level);
}

class LazyChildLogger {
  private made: FastifyBaseLogger | null = null;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
  ) {}

  /** The real child, made now if it was not yet. */
  private child0(): FastifyBaseLogger {
    if (this.made === null) this.made = this.parent.child(this.bindings);
    return this.made;
  }

  private write(level: LogLevel, args: unknown[]): void {
    if (this.made === null && !enabled(this.parent, level)) return;
    const child = this.child0();
    (child[level] as LogCall).apply(child, args);
  }

  get level(): string {
    return (this.made ?? this.parent).level;
  }

  set level(level: string) {
    this.child0().level = level;
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  silent(): void {}

  child(bindings: Bindings, options?: object): FastifyBaseLogger {
    return this.child0().child(bindings, options);
  }
}

const hasKeys = (o: object): boolean => {
  for (const _ in o) return true;
  return false;
};

/**
 * Fastify's childLoggerFactory: the stand-in, or pino's child at once when the route passes options
 * (a route's logLevel or log serializers).
 */
export const lazyChildLogger: NonNullable<FastifyServerOptions['childLoggerFactory']> = (logger, bindings, options) =>
  hasKeys(options)
    ? logger.child(bindings, options)
    : (new LazyChildLogger(logger, bindings) as unknown as FastifyBaseLogger);
