/**
 * Dynamic batching of predict requests (like Triton's max_queue_delay_microseconds): concurrent
 * requests for one model are concatenated into one eval run, and the output is split back per request.
 * A batch is flushed when it holds maxRows rows or when maxWaitUs has passed since its first request
 * (below 1 ms the wait is "until the end of this event-loop turn": requests that arrived together).
 * If a coalesced run fails, each request is retried alone, so one bad request never fails its neighbours.
 * A request may carry a check, called when its run starts: an error from it (the client left, the
 * deadline passed) fails that request, which is left out of the run.
 * (Monte Carlo requests are coalesced by the queue that admits them: scheduler.ts.)
 */

export type BatchRunner = (x: Float32Array, rows: number) => Promise<Float32Array>;

/** The time a request's run started is written here (the end of its wait, for the statistics). */
export interface RunStart {
  started?: number;
}

/** Asked with the time when a request's run starts: an error leaves the request out and fails it. */
export type RunCheck = (now: number) => Error | null;

interface Pending {
  x: Float32Array;
  rows: number;
  check: RunCheck | undefined;
  resolve: (out: Float32Array) => void;
  reject: (err: unknown) => void;
  start: RunStart | undefined;
}

const hasCheck = (p: Pending): boolean => p.check !== undefined;

export class PredictBatcher {
  private queue: Pending[] = [];
  private queuedRows = 0;
  /** The pending flush: an immediate below 1 ms of wait, else a timeout (made once per batch, no wrapper). */
  private timer: NodeJS.Immediate | NodeJS.Timeout | null = null;
  private readonly flushNow = (): void => this.flush();

  constructor(
    private readonly run: BatchRunner,
    /** Values per input row and per output row. */
    private readonly inputWidth: number,
    private readonly outputWidth: number,
    private readonly maxRows: number,
    private readonly maxWaitUs: number,
    private readonly onBatch?: (rows: number) => void,
  ) {}

  /**
   * `check` is asked when the request's batch runs (an error leaves it out and fails it: its deadline
   * passed, its client left); `start.started` is set when the run that serves this request starts. One
   * clock read per batch serves both, for every request of the batch.
   */
  predict(x: Float32Array, rows: number, check?: RunCheck, start?: RunStart): Promise<Float32Array> {
    if (rows >= this.maxRows) {
      const now = check || start ? performance.now() : 0;
      const err = check?.(now);
      if (err) return Promise.reject(err);
      if (start) start.started = now;
      return this.run(x, rows);
    }
    return new Promise((resolve, reject) => {
      if (this.queuedRows + rows > this.maxRows) this.flush();
      this.queue.push({ x, rows, check, resolve, reject, start });
      this.queuedRows += rows;
      if (this.queuedRows >= this.maxRows) this.flush();
      else if (!this.timer) {
        this.timer =
          this.maxWaitUs < 1000
            ? setImmediate(this.flushNow)
            : setTimeout(this.flushNow, Math.round(this.maxWaitUs / 1000));
      }
    });
  }

  private flush(): void {
    if (this.timer) {
      if (this.maxWaitUs < 1000) clearImmediate(this.timer as NodeJS.Immediate);
      else clearTimeout(this.timer as NodeJS.Timeout);
      this.timer = null;
    }
    const batch = this.queue;
    const rows = this.queuedRows;
    this.queue = [];
    this.queuedRows = 0;
    if (batch.length === 0) return;
    void this.execute(batch, rows);
  }

  private async execute(all: Pending[], allRows: number): Promise<void> {
    let batch = all;
    let rows = allRows;
    const now = performance.now();
    if (all.some(hasCheck)) {
      batch = [];
      rows = 0;
      for (const p of all) {
        const err = p.check?.(now);
        if (err) p.reject(err);
        else {
          batch.push(p);
          rows += p.rows;
        }
      }
      if (batch.length === 0) return;
    }
    this.onBatch?.(rows);
    for (const p of batch) if (p.start) p.start.started = now;
    if (batch.length === 1) {
      const p = batch[0]!;
      return this.run(p.x, p.rows).then(p.resolve, p.reject);
    }
    const x = new Float32Array(rows * this.inputWidth);
    let off = 0;
    for (const p of batch) {
      x.set(p.x.subarray(0, p.rows * this.inputWidth), off * this.inputWidth);
      off += p.rows;
    }
    let out: Float32Array;
    try {
      out = await this.run(x, rows);
    } catch {
      for (const p of batch) this.run(p.x, p.rows).then(p.resolve, p.reject);
      return;
    }
    off = 0;
    for (const p of batch) {
      p.resolve(out.slice(off * this.outputWidth, (off + p.rows) * this.outputWidth));
      off += p.rows;
    }
  }
}
