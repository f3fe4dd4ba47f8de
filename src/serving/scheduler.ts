/**
 * Admission control for Monte Carlo work (like Triton's dynamic batcher with max_queue_size and a
 * queue timeout, or TorchServe's job_queue_size): a bounded first-come-first-served queue in front of
 * the runners, one task per runner at a time. A runner is a worker thread (or the main thread when
 * there is no pool). Beyond `capacity` waiting requests, a request is refused at once (503 with
 * Retry-After) instead of joining a queue whose wait grows without bound; a request still waiting at
 * its deadline is dropped (504), and one whose client left is dropped as soon as the connection
 * closes; a running request is told to stop (its runner checks between chunks).
 *
 * Coalescing happens at dispatch: when a runner is free, the oldest waiting request is taken together
 * with the waiting requests that may share its run (same model object and sample count, all marked
 * `coalesce`), up to `batchRows(model)` tiled rows. So under load the batches fill from the queue
 * (continuous batching), each member was admitted on its own, members that left are never run, and
 * a batch is one task. Requests that arrive in one event-loop turn are dispatched together at the end
 * of that turn, so that concurrent requests share a run even when the runners are idle.
 */
import { CancelledError } from '../model/errors.js';
import type { InputTensor, McJob, McResult, Model, RunSignal } from '../model/model.js';
import { type Deadlined, Deadlines } from './deadlines.js';
import { DeadlineExceededError, OverloadedError } from './errors.js';
import type { RequestTiming } from './inference-statistics.js';

/** The client's connection, as the data plane sees it (the server's routes make one per request). */
export interface ClientLink {
  /** true once the connection closed before the answer was sent. */
  readonly closed: boolean;
  /** Call `cb` when the connection closes before the answer; returns a function that removes it. */
  onClose(cb: () => void): () => void;
}

export type Lane = 'mc' | 'predict';
export type Stage = 'queued' | 'running';

/** What the lanes report (metrics); every method is optional. */
export interface LaneObserver {
  /** Refused at admission: the queue was full. */
  rejected?(lane: Lane): void;
  /** The deadline passed while the request was queued or running. */
  timedOut?(lane: Lane, stage: Stage): void;
  /** The client left while the request was queued or running. */
  cancelled?(lane: Lane, stage: Stage): void;
}

export interface McWork {
  model: Model;
  job: McJob;
  /** A tensor model's request: its input tensors (`job.x` is then empty; never coalesced). */
  tensors?: readonly InputTensor[];
  /** May share a run with other requests of the same model object and sample count. */
  coalesce: boolean;
  /** performance.now() at which the request is dropped or stopped. */
  deadline: number;
  /** The request's timeout, for the message. */
  timeoutMs: number;
  client?: ClientLink;
  /** The request's moments for the statistics (inference-statistics.ts): the runner sets `started` (and `solo`). */
  timing?: RequestTiming;
}

/**
 * One admitted request. A runner resolves or fails it; an abort (deadline, client gone) settles it
 * first, after which the runner's outcome is ignored. It is the RunSignal of its own run: `aborted`
 * once settled by an abort.
 */
export class McEntry implements RunSignal, Deadlined {
  state: 'queued' | 'running' | 'done' = 'queued';
  /** Set by a runner whose work can be stopped (a worker task): called on an abort while running. */
  stop: (() => void) | null = null;
  private abortReason: Error | null = null;
  /** Its place among the lane's deadlines (deadlines.ts; −1: not there). */
  heapIndex = -1;
  unlisten: (() => void) | null = null;

  constructor(
    readonly work: McWork,
    private readonly done: (r: McResult) => void,
    private readonly failed: (err: unknown) => void,
    /** Called once when it is settled (the lane forgets its deadline). */
    private readonly settled: (e: McEntry) => void = () => {},
  ) {}

  get deadline(): number {
    return this.work.deadline;
  }

  get aborted(): boolean {
    return this.abortReason !== null;
  }

  get model(): Model {
    return this.work.model;
  }

  get job(): McJob {
    return this.work.job;
  }

