/**
 * Prometheus metrics, one registry per app so that tests can build several apps. prom-client provides
 * the registry, the text format and the process metrics; the per-request series are FastHistogram /
 * FastCounter (fast-metrics.ts), which register in the same registry.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DataPlaneObserver } from '../serving/dataplane.js';
import type { RepositoryEvents } from '../serving/repository.js';
import { FastCounter, FastHistogram } from './fast-metrics.js';

export interface Metrics {
  registry: Registry;
  httpDuration: FastHistogram<'method' | 'route' | 'status_code'>;
  inferenceDuration: FastHistogram<'model' | 'mode'>;
  mcSamples: FastHistogram<'model'>;
  rows: FastCounter<'model' | 'mode'>;
  modelsLoaded: Gauge;
  batchSize: FastHistogram<'model'>;
  mcBatchRequests: FastHistogram<'model'>;
  modelLoads: Counter<'model'>;
  modelLoadFailures: Counter<'model'>;
  modelUnloads: Counter<'model' | 'reason'>;
  modelLoadDuration: Histogram<'model'>;
  /** Requests waiting per lane (mc, predict), read at scrape time from `queueSource`. */
  queueDepth: Gauge<'lane'>;
  queueSource: (() => Record<'mc' | 'predict', number>) | null;
  rejected: FastCounter<'lane'>;
  timedOut: FastCounter<'lane' | 'stage'>;
  cancelled: FastCounter<'lane' | 'stage'>;
}

/** The series every request writes to: HTTP duration, inference duration, samples, rows, batch sizes. */
function requestSeries(
  registry: Registry,
): Pick<Metrics, 'httpDuration' | 'inferenceDuration' | 'mcSamples' | 'rows' | 'batchSize' | 'mcBatchRequests'> {
  return {
    httpDuration: new FastHistogram(
      'http_request_duration_seconds',
      'HTTP request duration by route and status',
      ['method', 'route', 'status_code'],
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registry,
    ),
    inferenceDuration: new FastHistogram(
      'inference_duration_seconds',
      'Model inference duration by model and mode (predict, mc)',
      ['model', 'mode'],
      [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registry,
    ),
    mcSamples: new FastHistogram(
      'mc_samples',
      'Monte Carlo samples per uncertainty request',
      ['model'],
      [1, 10, 30, 100, 300, 1000, 3000, 10000],
      registry,
    ),
    rows: new FastCounter('inference_rows_total', 'Rows scored by model and mode', ['model', 'mode'], registry),
    batchSize: new FastHistogram(
      'predict_batch_rows',
      'Rows per coalesced predict run (dynamic batching)',
      ['model'],
      [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registry,
    ),
    mcBatchRequests: new FastHistogram(
      'mc_batch_requests',
      'Monte Carlo requests per shared run (MC coalescing)',
      ['model'],
      [1, 2, 4, 8, 16, 32, 64, 128],
      registry,
    ),
  };
}

/** The repository's series: models served, loads, failures, unloads, load duration. */
function modelSeries(
  registry: Registry,
): Pick<Metrics, 'modelsLoaded' | 'modelLoads' | 'modelLoadFailures' | 'modelUnloads' | 'modelLoadDuration'> {
  const registers = [registry];
  return {
    modelsLoaded: new Gauge({ name: 'models_loaded', help: 'Models loaded and served', registers }),
    modelLoads: new Counter({
      name: 'model_loads_total',
      help: 'Model versions loaded and served (start-up, repository load, hot reload)',
      labelNames: ['model'],
      registers,
    }),
    modelLoadFailures: new Counter({
      name: 'model_load_failures_total',
      help: 'Model loads that failed (the version served before, if any, kept serving)',
      labelNames: ['model'],
      registers,
    }),
    modelUnloads: new Counter({
      name: 'model_unloads_total',
      help: 'Model versions no longer served, by reason: replaced (a new load of the same version) or unloaded',
      labelNames: ['model', 'reason'],
      registers,
    }),
    modelLoadDuration: new Histogram({
      name: 'model_load_duration_seconds',
      help: 'Model load duration: read, check, sessions, self-check and worker copies, until served',
      labelNames: ['model'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
  };
}

/** The lanes' series: queue depth (read at scrape time from `depth`), refused, timed out, cancelled. */
function laneSeries(
  registry: Registry,
  depth: () => Record<'mc' | 'predict', number> | undefined,
): Pick<Metrics, 'queueDepth' | 'rejected' | 'timedOut' | 'cancelled'> {
  return {
    queueDepth: new Gauge({
      name: 'queue_depth',
      help: 'Requests waiting for a run, by lane (mc: Monte Carlo, up to MAX_QUEUE; predict)',
      labelNames: ['lane'],
      registers: [registry],
      collect() {
        const d = depth();
        if (d) for (const lane of ['mc', 'predict'] as const) this.set({ lane }, d[lane]);
      },
    }),
    rejected: new FastCounter(
      'requests_rejected_total',
      "Requests refused at admission with 503 (the lane's queue held MAX_QUEUE requests or, for MC, more than MAX_QUEUE_WAIT_MS of estimated work), by lane",
      ['lane'],
      registry,
    ),
    timedOut: new FastCounter(
      'requests_timed_out_total',
      'Requests whose deadline passed (504), by lane and stage (queued: dropped; running: stopped between chunks)',
      ['lane', 'stage'],
      registry,
    ),
    cancelled: new FastCounter(
      'requests_cancelled_total',
      'Requests whose client disconnected, by lane and stage (queued: dropped; running: stopped between chunks)',
      ['lane', 'stage'],
      registry,
    ),
  };
}

/** The app's metrics: a registry of its own (tests build several apps) with the process metrics. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const m: Metrics = {
    registry,
    ...requestSeries(registry),
    ...modelSeries(registry),
    ...laneSeries(registry, () => m.queueSource?.() ?? undefined),
    queueSource: null,
  };
  return m;
}

/** The data plane's observer writing these metrics. */
export function metricsObserver(m: Metrics): DataPlaneObserver {
  return {
    inference: (model, mode, seconds, rows) => {
      m.inferenceDuration.at(model, mode).observe(seconds);
      m.rows.at(model, mode).inc(rows);
    },
    mcSamples: (model, samples) => m.mcSamples.at(model).observe(samples),
    predictBatch: (model, rows) => m.batchSize.at(model).observe(rows),
    mcBatch: (model, requests) => m.mcBatchRequests.at(model).observe(requests),
    rejected: (lane) => m.rejected.at(lane).inc(),
    timedOut: (lane, stage) => m.timedOut.at(lane, stage).inc(),
    cancelled: (lane, stage) => m.cancelled.at(lane, stage).inc(),
  };
}

/** The repository's events writing these metrics (loads, failures, unloads, load duration, models served). */
export function repositoryMetrics(m: Metrics): RepositoryEvents {
  return {
    loaded: (model, _source, seconds) => {
      m.modelLoads.inc({ model: model.name });
      m.modelLoadDuration.observe({ model: model.name }, seconds);
    },
    failed: (source) => m.modelLoadFailures.inc({ model: source.name }),
    unloaded: (model, reason) => m.modelUnloads.inc({ model: model.name, reason }),
    served: (count) => m.modelsLoaded.set(count),
  };
}
