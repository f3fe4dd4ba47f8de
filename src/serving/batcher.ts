/**
 * Dynamic batching of predict requests (like Triton's max_queue_delay_microseconds): concurrent
 * requests for one model are concatenated into one eval run, and the output is split back per request.
 * A batch is flushed when it holds maxRows rows or when maxWaitUs has passed since its first request
 * (below 1 ms the wait is "until the end of this event-loop turn": requests that arrived together).
 * If a coalesced run fails, each request is retried alone, so one bad request never fails its neighbours.
 */
import type { McJob, McResult } from '../model/model.js';

export interface BatchRunner {
  (x: Float32Array, rows: number): Promise<Float32Array>;
}

interface Pending {
  x: Float32Array;
  rows: number;
  resolve: (out: Float32Array) => void;
  reject: (err: unknown) => void;
  /** Called when the request's run starts (the end of its wait, for the statistics). */
  onStart?: () => void;
}

export class PredictBatcher {
  private queue: Pending[] = [];
  private queuedRows = 0;
  private timer: { cancel: () => void } | null = null;

  constructor(
    private readonly run: BatchRunner,
    /** Values per input row and per output row. */
    private readonly inputWidth: number,
    private readonly outputWidth: number,
    private readonly maxRows: number,
    private readonly maxWaitUs: number,
    private readonly onBatch?: (rows: number) => void,
  ) {}

  /** `onStart` is called when the run that serves this request starts. */
  predict(x: Float32Array, rows: number, onStart?: () => void): Promise<Float32Array> {
    if (rows >= this.maxRows) {
      onStart?.();
      return this.run(x, rows);
    }
    return new Promise((resolve, reject) => {
      if (this.queuedRows + rows > this.maxRows) this.flush();
      this.queue.push({ x, rows, resolve, reject, onStart });
      this.queuedRows += rows;
      if (this.queuedRows >= this.maxRows) this.flush();
      else if (!this.timer) {
        if (this.maxWaitUs < 1000) {
          const h = setImmediate(() => this.flush());
          this.timer = { cancel: () => clearImmediate(h) };
        } else {
          const h = setTimeout(() => this.flush(), Math.round(this.maxWaitUs / 1000));
          this.timer = { cancel: () => clearTimeout(h) };
        }
      }
    });
  }

  private flush(): void {
    this.timer?.cancel();
    this.timer = null;
    const batch = this.queue;
    const rows = this.queuedRows;
    this.queue = [];
    this.queuedRows = 0;
    if (batch.length === 0) return;
    void this.execute(batch, rows);
  }

  private async execute(batch: Pending[], rows: number): Promise<void> {
    this.onBatch?.(rows);
    for (const p of batch) p.onStart?.();
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

interface PendingMc {
  job: McJob;
  resolve: (r: McResult) => void;
  reject: (err: unknown) => void;
  onStart?: () => void;
}

/**
 * Coalescing of concurrent Monte Carlo requests for one model: requests with the same sample count
 * share one run (Model.sampleBatch) of at most maxRunRows tiled rows. Each request keeps its own
 * seed and gets the answer it would get alone; what is shared is onnxruntime's per-run cost, which
 * dominates small MC requests. Batches start at the end of the event-loop turn in which their first
 * request arrived, as long as fewer than maxInFlight runs are going (a worker pool's size); beyond
 * that, requests keep joining the waiting batches, which start as runs finish (continuous batching).
 * If a shared run fails, each request is retried alone, so one bad request never fails its neighbours.
 */
export class McBatcher {
  /** Batches still accepting requests, by sample count. */
  private readonly open = new Map<number, { jobs: PendingMc[]; tiledRows: number }>();
  /** Full batches waiting for a free run slot, oldest first. */
  private readonly full: PendingMc[][] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly run: (jobs: McJob[]) => Promise<McResult[]>,
    private readonly maxRunRows: number,
    private readonly maxInFlight = Infinity,
    private readonly onBatch?: (requests: number) => void,
  ) {}

  /** `onStart` is called when the run that serves this request starts. */
  mc(job: McJob, onStart?: () => void): Promise<McResult> {
    return new Promise((resolve, reject) => {
      const T = job.opts.samples;
      let q = this.open.get(T);
      if (q && q.tiledRows + job.rows * T > this.maxRunRows) {
        this.open.delete(T);
        this.full.push(q.jobs);
        q = undefined;
      }
      if (!q) {
        q = { jobs: [], tiledRows: 0 };
        this.open.set(T, q);
      }
      q.jobs.push({ job, resolve, reject, onStart });
      q.tiledRows += job.rows * T;
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.dispatch();
        });
      }
    });
  }

  /** Start waiting batches while run slots are free: full ones first, then the open ones. */
  private dispatch(): void {
    while (this.inFlight < this.maxInFlight) {
      let batch = this.full.shift();
      if (!batch) {
        const next = this.open.entries().next();
        if (next.done) return;
        this.open.delete(next.value[0]);
        batch = next.value[1].jobs;
      }
      this.inFlight++;
      void this.execute(batch).finally(() => {
        this.inFlight--;
        this.dispatch();
      });
    }
  }

  private async execute(batch: PendingMc[]): Promise<void> {
    this.onBatch?.(batch.length);
    for (const p of batch) p.onStart?.();
    let results: McResult[];
    try {
      results = await this.run(batch.map((p) => p.job));
    } catch (err) {
      if (batch.length === 1) return batch[0]!.reject(err);
      await Promise.all(batch.map((p) => this.run([p.job]).then((r) => p.resolve(r[0]!), p.reject)));
      return;
    }
    batch.forEach((p, i) => p.resolve(results[i]!));
  }
}