  resolve(r: McResult): void {
    if (this.finish()) this.done(r);
  }

  fail(err: unknown): void {
    if (this.finish()) this.failed(err);
  }

  /** Settle with `reason` and mark the entry aborted (its run, if any, should stop). */
  abort(reason: Error): boolean {
    if (this.state === 'done') return false;
    this.abortReason = reason;
    this.stop?.();
    this.fail(reason);
    return true;
  }

  private finish(): boolean {
    if (this.state === 'done') return false;
    this.state = 'done';
    this.settled(this);
    this.unlisten?.();
    this.unlisten = null;
    return true;
  }
}

/**
 * An OverloadedError without a stack trace: a refusal is the answer the server gives most often under
 * a retry storm, its stack is never shown or logged, and capturing one is most of an error's cost.
 */
export function refusalError(message: string, retryAfterSeconds: number): OverloadedError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new OverloadedError(message, retryAfterSeconds);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Runs one task: a single entry, or a batch of entries that share model and sample count. */
export type McRunner = (batch: McEntry[]) => Promise<void>;

export class McScheduler {
  /** Admitted entries in arrival order; entries no longer queued are skipped and compacted away. */
  private queue: McEntry[] = [];
  private head = 0;
  private waiting = 0;
  private busy = 0;
  private scheduled = false;
  /**
   * The lane's time per finished request (ms) while every runner was busy: the interval between
   * completions divided by the requests completed (an exponential average). With the queue's length
   * it estimates the wait of a new request (MAX_QUEUE_WAIT_MS) and Retry-After. 0 until measured.
   */
  private msPerRequest = 0;
  private lastDone = 0;
  /** Every runner got a new task at the last completion: the lane has been saturated since. */
  private saturated = false;
  /**
   * The last refusal: the next one with the same message and Retry-After is the same error (under a
   * retry storm the lane refuses hundreds of requests a second with one answer; nothing writes to it).
   */
  private lastRefusal: OverloadedError | null = null;
  /** The deadlines of the entries admitted and not settled, under one timer. */
  private readonly deadlines = new Deadlines<McEntry>((e) =>
    this.abort(e, new DeadlineExceededError(e.work.timeoutMs, e.state === 'running' ? 'running' : 'queued')),
  );
  private readonly forget = (e: McEntry): void => this.deadlines.remove(e);

