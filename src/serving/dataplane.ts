/**
 * The data plane (like kserve's DataPlane, python/kserve/kserve/protocol/dataplane.py): protocol-neutral
 * inference. Every protocol's route comes here through its codec (src/server/protocol): look the model
 * up in the repository (holding it for the request), apply the limits, run predict or Monte Carlo, and
 * record metrics through an observer. The one place where MAX_BATCH_ROWS, MC_MAX_SAMPLES and
 * MC_MAX_WORK are checked.
 *
 * How it runs a request:
 * - predict: concurrent requests for a model are coalesced into one run (PredictBatcher, dynamic
 *   batching) unless BATCH_MAX_ROWS = 0;
 * - Monte Carlo: work of at least MC_WORKER_MIN_WORK rows × samples runs on a worker thread (pool.ts);
 *   smaller requests that fit one run are coalesced with concurrent ones of the same sample count
 *   (McBatcher; a batch of several goes to a worker when there is a pool), the rest run inline.
 * Batchers belong to a model object (a swapped-in model gets its own), and the pool holds a copy of
 * each served model under a key of its own, added before the model is served (prepare) and removed
 * once its last request finished (retire).
 */
import type { Config } from '../config.js';
import { InputError, NoDropoutError } from '../model/errors.js';
import type { McJob, McOptions, McResult, Model, ModelSource } from '../model/model.js';
import type { McStats } from '../model/stats.js';
import { DEFAULT_UNCERTAINTY, type IntervalMethod, resolveInterval } from '../model/uncertainty.js';
import { McBatcher, PredictBatcher } from './batcher.js';
import { TooLargeError } from './errors.js';
import { McPool } from './pool.js';
import { type ModelHooks, type ModelRepository, runtimeOptions } from './repository.js';
import { type InferenceMode, InferenceStatistics, type ModelStatistics, type RequestTiming } from './statistics.js';

export type DataPlaneConfig = Pick<
  Config,
  | 'MAX_BATCH_ROWS'
  | 'MC_DEFAULT_SAMPLES'
  | 'MC_MAX_SAMPLES'
  | 'MC_MAX_WORK'
  | 'MC_WORKERS'
  | 'MC_WORKER_MIN_WORK'
  | 'MC_COALESCE'
  | 'MC_COALESCE_MAX_ROWS'
  | 'BATCH_MAX_ROWS'
  | 'BATCH_MAX_WAIT_US'
  | 'ORT_INTRA_OP_THREADS'
  | 'MC_MAX_RUN_ROWS'
  | 'MC_SHARED_PREFIX'
>;

/** What the data plane reports (metrics); every method is optional. */
export interface DataPlaneObserver {
  /** One request's inference: its duration and rows. */
  inference?(model: string, mode: 'predict' | 'mc', seconds: number, rows: number): void;
  mcSamples?(model: string, samples: number): void;
  /** Rows of one coalesced predict run. */
  predictBatch?(model: string, rows: number): void;
  /** Requests sharing one Monte Carlo run. */
  mcBatch?(model: string, requests: number): void;
}

/**
 * A protocol's rows: `decode` reads them for the model, calling `count(rows, field)` as soon as it
 * knows how many there are (before reading any value), so that limits are checked first. `field` names
 * the request field in messages.
 */
export interface RowsInput {
  decode(model: Model, count: (rows: number, field: string) => void): { x: Float32Array; rows: number };
}

/** How a protocol names the Monte Carlo fields, for the limit messages. */
export interface SampleFields {
  /** The samples field, e.g. `parameters.mc_samples`. */
  samples: string;
  /** Its short name in `rows × <name> = …`. */
  samplesName: string;
  /** Appended to the MC_MAX_WORK message. */
  workAdvice?: string;
}

export interface PredictRequest {
  model: string;
  version?: string;
  input: RowsInput;
}

export interface SampleRequest extends PredictRequest {
  /** Default MC_DEFAULT_SAMPLES. */
  samples?: number;
  /** Default 0.9. */
  interval?: number;
  /** gaussian or conformal; default the model's (its card's interval_method). */
  intervalMethod?: IntervalMethod;
  seed?: number;
  returnSamples?: boolean;
  fields: SampleFields;
}

export interface PredictResult {
  model: Model;
  rows: number;
  /** Raw eval outputs, rows × model.outputSize. */
  output: Float32Array;
}

export interface SampleResult {
  model: Model;
  rows: number;
  samples: number;
  interval: number;
  /** Whether the raw samples were asked for (they are in stats.raw). */
  returnSamples: boolean;
  stats: McStats;
  seed: number;
}

const DEFAULT_INTERVAL = 0.9;

export class DataPlane implements ModelHooks {
  private pool: McPool | null = null;
  /** The pool's key of each model it holds. */
  private readonly poolKeys = new WeakMap<Model, string>();
  private nextKey = 0;
  private readonly predictBatchers = new WeakMap<Model, PredictBatcher>();
  private readonly mcBatchers = new WeakMap<Model, McBatcher>();
  /** Counts and times per model version and mode (Triton's statistics extension; statistics.ts). */
  readonly statistics = new InferenceStatistics();

