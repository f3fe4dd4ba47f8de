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
 *   when they leave the queue (scheduler.ts; a batch of several goes to a worker when there is a
 *   pool), the rest run inline.
 * Batchers belong to a model object (a swapped-in model gets its own), and the pool holds a copy of
 * each served model under a key of its own, added before the model is served (prepare) and removed
 * once its last request finished (retire).
 *
 * Under overload (scheduler.ts): Monte Carlo requests wait in a bounded FIFO queue in front of the
 * runners (two tasks per worker thread, one running and the next waiting there, or one on the main
 * thread without a pool), and predict requests are counted separately, so predict is never queued
 * behind Monte Carlo. Beyond MAX_QUEUE waiting requests (or, for Monte Carlo, about MAX_QUEUE_WAIT_MS
 * of work queued) a lane answers 503 with Retry-After at once. Every request has a deadline
 * (its timeout, at most MAX_REQUEST_MS): at that point queued work is dropped and running Monte Carlo
 * stops between chunks (504); a client that leaves cancels its work the same way.
 * Answers are checked once, here, for every protocol: a statistic or output that is not finite is a
 * 422 naming the rows and statistics; inputs far outside the training range (the card's
 * feature_stats) are listed per row, or refused with OUT_OF_RANGE=reject.
 * Every request that reached a model is counted in `statistics` (inference-statistics.ts: Triton's extension).
 */
import type { Config } from '../config.js';
import { CancelledError, InputError, NoDropoutError } from '../model/errors.js';
import type { InputTensor, McOptions, McResult, Model, ModelSource, TensorMcResult } from '../model/model.js';
import { type McStats, servedStats, statValues } from '../uncertainty/record.js';
import { onRequestKeys, onRequestNames } from '../uncertainty/statistics.js';
import { AUTO_DEFAULT_MAX_SAMPLES } from '../uncertainty/stopping.js';
import { DEFAULT_UNCERTAINTY, type IntervalMethod, resolveInterval } from '../model/uncertainty.js';
import { PredictBatcher, type RunCheck } from './batcher.js';
import { DeadlineExceededError, NonFiniteError, OutOfRangeError, TooLargeError } from './errors.js';
import { McPool } from './pool.js';
import { type ModelHooks, type ModelLease, type ModelRepository, runtimeOptions } from './repository.js';
import { type ClientLink, type LaneObserver, type McEntry, McScheduler, refusalError } from './scheduler.js';
import {
  type InferenceMode,
  InferenceStatistics,
  type ModelStatistics,
  type RequestTiming,
} from './inference-statistics.js';

export type { ClientLink } from './scheduler.js';

export type DataPlaneConfig = Pick<
  Config,
  | 'MAX_BATCH_ROWS'
  | 'MC_DEFAULT_SAMPLES'
  | 'MC_MAX_SAMPLES'
  | 'MC_MAX_WORK'
  | 'MC_MAX_WORK_BYTES'
  | 'MC_MAX_RUN_BYTES'
  | 'MC_WORKERS'
  | 'MC_WORKER_MIN_WORK'
  | 'MC_COALESCE'
  | 'MC_COALESCE_MAX_ROWS'
  | 'BATCH_MAX_ROWS'
  | 'BATCH_MAX_WAIT_US'
  | 'ORT_INTRA_OP_THREADS'
  | 'MC_MAX_RUN_ROWS'
  | 'MC_SHARED_PREFIX'
  | 'MAX_QUEUE'
  | 'MAX_REQUEST_MS'
  | 'OUT_OF_RANGE'
  | 'OUT_OF_RANGE_STDS'
  | 'MC_WORKER_NICE'
  | 'MAX_QUEUE_WAIT_MS'
>;

/** What the data plane reports (metrics); every method is optional. */
export interface DataPlaneObserver extends LaneObserver {
  /** One request's inference: its duration and rows. */
  inference?(model: string, mode: 'predict' | 'mc', seconds: number, rows: number): void;
  /** The samples a Monte Carlo request drew (an "auto" request's samples used), after its run. */
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
  /**
   * A tensor model's inputs (`model.layout === 'tensor'`): one per model input, in the model's order,
   * each checked against its declared datatype and shape, the same batch in all; `count` as for decode.
   */
  tensors?(model: Model, count: (rows: number, field: string) => void): { inputs: InputTensor[]; rows: number };
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
  /** The client's timeout in ms from the request's arrival (capped by MAX_REQUEST_MS, which is also the default). */
  timeoutMs?: number;
  /** Time already spent on the request before it got here (receiving, parsing): deducted from its deadline. */
  elapsedMs?: number;
  /** The client's connection: when it closes, the request's work is dropped or stopped. */
  client?: ClientLink;
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
  /** `samples: "auto"`: stop at this MC error (McOptions.tolerance); `samples` is then the most. Never coalesced. */
  tolerance?: number;
  /**
   * Statistics served on request that the request asks for, by their protocol names (/v1 fields or V2
   * tensors); `field` names where in the request, for the 400 of a name that is none of the model's.
   */
  statistics?: { names: readonly string[]; by: 'v1' | 'v2'; field: string };
  fields: SampleFields;
}

export interface PredictResult {
  model: Model;
  rows: number;
  /** Raw eval outputs, rows × model.outputSize. */
  output: Float32Array;
  /** Per row, the features far outside the training range; null when none is (or the model has no feature_stats). */
  outOfRange: string[][] | null;
  /** A tensor model's output dims, rows first (`output` is that tensor); absent for a tabular model. */
  dims?: number[];
}

export interface SampleResult {
  model: Model;
  rows: number;
  /** The samples asked for (with `tolerance`, the most); stats.samples is how many were used. */
  samples: number;
  /** As SampleRequest.tolerance (absent for a fixed T). */
  tolerance?: number;
  interval: number;
  /** Whether the raw samples were asked for (they are in stats.raw). */
  returnSamples: boolean;
  stats: McStats;
  seed: number;
  /** As PredictResult.outOfRange. */
  outOfRange: string[][] | null;
  /** A tensor model's output dims, rows first: how the record is laid out (model.ts OutputLayout). */
  outputDims?: number[];
}

const DEFAULT_INTERVAL = 0.9;

/**
 * MC tasks handed to a worker at once: one running, one waiting at the worker (mc-worker.ts runs them
 * one after the other), so that the worker does not idle while the main thread answers the last one
 * and dispatches the next.
 */
const WORKER_PIPELINE = 2;

/** Each model's out-of-range bounds: [min − k·std, max + k·std] per feature. */
interface Bounds {
  low: Float64Array;
  high: Float64Array;
}

/**
 * A request's timing, received now, with every field it will get (set later on a literal that lacks
 * them, each field changed the object's shape on the main path of every request).
 */
const timing = (): RequestTiming => ({
  received: performance.now(),
  decoded: undefined,
  started: undefined,
  ended: 0,
  solo: undefined,
});

export class DataPlane implements ModelHooks {
  private pool: McPool | null = null;
  /** The pool's key of each model it holds. */
  private readonly poolKeys = new WeakMap<Model, string>();
  private nextKey = 0;
  private readonly predictBatchers = new WeakMap<Model, PredictBatcher>();
  private readonly bounds = new WeakMap<Model, Bounds | null>();
  private readonly mc: McScheduler;
  /** Predict requests admitted and not answered yet (the predict lane's queue). */
  private predictWaiting = 0;
  /** Counts and times per model version and mode (Triton's statistics extension; inference-statistics.ts). */
  readonly statistics = new InferenceStatistics();

  constructor(
    readonly repository: ModelRepository,
    private readonly config: DataPlaneConfig,
    private readonly observer: DataPlaneObserver = {},
  ) {
    repository.use(this);
    this.mc = new McScheduler(
      { requests: config.MAX_QUEUE, waitMs: config.MAX_QUEUE_WAIT_MS },
      // a worker runs one task at a time and holds the next, so that it never waits for the main thread
      () => (this.pool ? this.pool.threads * WORKER_PIPELINE : 1),
      (m) => (this.pool && this.poolKeys.has(m) ? Math.min(m.maxRunRows, config.MC_COALESCE_MAX_ROWS) : m.maxRunRows),
      (batch) => this.runMc(batch),
      observer,
    );
  }

  /**
   * Throws the OverloadedError a Monte Carlo request would get now (the MC queue is full): the server
   * calls it before reading the body of a route that is always Monte Carlo.
   */
  checkMcAdmission(): void {
    const refusal = this.mc.refusal();
    if (refusal) throw refusal;
  }

  /** Monte Carlo requests waiting (0: a Monte Carlo request would be admitted now). */
  get mcWaiting(): number {
    return this.mc.depth;
  }

  /** Requests waiting in each lane (metrics). */
  queueDepth(): { mc: number; predict: number } {
    return { mc: this.mc.depth, predict: this.predictWaiting };
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
    const versions =
      version === undefined ? this.repository.versions(name) : [this.repository.get(name, version).version];
    if (versions.length === 0) this.repository.get(name); // throws ModelNotFoundError
    return versions.map((v) => this.statistics.get(name, v));
  }

  async predict(req: PredictRequest): Promise<PredictResult> {
    const lease = this.repository.acquire(req.model, req.version);
    if (lease.model.layout === 'tensor') return this.predictTensors(lease, req);
    const t = timing();
    let rows = 0;
    let ok = false;
    try {
      const m = lease.model;
      let field = 'rows';
      const { x, rows: n } = req.input.decode(m, (n, f) => {
        this.checkRows(n, f);
        field = f;
      });
      rows = n;
      const outOfRange = this.outOfRange(m, x, rows, field);
      const decoded = performance.now();
      t.decoded = decoded;
      const check = this.admitPredict(req, decoded);
      this.predictWaiting++;
      try {
        const output = await this.runPredict(m, x, rows, check, t);
        checkFiniteOutput(output, rows, m.outputSize);
        ok = true;
        return { model: m, rows, output, outOfRange };
      } finally {
        this.predictWaiting--;
        t.ended = performance.now();
        this.observer.inference?.(m.name, 'predict', (t.ended - decoded) / 1000, rows);
      }
    } finally {
      this.record(lease.model, 'predict', ok, rows, 1, t);
      this.repository.release(lease);
    }
  }

  async sample(req: SampleRequest): Promise<SampleResult> {
    const lease = this.repository.acquire(req.model, req.version);
    if (lease.model.layout === 'tensor') return this.sampleTensors(lease, req);
    const t = timing();
    let rows = 0;
    let samples = 0;
    let ok = false;
    try {
      const m = lease.model;
      if (!m.mcAvailable) throw new NoDropoutError(m.name);
      const max = this.config.MC_MAX_SAMPLES;
      const auto = req.tolerance !== undefined;
      samples = req.samples ?? (auto ? Math.min(AUTO_DEFAULT_MAX_SAMPLES, max) : this.config.MC_DEFAULT_SAMPLES);
      if (samples > max) throw new InputError(`${req.fields.samples}: ${samples} exceeds MC_MAX_SAMPLES=${max}`);
      const interval = req.interval ?? DEFAULT_INTERVAL;
      // an interval the model cannot serve (422) is refused before any row is read or run
      if (m.task === 'regression')
        resolveInterval(m.name, m.uncertainty ?? DEFAULT_UNCERTAINTY, interval, req.intervalMethod);
      const statistics = askedStatistics(m, req.statistics);
      let field = 'rows';
      const { x, rows: n } = req.input.decode(m, (n, f) => {
        this.checkRows(n, f);
        this.checkWork(n, samples, req.fields);
        field = f;
      });
      rows = n;
      const outOfRange = this.outOfRange(m, x, rows, field);
      const started = performance.now();
      t.decoded = started;
      // literals of one shape whatever the request asks (an absent option is undefined): a spread of a
      // conditional literal copied its keys on every request
      const tolerance = auto ? req.tolerance : undefined;
      try {
        const { stats, seed } = await this.submitMc(
          m,
          x,
          rows,
          {
            samples,
            interval,
            intervalMethod: req.intervalMethod,
            seed: req.seed,
            returnSamples: req.returnSamples,
            statistics,
            tolerance,
          },
          req,
          t,
        );
        checkFiniteStats(stats);
        ok = true;
        const result: SampleResult = {
          model: m,
          rows,
          samples,
          tolerance,
          interval,
          returnSamples: !!req.returnSamples,
          stats,
          seed,
          outOfRange,
        };
        samples = stats.samples; // the statistics count the samples used ("auto" may stop early)
        return result;
      } finally {
        this.observer.inference?.(m.name, 'mc', (performance.now() - started) / 1000, rows);
        this.observer.mcSamples?.(m.name, samples);
      }
    } finally {
      this.record(lease.model, 'mc', ok, rows, samples, t);
      this.repository.release(lease);
    }
  }

  /**
   * Admit a predict request to its lane (503 beyond MAX_QUEUE waiting) and return the check asked when
   * its run starts: work whose client left or whose deadline passed is not run.
   */
  private admitPredict(req: PredictRequest, now: number): RunCheck {
    const max = this.config.MAX_QUEUE;
    if (this.predictWaiting >= max) {
      this.observer.rejected?.('predict');
      throw refusalError(
        `server busy: ${this.predictWaiting} predict requests are waiting (MAX_QUEUE=${max}); retry later`,
        1,
      );
    }
    const timeoutMs = this.timeoutOf(req);
    const deadline = now + timeoutMs - (req.elapsedMs ?? 0);
    return (at: number): Error | null => {
      if (req.client?.closed) {
        this.observer.cancelled?.('predict', 'queued');
        return new CancelledError();
      }
      if (at > deadline) {
        this.observer.timedOut?.('predict', 'queued');
        return new DeadlineExceededError(timeoutMs, 'queued');
      }
      return null;
    };
  }

  /**
   * A tensor model's predict (issue 19): its input tensors → predictTensors, run alone (no batcher:
   * requests of a tensor model rarely share every input's shape), on a worker thread when the pool holds
   * the model (an image or text model's eval run would otherwise block the event loop: health, other
   * requests). Limits: MAX_BATCH_ROWS.
   */
  private async predictTensors(lease: ModelLease, req: PredictRequest): Promise<PredictResult> {
    const t = timing();
    let rows = 0;
    let ok = false;
    try {
      const m = lease.model;
      const decoded = tensorsOf(m, req.input, (n, f) => this.checkRows(n, f));
      rows = decoded.rows;
      t.decoded = performance.now();
      const check = this.admitPredict(req, t.decoded);
      this.predictWaiting++;
      const started = t.decoded;
      try {
        const err = check(performance.now());
        if (err) throw err;
        DataPlane.runsAlone(t);
        const key = this.poolKeys.get(m);
        const out =
          key !== undefined && this.pool
            ? await this.pool.predictTensors(key, decoded.inputs, rows)
            : await m.predictTensors!(decoded.inputs, rows);
        checkFiniteOutput(out.data, rows, out.data.length / rows);
        ok = true;
        return { model: m, rows, output: out.data, outOfRange: null, dims: out.dims };
      } finally {
        this.predictWaiting--;
        this.observer.inference?.(m.name, 'predict', (performance.now() - started) / 1000, rows);
      }
    } finally {
      this.record(lease.model, 'predict', ok, rows, 1, t);
      this.repository.release(lease);
    }
  }

  /**
   * A tensor model's Monte Carlo (issue 19): its input tensors → sampleTensors, on a worker thread when
   * the pool holds the model (onnxruntime's run blocks its thread, and a tensor model's run is heavy),
   * never coalesced. Limits: MAX_BATCH_ROWS, MC_MAX_SAMPLES, MC_MAX_RUN_BYTES and MC_MAX_WORK_BYTES.
   */
  private async sampleTensors(lease: ModelLease, req: SampleRequest): Promise<SampleResult> {
    const t = timing();
    let rows = 0;
    let samples = 0;
    let ok = false;
    try {
      const m = lease.model;
      const opts = this.mcSettings(m, req);
      samples = opts.samples;
      if (req.returnSamples) throw new InputError(`return_samples: the raw samples of a tensor model are not served`);
      const decoded = tensorsOf(m, req.input, (n, f) => {
        this.checkRows(n, f);
        this.checkWorkBytes(m, n, samples, req.fields);
      });
      rows = decoded.rows;
      const started = performance.now();
      t.decoded = started;
      try {
        const timeoutMs = this.timeoutOf(req);
        const r = (await this.mc.submit({
          model: m,
          job: { x: NO_ROWS, rows, opts },
          tensors: decoded.inputs,
          coalesce: false,
          deadline: performance.now() + timeoutMs - (req.elapsedMs ?? 0),
          timeoutMs,
          client: req.client,
          timing: t,
        })) as TensorMcResult;
        checkFiniteStats(r.stats);
        ok = true;
        samples = r.stats.samples;
        return {
          model: m,
          rows,
          samples: opts.samples,
          ...(opts.tolerance !== undefined ? { tolerance: opts.tolerance } : {}),
          interval: opts.interval,
          returnSamples: false,
          stats: r.stats,
          seed: r.seed,
          outOfRange: null,
          outputDims: r.outputDims,
        };
      } finally {
        this.observer.inference?.(m.name, 'mc', (performance.now() - started) / 1000, rows);
        this.observer.mcSamples?.(m.name, samples);
      }
    } finally {
      this.record(lease.model, 'mc', ok, rows, samples, t);
      this.repository.release(lease);
    }
  }

  /** A tensor MC request's options: the samples (MC_MAX_SAMPLES), interval (422 when not served) and statistics. */
  private mcSettings(m: Model, req: SampleRequest): McOptions {
    if (!m.mcAvailable) throw new NoDropoutError(m.name);
    const max = this.config.MC_MAX_SAMPLES;
    const auto = req.tolerance !== undefined;
    const samples = req.samples ?? (auto ? Math.min(AUTO_DEFAULT_MAX_SAMPLES, max) : this.config.MC_DEFAULT_SAMPLES);
    if (samples > max) throw new InputError(`${req.fields.samples}: ${samples} exceeds MC_MAX_SAMPLES=${max}`);
    const interval = req.interval ?? DEFAULT_INTERVAL;
    if (m.task === 'regression')
      resolveInterval(m.name, m.uncertainty ?? DEFAULT_UNCERTAINTY, interval, req.intervalMethod);
    const statistics = askedStatistics(m, req.statistics);
    return {
      samples,
      interval,
      ...(req.intervalMethod !== undefined ? { intervalMethod: req.intervalMethod } : {}),
      ...(req.seed !== undefined ? { seed: req.seed } : {}),
      ...(statistics ? { statistics } : {}),
      ...(auto ? { tolerance: req.tolerance } : {}),
    };
  }

  /**
   * A tensor model's Monte Carlo work in bytes: rows × samples × its activation bytes of one row in one
   * pass (runBytesPerRow), against MC_MAX_WORK_BYTES; one row's pass must fit one run (MC_MAX_RUN_BYTES).
   * A model that does not say its bytes is held to MC_MAX_WORK (rows × samples).
   */
  private checkWorkBytes(m: Model, rows: number, samples: number, fields: SampleFields): void {
    const perRow = m.runBytesPerRow;
    if (perRow === undefined || perRow <= 0) {
      this.checkWork(rows, samples, fields);
      return;
    }
    const run = this.config.MC_MAX_RUN_BYTES;
    if (perRow > run)
      throw new TooLargeError(
        `one row of model "${m.name}" needs about ${perRow} bytes of activations per Monte Carlo pass, over the run budget MC_MAX_RUN_BYTES=${run}`,
      );
    const max = this.config.MC_MAX_WORK_BYTES;
    const bytes = rows * samples * perRow;
    if (bytes > max)
      throw new TooLargeError(
        `rows × ${fields.samplesName} × bytes per row and pass = ${rows} × ${samples} × ${perRow} = ${bytes} bytes of Monte Carlo work exceeds the work budget MC_MAX_WORK_BYTES=${max}${fields.workAdvice ? `; ${fields.workAdvice}` : ''}`,
      );
  }

  /** A request's end, in the statistics (`t.ended` now unless set). */
  private record(m: Model, mode: InferenceMode, ok: boolean, rows: number, samples: number, t: RequestTiming): void {
    if (t.ended === 0) t.ended = performance.now();
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
  private static runsAlone(t: RequestTiming | undefined): void {
    if (!t) return;
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
      throw new TooLargeError(
        `rows × ${fields.samplesName} = ${rows} × ${samples} = ${rows * samples} exceeds MC_MAX_WORK=${max}${fields.workAdvice ? `; ${fields.workAdvice}` : ''}`,
      );
    }
  }

  /** The request's deadline in ms from now: its own timeout, at most MAX_REQUEST_MS. */
  private timeoutOf(req: PredictRequest): number {
    const max = this.config.MAX_REQUEST_MS;
    return req.timeoutMs === undefined ? max : Math.max(0, Math.min(req.timeoutMs, max));
  }

  /**
   * Per row, the features far outside the training range: below min − k·std or above max + k·std of
   * the card's feature_stats (k = OUT_OF_RANGE_STDS). null when no row has one, the model has no
   * feature_stats, or OUT_OF_RANGE=off; with OUT_OF_RANGE=reject a flagged row is a 422 naming it.
   */
  private outOfRange(m: Model, x: Float32Array, rows: number, field: string): string[][] | null {
    if (this.config.OUT_OF_RANGE === 'off') return null;
    let b = this.bounds.get(m);
    if (b === undefined) {
      const fs = m.featureStats;
      const k = this.config.OUT_OF_RANGE_STDS;
      b = fs
        ? {
            low: Float64Array.from(fs.min, (v, j) => v - k * fs.std[j]!),
            high: Float64Array.from(fs.max, (v, j) => v + k * fs.std[j]!),
          }
        : null;
      this.bounds.set(m, b);
    }
    if (!b) return null;
    const F = m.features.length;
    let flagged: string[][] | null = null;
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < F; j++) {
        const v = x[i * F + j]!;
        if (v >= b.low[j]! && v <= b.high[j]!) continue;
        if (this.config.OUT_OF_RANGE === 'reject') {
          const fs = m.featureStats!;
          throw new OutOfRangeError(
            `${field}[${i}]: ${m.features[j]} = ${v} is far outside the training range [${fs.min[j]}, ${fs.max[j]}] (beyond ${this.config.OUT_OF_RANGE_STDS} training std ${fs.std[j]}); the server refuses such inputs (OUT_OF_RANGE=reject)`,
          );
        }
        flagged ??= Array.from({ length: rows }, () => []);
        flagged[i]!.push(m.features[j]!);
      }
    }
    return flagged;
  }

  /** `check` is asked when the request's run starts; `t.started` is set then (after any wait for a batch). */
  private runPredict(
    m: Model,
    x: Float32Array,
    rows: number,
    check: RunCheck,
    t: RequestTiming,
  ): Promise<Float32Array> {
    if (this.config.BATCH_MAX_ROWS <= 0) {
      const err = check(performance.now());
      if (err) return Promise.reject(err);
      DataPlane.runsAlone(t);
      return m.predict(x, rows);
    }
    let batcher = this.predictBatchers.get(m);
    if (!batcher) {
      const name = m.name;
      batcher = new PredictBatcher(
        (bx, n) => this.executed(m, 'predict', n, () => m.predict(bx, n)),
        m.features.length,
        m.outputSize,
        this.config.BATCH_MAX_ROWS,
        this.config.BATCH_MAX_WAIT_US,
        (n) => this.observer.predictBatch?.(name, n),
      );
      this.predictBatchers.set(m, batcher);
    }
    return batcher.predict(x, rows, check, t);
  }

  /**
   * Admit an MC request to the queue (scheduler.ts). Large work goes to a worker (a hand-off costs
   * more than it saves below MC_WORKER_MIN_WORK: bench); requests that fit one run may share it with
   * others (MC_COALESCE); the rest runs inline.
   */
  private submitMc(
    m: Model,
    x: Float32Array,
    rows: number,
    opts: McOptions,
    req: SampleRequest,
    timing: RequestTiming,
  ): Promise<McResult> {
    // "auto" (a tolerance) is never coalesced (a coalesced run has one fixed T); a single task carries its
    // options to the worker (structured clone) and the record the samples used, so large ones still go there
    // rather than block the main thread for up to max_samples
    const auto = opts.tolerance !== undefined;
    const onWorker =
      this.pool !== null && this.poolKeys.has(m) && rows * opts.samples >= this.config.MC_WORKER_MIN_WORK;
    const coalesce = !onWorker && !auto && this.config.MC_COALESCE && m.fitsOneRun(rows, opts.samples);
    const timeoutMs = this.timeoutOf(req);
    return this.mc.submit({
      model: m,
      job: { x, rows, opts },
      coalesce,
      deadline: (timing.decoded ?? performance.now()) + timeoutMs - (req.elapsedMs ?? 0),
      timeoutMs,
      client: req.client,
      timing,
    });
  }

  /**
   * Run one task of the MC queue. A single request: on a worker when its work is large (stoppable
   * through the worker's cancel flag), else inline (its entry is the signal checked between chunks).
   * A coalesced batch of several: one run, on a worker when there is a pool (the event loop keeps
   * serving HTTP meanwhile; MC_COALESCE_MAX_ROWS tiled rows at most), else inline; members that left
   * before the start are not in it. If a shared run fails, each request is retried alone, so one bad
   * request never fails its neighbours. Statistics: a request's run starts here (the end of its queue
   * time); a run for one request is counted with it, a shared run as an execution of its rows.
   */
  private async runMc(batch: McEntry[]): Promise<void> {
    const m = batch[0]!.model;
    const key = this.poolKeys.get(m);
    const pool = key !== undefined ? this.pool : null;
    const alone = async (e: McEntry): Promise<void> => {
      const { x, rows, opts } = e.job;
      DataPlane.runsAlone(e.work.timing);
      try {
        if (e.work.tensors) {
          const tensors = e.work.tensors;
          if (!pool) return e.resolve(await m.sampleTensors!(tensors, rows, { ...opts, signal: e }));
          const task = pool.startTensors(key!, tensors, rows, opts);
          e.stop = task.cancel;
          return e.resolve(await task.result);
        }
        if (pool && rows * opts.samples >= this.config.MC_WORKER_MIN_WORK) {
          const task = pool.start(key!, x, rows, opts);
          e.stop = task.cancel;
          e.resolve(await task.result);
        } else {
          e.resolve(await m.sample(x, rows, { ...opts, signal: e }));
        }
      } catch (err) {
        e.fail(err);
      }
    };
    if (batch[0]!.work.coalesce) this.observer.mcBatch?.(m.name, batch.length);
    const live = batch.filter((e) => !e.aborted);
    if (live.length === 0) return;
    if (live.length === 1) return alone(live[0]!);
    const jobs = live.map((e) => e.job);
    const now = performance.now();
    for (const e of live) if (e.work.timing) e.work.timing.started = now;
    let results: McResult[];
    try {
      results = await this.executed(
        m,
        'mc',
        jobs.reduce((n, j) => n + j.rows, 0),
        () => (pool ? pool.runCoalesced(key!, jobs, m.features.length) : m.sampleBatch(jobs)),
      );
    } catch {
      for (const e of live) if (!e.aborted) await alone(e);
      return;
    }
    for (let i = 0; i < live.length; i++) live[i]!.resolve(results[i]!);
  }

  /** Repository hook: a model with dropout is loaded on the worker threads before it is served. */
  async prepare(model: Model, source: ModelSource): Promise<void> {
    if (this.config.MC_WORKERS <= 0 || !model.mcAvailable) return;
    this.pool ??= new McPool([], runtimeOptions(this.config), this.config.MC_WORKERS, this.config.MC_WORKER_NICE);
    const key = `${model.name}#${this.nextKey++}`;
    await this.pool.add(source, key, model.copyOptions?.());
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

/** The rows of a tensor request's job (its values are its input tensors). */
const NO_ROWS = new Float32Array(0);

/** A tensor model's input tensors from a protocol's input (400 when the protocol has no tensor form). */
function tensorsOf(
  m: Model,
  input: RowsInput,
  count: (rows: number, field: string) => void,
): { inputs: InputTensor[]; rows: number } {
  if (!input.tensors) throw new InputError(`model "${m.name}" takes tensor inputs, which this request cannot carry`);
  return input.tensors(m, count);
}

/** The name clients know a statistic by: its V2 output, else its /v1 field, else its key. */
const statName = (d: { key: string; v1: string | null; v2: string | null }): string => d.v2 ?? d.v1 ?? d.key;

/** Describe up to 5 bad rows: `row 3 (mean, std), row 7 (mean)`. */
function describeRows(bad: Map<number, Set<string>>): string {
  const parts = [...bad].slice(0, 5).map(([i, names]) => `row ${i} (${[...names].join(', ')})`);
  return `${parts.join(', ')}${bad.size > 5 ? `, and ${bad.size - 5} more rows` : ''}`;
}

const ADVICE =
  'the inputs drive the model beyond what float32 can represent; check them against the training range (GET the model: feature_stats)';

/** The record keys of the on-request statistics a request names (undefined for none); a 400 naming an unknown one. */
function askedStatistics(m: Model, asked: SampleRequest['statistics']): string[] | undefined {
  if (!asked || asked.names.length === 0) return undefined;
  const r = onRequestKeys(m.task, asked.names, asked.by);
  if ('unknown' in r) {
    const known = onRequestNames(m.task, asked.by);
    throw new InputError(
      `${asked.field}: "${r.unknown}" is not a statistic served on request by ${m.task} models (${known.length ? known.join(', ') : 'they have none'})`,
    );
  }
  return r.keys;
}

/** Every statistic of the record finite, else a 422 naming the rows and statistics (raw samples too, when kept). */
export function checkFiniteStats(s: McStats): void {
  if (allFinite(s)) return; // the common case: one pass, nothing allocated
  const width = s.kind === 'regression' ? s.outputs : s.classes;
  let bad: Map<number, Set<string>> | null = null;
  const mark = (row: number, name: string): void => {
    bad ??= new Map();
    let names = bad.get(row);
    if (!names) {
      names = new Set();
      bad.set(row, names);
    }
    names.add(name);
  };
  for (const d of servedStats(s)) {
    const a = statValues(s, d);
    const per = d.shape === 'row' ? 1 : width;
    for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) mark(Math.floor(i / per), statName(d));
  }
  if (s.raw) {
    for (let i = 0; i < s.raw.length; i++)
      if (!Number.isFinite(s.raw[i]!)) mark(Math.floor(i / width) % s.rows, 'samples');
  }
  if (bad) throw new NonFiniteError(`statistics are not finite for ${describeRows(bad)}: ${ADVICE}`);
}

/** Whether every served statistic and raw sample of the record is finite. */
function allFinite(s: McStats): boolean {
  for (const d of servedStats(s)) {
    const a = statValues(s, d);
    for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  }
  const raw = s.raw;
  if (raw) for (let i = 0; i < raw.length; i++) if (!Number.isFinite(raw[i]!)) return false;
  return true;
}

/** Every predict output finite, else a 422 naming the rows. */
export function checkFiniteOutput(out: Float32Array, rows: number, width: number): void {
  let bad: Map<number, Set<string>> | null = null;
  for (let i = 0; i < rows * width; i++) {
    if (Number.isFinite(out[i]!)) continue;
    bad ??= new Map();
    bad.set(Math.floor(i / width), new Set(['output']));
  }
  if (bad) throw new NonFiniteError(`the output is not finite for ${describeRows(bad)}: ${ADVICE}`);
}
