/**
 * The served models and what the routes call: limits, error mapping to the catalogue, metrics.
 * Routes stay a few lines; the numerics live in src/model.
 */
import type { Config } from '../config.js';
import { InputError, NoDropoutError } from '../model/errors.js';
import { McBatcher, PredictBatcher } from '../serving/batcher.js';
import type { McStats } from '../model/stats.js';
import { encodePredictions, encodeStats } from './protocol/v1.js';
import type { McPool } from '../serving/pool.js';
import type { McJob, McOptions, McResult, Model as LoadedModel } from '../model/model.js';
import { toMatrix } from '../model/rows.js';
import { InvalidInput, ModelNotFound, NoDropout, TooLarge } from './errors.js';
import type { Metrics } from './metrics.js';
import { type V2Output, type V2Tensor, V2Error, inputRows, mcOutputNames, mcOutputs, predictOutputs, selectOutputs } from './protocol/v2.js';

export type ServiceState = 'loading' | 'ready' | 'closing';

/** Runs MC for a model; the default runs it inline, a worker pool may take large jobs (see pool.ts). */
export type McRunner = (model: LoadedModel, x: Float32Array, rows: number, opts: McOptions) => Promise<{ stats: McStats; seed: number }>;
/** Runs eval-mode predict for a model; the default runs it inline, a batcher may coalesce requests. */
export type PredictRunner = (model: LoadedModel, x: Float32Array, rows: number) => Promise<Float32Array>;

export interface UncertaintyRequest {
  instances: unknown[];
  samples?: number;
  interval?: number;
  seed?: number;
  return_samples?: boolean;
}

export interface V2InferRequest {
  id?: string;
  parameters?: { mc_samples?: number; seed?: number; interval?: number; [k: string]: unknown };
  inputs: V2Tensor[];
  outputs?: { name: string }[];
}

function mapCoreError(err: unknown): never {
  if (err instanceof InputError) throw new InvalidInput(err.message);
  if (err instanceof NoDropoutError) throw new NoDropout(err.message);
  throw err;
}

export class InferenceService {
  state: ServiceState = 'loading';
  private models = new Map<string, LoadedModel>();
  private pool: McPool | null = null;
  mcRunner: McRunner = (m, x, rows, opts) => m.sample(x, rows, opts);
  predictRunner: PredictRunner = (m, x, rows) => m.predict(x, rows);

  constructor(
    readonly config: Config,
    private readonly metrics: Metrics,
  ) {}

  /**
   * Serve these models. With a pool, MC work of at least MC_WORKER_MIN_WORK rows × samples runs on a
   * worker thread (smaller work is faster inline: no hand-off); with BATCH_MAX_ROWS > 0 concurrent
   * predict requests are coalesced per model.
   */
  setModels(models: Map<string, LoadedModel>, pool: McPool | null = null): void {
    this.models = models;
    this.pool = pool;
    const minWork = this.config.MC_WORKER_MIN_WORK;
    const inline: McRunner = this.config.MC_COALESCE ? this.coalescingRunner(models, pool) : (m, x, rows, opts) => m.sample(x, rows, opts);
    this.mcRunner = pool ? (m, x, rows, opts) => (rows * opts.samples >= minWork ? pool.run(m.name, x, rows, opts) : inline(m, x, rows, opts)) : inline;
    if (this.config.BATCH_MAX_ROWS > 0) {
      const batchers = new Map(
        [...models.values()].map((m) => [
          m.name,
          new PredictBatcher((x, rows) => m.predict(x, rows), m.features.length, m.outputSize, this.config.BATCH_MAX_ROWS, this.config.BATCH_MAX_WAIT_US, (rows) =>
            this.metrics.batchSize.observeValues([m.name], rows),
          ),
        ]),
      );
      this.predictRunner = (m, x, rows) => batchers.get(m.name)!.predict(x, rows);
    } else this.predictRunner = (m, x, rows) => m.predict(x, rows);
    this.metrics.modelsLoaded.set(models.size);
    this.state = 'ready';
  }

  /**
   * MC that coalesces concurrent requests fitting one run (McBatcher); larger ones run alone. A lone
   * request runs inline (no hand-off: fastest when the server is quiet); a batch of several goes to a
   * worker when there is a pool, so that under load the event loop keeps serving HTTP while a worker
   * runs the batch. Worker batches are capped at MC_COALESCE_MAX_ROWS tiled rows and at most
   * threads + 1 are in flight, so that the next batch forms while one runs (bench: MC throughput with
   * workers vs inline).
   */
  private coalescingRunner(models: Map<string, LoadedModel>, pool: McPool | null): McRunner {
    const batchers = new Map(
      [...models.values()].map((m) => {
        const run = (jobs: McJob[]): Promise<McResult[]> => (pool && jobs.length > 1 ? pool.runCoalesced(m.name, jobs, m.features.length) : m.sampleBatch(jobs));
        const onBatch = (n: number): void => this.metrics.mcBatchRequests.observeValues([m.name], n);
        const batcher = pool
          ? new McBatcher(run, Math.min(m.maxRunRows, this.config.MC_COALESCE_MAX_ROWS), pool.threads + 1, onBatch)
          : new McBatcher(run, m.maxRunRows, Infinity, onBatch);
        return [m.name, batcher] as const;
      }),
    );
    return (m, x, rows, opts) => (m.fitsOneRun(rows, opts.samples) ? batchers.get(m.name)!.mc({ x, rows, opts }) : m.sample(x, rows, opts));
  }

  names(): string[] {
    return [...this.models.keys()];
  }

  list(): LoadedModel[] {
    return [...this.models.values()];
  }