  constructor(
    readonly repository: ModelRepository,
    private readonly config: DataPlaneConfig,
    private readonly observer: DataPlaneObserver = {},
  ) {
    repository.use(this);
  }

  /** Serving: the models are loaded and the server is not shutting down. */
  get ready(): boolean {
    return this.repository.state === 'ready';
  }

  /** Worker threads for Monte Carlo (0 until a model with dropout is served, or with MC_WORKERS=0). */
  get workerThreads(): number {
    return this.pool?.threads ?? 0;
  }

  /** Model copies on the worker threads (one per served model with dropout, plus retiring ones). */
  get workerModels(): number {
    return this.pool?.modelCount ?? 0;
  }

  /** A model's metadata (no request runs on it): throws ModelNotFoundError. */
  model(name: string, version?: string): Model {
    return this.repository.get(name, version);
  }

  /**
   * The statistics of every served model version, of a model's versions, or of one version (throws
   * ModelNotFoundError for an unknown name or version).
   */
  modelStatistics(name?: string, version?: string): ModelStatistics[] {
    if (name === undefined) return this.repository.names().flatMap((n) => this.modelStatistics(n));
    const versions = version === undefined ? this.repository.versions(name) : [this.repository.get(name, version).version];
    if (versions.length === 0) this.repository.get(name); // throws ModelNotFoundError
    return versions.map((v) => this.statistics.get(name, v));
  }

  async predict(req: PredictRequest): Promise<PredictResult> {
    const lease = this.repository.acquire(req.model, req.version);
    const t: RequestTiming = { received: performance.now(), ended: 0 };
    let rows = 0;
    let ok = false;
    try {
      const m = lease.model;
      const { x, rows: n } = req.input.decode(m, (n, field) => this.checkRows(n, field));
      rows = n;
      const started = performance.now();
      t.decoded = started;
      try {
        const output = await this.runPredict(m, x, rows, t);
        ok = true;
        return { model: m, rows, output };
      } finally {
        this.observer.inference?.(m.name, 'predict', (performance.now() - started) / 1000, rows);
      }
    } finally {
      this.record(lease.model, 'predict', ok, rows, 1, t);
      this.repository.release(lease);
    }
  }

  async sample(req: SampleRequest): Promise<SampleResult> {
    const lease = this.repository.acquire(req.model, req.version);
    const t: RequestTiming = { received: performance.now(), ended: 0 };
    let rows = 0;
    let samples = 0;
    let ok = false;
    try {
      const m = lease.model;
      if (!m.mcAvailable) throw new NoDropoutError(m.name);
      samples = req.samples ?? this.config.MC_DEFAULT_SAMPLES;
      const max = this.config.MC_MAX_SAMPLES;
      if (samples > max) throw new InputError(`${req.fields.samples}: ${samples} exceeds MC_MAX_SAMPLES=${max}`);
      const interval = req.interval ?? DEFAULT_INTERVAL;
      // an interval the model cannot serve (422) is refused before any row is read or run
      if (m.task === 'regression') resolveInterval(m.name, m.uncertainty ?? DEFAULT_UNCERTAINTY, interval, req.intervalMethod);
      const { x, rows: n } = req.input.decode(m, (n, field) => {
        this.checkRows(n, field);
        this.checkWork(n, samples, req.fields);
      });
      rows = n;
      this.observer.mcSamples?.(m.name, samples);
      const started = performance.now();
      t.decoded = started;
      try {
        const { stats, seed } = await this.runMc(m, x, rows, { samples, interval, intervalMethod: req.intervalMethod, seed: req.seed, returnSamples: req.returnSamples }, t);
        ok = true;
        return { model: m, rows, samples, interval, returnSamples: !!req.returnSamples, stats, seed };
      } finally {
        this.observer.inference?.(m.name, 'mc', (performance.now() - started) / 1000, rows);
      }
    } finally {
      this.record(lease.model, 'mc', ok, rows, samples, t);
      this.repository.release(lease);
    }
  }

  /** A request's end, in the statistics. */
  private record(m: Model, mode: InferenceMode, ok: boolean, rows: number, samples: number, t: RequestTiming): void {
    t.ended = performance.now();
    this.statistics.request(m.name, m.version, mode, ok, rows, samples, t);
  }

  /**
   * A run shared by the requests of a batch, timed for the statistics (execution count, batch sizes)
   * when it succeeds. A run for one request alone is counted with the request (RequestTiming.solo).
   */
  private executed<T>(m: Model, mode: InferenceMode, rows: number, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    return run().then((out) => {
      this.statistics.execution(m.name, m.version, mode, rows, performance.now() - started);
      return out;
    });
  }