  constructor(
    /**
     * Requests that may wait (MAX_QUEUE) and the longest estimated wait (MAX_QUEUE_WAIT_MS, 0 = no
     * bound); beyond either, 503.
     */
    private readonly capacity: number | { requests: number; waitMs: number },
    /** Tasks that may be handed out at once: two per worker thread (one runs, one waits there), or 1 on the main thread. */
    private readonly slots: () => number,
    /** Largest tiled rows (rows × samples) of a coalesced batch of a model. */
    private readonly batchRows: (model: Model) => number,
    private readonly runner: McRunner,
    private readonly observer: LaneObserver = {},
    /** The clock of the wait estimate (tests give their own). */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Requests waiting for a runner. */
  get depth(): number {
    return this.waiting;
  }

  /** Tasks running now. */
  get running(): number {
    return this.busy;
  }

  /** Seconds after which a refused request may find room: the queue's estimated drain time, 1..60. */
  retryAfterSeconds(): number {
    return Math.min(60, Math.max(1, Math.ceil(this.estimatedWaitMs() / 1000)));
  }

  /** How long a request admitted now would wait for a runner (ms; 0 until the lane has been saturated). */
  estimatedWaitMs(): number {
    return this.waiting * this.msPerRequest;
  }

  private get maxRequests(): number {
    return typeof this.capacity === 'number' ? this.capacity : this.capacity.requests;
  }

  private get maxWaitMs(): number {
    return typeof this.capacity === 'number' ? 0 : this.capacity.waitMs;
  }

  /**
   * The OverloadedError a request would get now (counted as a rejection), or null when there is room.
   * The server asks before it reads a body it knows is Monte Carlo, so a refusal costs no parsing.
   */
  refusal(): OverloadedError | null {
    const max = this.maxRequests;
    const maxWait = this.maxWaitMs;
    const wait = this.estimatedWaitMs();
    if (this.waiting < max && !(maxWait > 0 && wait > maxWait)) return null;
    this.observer.rejected?.('mc');
    const why =
      this.waiting >= max
        ? `(MAX_QUEUE=${max})`
        : `(about ${Math.round(wait)} ms of work ahead, MAX_QUEUE_WAIT_MS=${maxWait})`;
    const message = `server busy: ${this.waiting} Monte Carlo requests are waiting ${why}; retry later`;
    const retryAfter = this.retryAfterSeconds();
    const last = this.lastRefusal;
    if (last?.message === message && last.retryAfterSeconds === retryAfter) return last;
    this.lastRefusal = refusalError(message, retryAfter);
    return this.lastRefusal;
  }

  /**
   * Admit a request (OverloadedError when `capacity` requests already wait) and resolve with its
   * result; rejects with DeadlineExceededError or CancelledError when it is dropped or stopped.
   */
  submit(work: McWork): Promise<McResult> {
    const full = this.refusal();
    if (full) return Promise.reject(full);
    return new Promise<McResult>((resolve, reject) => {
      const e = new McEntry(work, resolve, reject, this.forget);
      if (work.deadline <= performance.now()) return e.abort(new DeadlineExceededError(work.timeoutMs, 'queued'));
      if (work.client?.closed) return e.abort(new CancelledError());
      this.deadlines.add(e);
      if (work.client) e.unlisten = work.client.onClose(() => this.abort(e, new CancelledError()));
      this.queue.push(e);
      this.waiting++;
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.dispatch();
        });
      }
    });
  }

  private abort(e: McEntry, reason: Error): void {
    const stage = e.state;
    if (stage === 'done' || !e.abort(reason)) return;
    if (stage === 'queued') {
      this.waiting--;
      if (this.queue.length - this.head > 2 * this.waiting + 64) this.compact();
    }
    if (reason instanceof DeadlineExceededError) this.observer.timedOut?.('mc', stage);
    else this.observer.cancelled?.('mc', stage);
  }

  private compact(): void {
    this.queue = this.queue.slice(this.head).filter((e) => e.state === 'queued');
    this.head = 0;
  }

  /** Start tasks while runners are free: the oldest waiting request, with those that may share its run. */
  private dispatch(): void {
    while (this.busy < this.slots()) {
      while (this.head < this.queue.length && this.queue[this.head]!.state !== 'queued') this.head++;
      if (this.head >= this.queue.length) {
        this.queue = [];
        this.head = 0;
        return;
      }
      const first = this.queue[this.head++]!;
      const batch = [first];
      if (first.work.coalesce) {
        const { model, job } = first.work;
        const T = job.opts.samples;
        const max = this.batchRows(model);
        let rows = job.rows * T;
        for (let i = this.head; i < this.queue.length && rows < max; i++) {
          const e = this.queue[i]!;
          if (
            e.state !== 'queued' ||
            !e.work.coalesce ||
            e.work.model !== model ||
            e.job.opts.samples !== T ||
            rows + e.job.rows * T > max
          )
            continue;
          batch.push(e);
          rows += e.job.rows * T;
        }
      }
      for (const e of batch) e.state = 'running';
      this.waiting -= batch.length;
      // the array would keep every entry taken since it last ran empty, which under steady load it
      // never does: their requests and responses survived into the old generation (issue 20)
      if (this.head > 64 && this.head * 2 > this.queue.length) this.compact();
      this.busy++;
      this.runner(batch)
        .catch((err: unknown) => {
          for (const e of batch) e.fail(err);
        })
        .finally(() => {
          const now = this.now();
          if (this.saturated) {
            const ms = (now - this.lastDone) / batch.length;
            this.msPerRequest = this.msPerRequest === 0 ? ms : 0.9 * this.msPerRequest + 0.1 * ms;
          }
          this.lastDone = now;
          this.busy--;
          this.dispatch();
          this.saturated = this.busy === this.slots();
        });
    }
  }
}