  get(name: string): LoadedModel {
    const m = this.models.get(name);
    if (!m) throw new ModelNotFound(name.length > 100 ? `${name.slice(0, 100)}…` : name, this.names().join(', ') || 'none');
    return m;
  }

  private checkRows(rows: number, field = 'instances'): void {
    const max = this.config.MAX_BATCH_ROWS;
    if (rows > max) throw new TooLarge(`${field}: ${rows} rows exceed MAX_BATCH_ROWS=${max}`);
  }

  private checkWork(rows: number, samples: number): void {
    const max = this.config.MC_MAX_WORK;
    if (rows * samples > max) throw new TooLarge(`rows × samples = ${rows} × ${samples} = ${rows * samples} exceeds MC_MAX_WORK=${max}; send fewer rows or samples`);
  }

  private async timed<T>(model: string, mode: 'predict' | 'mc', rows: number, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await fn();
    } finally {
      const labels = [model, mode];
      this.metrics.inferenceDuration.observeValues(labels, (performance.now() - started) / 1000);
      this.metrics.rows.incValues(labels, rows);
    }
  }

  async predict(name: string, instances: unknown[]): Promise<{ model: string; predictions: unknown[] }> {
    const m = this.get(name);
    this.checkRows(instances.length);
    try {
      const { data, rows } = toMatrix(instances, m.features);
      const raw = await this.timed(name, 'predict', rows, () => this.predictRunner(m, data, rows));
      return { model: name, predictions: encodePredictions(m, raw, rows) };
    } catch (err) {
      return mapCoreError(err);
    }
  }

  async uncertainty(name: string, req: UncertaintyRequest): Promise<Record<string, unknown>> {
    const m = this.get(name);
    if (!m.mcAvailable) throw new NoDropout(new NoDropoutError(name).message);
    const samples = req.samples ?? this.config.MC_DEFAULT_SAMPLES;
    const interval = req.interval ?? 0.9;
    this.checkRows(req.instances.length);
    this.checkWork(req.instances.length, samples);
    try {
      const { data, rows } = toMatrix(req.instances, m.features);
      this.metrics.mcSamples.observeValues([name], samples);
      const { stats, seed } = await this.timed(name, 'mc', rows, () =>
        this.mcRunner(m, data, rows, { samples, interval, seed: req.seed, returnSamples: req.return_samples }),
      );
      return {
        model: name,
        samples,
        ...(m.task === 'regression' ? { interval } : {}),
        seed,
        predictions: encodeStats(stats, m.labels, !!req.return_samples),
      };
    } catch (err) {
      return mapCoreError(err);
    }
  }

  async v2Infer(name: string, req: V2InferRequest): Promise<{ model_name: string; model_version: string; id?: string; parameters?: Record<string, unknown>; outputs: V2Output[] }> {
    const m = this.get(name);
    const { data, rows } = inputRows(m, req.inputs, this.config.MAX_BATCH_ROWS);
    const p = req.parameters ?? {};
    let outputs: V2Output[];
    let parameters: Record<string, unknown> | undefined;
    if (p.mc_samples !== undefined) {
      if (!m.mcAvailable) throw new V2Error(new NoDropoutError(name).message, 422);
      const samples = p.mc_samples;
      if (samples > this.config.MC_MAX_SAMPLES) throw new V2Error(`parameters.mc_samples: ${samples} exceeds MC_MAX_SAMPLES=${this.config.MC_MAX_SAMPLES}`);
      if (rows * samples > this.config.MC_MAX_WORK) throw new V2Error(`rows × mc_samples = ${rows} × ${samples} = ${rows * samples} exceeds MC_MAX_WORK=${this.config.MC_MAX_WORK}`, 413);
      this.metrics.mcSamples.observeValues([name], samples);
      const interval = p.interval ?? 0.9;
      const { stats, seed } = await this.timed(name, 'mc', rows, () => this.mcRunner(m, data, rows, { samples, interval, seed: p.seed }));
      outputs = mcOutputs(stats);
      parameters = { mc_samples: samples, seed, ...(m.task === 'regression' ? { interval } : {}) };
    } else {
      const raw = await this.timed(name, 'predict', rows, () => this.predictRunner(m, data, rows));
      outputs = predictOutputs(m, raw, rows);
    }
    return { model_name: name, model_version: '1', ...(req.id !== undefined ? { id: req.id } : {}), ...(parameters ? { parameters } : {}), outputs: selectOutputs(outputs, req.outputs) };
  }

  /** V2 model metadata; a version other than "1" is unknown (404). */
  v2Metadata(name: string, version?: string): { name: string; versions: string[]; platform: string; inputs: { name: string; datatype: string; shape: number[] }[]; outputs: { name: string; datatype: string; shape: number[] }[]; parameters: Record<string, unknown> } {
    const m = this.get(name);
    if (version !== undefined && version !== '1') throw new V2Error(`model "${name}" has no version "${version}" (versions: 1)`, 404);
    const K = m.outputSize;
    const outputs: { name: string; datatype: string; shape: number[] }[] = [{ ...m.output }];
    if (m.task === 'classification' && m.output.name !== 'probabilities') outputs.push({ name: 'probabilities', datatype: 'FP32', shape: [-1, K] });
    return {
      name,
      versions: ['1'],
      platform: m.platform,
      inputs: [{ ...m.input }],
      outputs,
      parameters: {
        task: m.task,
        features: [...m.features],
        ...(m.task === 'classification' ? { labels: [...m.labels] } : {}),
        mc_available: m.mcAvailable,
        mc_outputs: mcOutputNames(m.task),
      },
    };
  }

  async close(): Promise<void> {
    this.state = 'closing';
    const models = this.list();
    this.models = new Map();
    await this.pool?.close();
    this.pool = null;
    await Promise.all(models.map((m) => m.close()));
  }
}