  /** The request's run starts now and serves it alone. */
  private static runsAlone(t: RequestTiming): void {
    t.started = performance.now();
    t.solo = true;
  }

  private checkRows(rows: number, field: string): void {
    const max = this.config.MAX_BATCH_ROWS;
    if (rows > max) throw new TooLargeError(`${field}: ${rows} rows exceed MAX_BATCH_ROWS=${max}`);
  }

  private checkWork(rows: number, samples: number, fields: SampleFields): void {
    const max = this.config.MC_MAX_WORK;
    if (rows * samples > max) {
      throw new TooLargeError(`rows × ${fields.samplesName} = ${rows} × ${samples} = ${rows * samples} exceeds MC_MAX_WORK=${max}${fields.workAdvice ? `; ${fields.workAdvice}` : ''}`);
    }
  }

  /** `t.started` is set when the request's run starts (after any wait for a batch). */
  private runPredict(m: Model, x: Float32Array, rows: number, t: RequestTiming): Promise<Float32Array> {
    const start = (): void => {
      t.started = performance.now();
    };
    if (this.config.BATCH_MAX_ROWS <= 0) {
      DataPlane.runsAlone(t);
      return m.predict(x, rows);
    }
    let batcher = this.predictBatchers.get(m);
    if (!batcher) {
      const name = m.name;
      batcher = new PredictBatcher((bx, n) => this.executed(m, 'predict', n, () => m.predict(bx, n)), m.features.length, m.outputSize, this.config.BATCH_MAX_ROWS, this.config.BATCH_MAX_WAIT_US, (n) => this.observer.predictBatch?.(name, n));
      this.predictBatchers.set(m, batcher);
    }
    return batcher.predict(x, rows, start);
  }

  /**
   * Large work goes to a worker (a hand-off costs more than it saves below MC_WORKER_MIN_WORK: bench);
   * requests that fit one run are coalesced (McBatcher); the rest runs inline.
   */
  private runMc(m: Model, x: Float32Array, rows: number, opts: McOptions, t: RequestTiming): Promise<McResult> {
    const start = (): void => {
      t.started = performance.now();
    };
    const key = this.poolKeys.get(m);
    const pool = this.pool;
    if (pool && key !== undefined && rows * opts.samples >= this.config.MC_WORKER_MIN_WORK) {
      DataPlane.runsAlone(t);
      return pool.run(key, x, rows, opts);
    }
    if (this.config.MC_COALESCE && m.fitsOneRun(rows, opts.samples)) return this.mcBatcher(m, key).mc({ x, rows, opts }, start);
    DataPlane.runsAlone(t);
    return m.sample(x, rows, opts);
  }

  /**
   * A lone request runs inline (no hand-off: fastest when the server is quiet); a batch of several goes
   * to a worker when there is a pool, so that under load the event loop keeps serving HTTP while a
   * worker runs the batch. Worker batches are capped at MC_COALESCE_MAX_ROWS tiled rows and at most
   * threads + 1 are in flight, so that the next batch forms while one runs (bench: MC throughput with
   * workers vs inline).
   */
  private mcBatcher(m: Model, key: string | undefined): McBatcher {
    let batcher = this.mcBatchers.get(m);
    if (batcher) return batcher;
    const pool = key !== undefined ? this.pool : null;
    const name = m.name;
    const features = m.features.length;
    const run = (jobs: McJob[]): Promise<McResult[]> =>
      this.executed(m, 'mc', jobs.reduce((n, j) => n + j.rows, 0), () => (pool && jobs.length > 1 ? pool.runCoalesced(key!, jobs, features) : m.sampleBatch(jobs)));
    const onBatch = (n: number): void => this.observer.mcBatch?.(name, n);
    batcher = pool ? new McBatcher(run, Math.min(m.maxRunRows, this.config.MC_COALESCE_MAX_ROWS), pool.threads + 1, onBatch) : new McBatcher(run, m.maxRunRows, Infinity, onBatch);
    this.mcBatchers.set(m, batcher);
    return batcher;
  }

  /** Repository hook: a model with dropout is loaded on the worker threads before it is served. */
  async prepare(model: Model, source: ModelSource): Promise<void> {
    if (this.config.MC_WORKERS <= 0 || !model.mcAvailable) return;
    this.pool ??= new McPool([], runtimeOptions(this.config), this.config.MC_WORKERS);
    const key = `${model.name}#${this.nextKey++}`;
    await this.pool.add(source, key);
    this.poolKeys.set(model, key);
  }

  /** Repository hook: a model no request uses any more leaves the worker threads. */
  async retire(model: Model): Promise<void> {
    const key = this.poolKeys.get(model);
    if (key === undefined || !this.pool) return;
    this.poolKeys.delete(model);
    await this.pool.remove(key);
  }

  /** End the worker threads (after the repository closed its models: running tasks finish first). */
  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = null;
  }
}
