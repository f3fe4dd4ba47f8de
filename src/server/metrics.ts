/** Prometheus metrics (prom-client), one registry per app so that tests can build several apps. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  inferenceDuration: Histogram<'model' | 'mode'>;
  mcSamples: Histogram<'model'>;
  rows: Counter<'model' | 'mode'>;
  modelsLoaded: Gauge;
  batchSize: Histogram<'model'>;
  mcBatchRequests: Histogram<'model'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by route and status',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    inferenceDuration: new Histogram({
      name: 'inference_duration_seconds',
      help: 'Model inference duration by model and mode (predict, mc)',
      labelNames: ['model', 'mode'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [registry],
    }),
    mcSamples: new Histogram({
      name: 'mc_samples',
      help: 'Monte Carlo samples per uncertainty request',
      labelNames: ['model'],
      buckets: [1, 10, 30, 100, 300, 1000, 3000, 10000],
      registers: [registry],
    }),
    rows: new Counter({ name: 'inference_rows_total', help: 'Rows scored by model and mode', labelNames: ['model', 'mode'], registers: [registry] }),
    modelsLoaded: new Gauge({ name: 'models_loaded', help: 'Models loaded and served', registers: [registry] }),
    batchSize: new Histogram({
      name: 'predict_batch_rows',
      help: 'Rows per coalesced predict run (dynamic batching)',
      labelNames: ['model'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers: [registry],
    }),
    mcBatchRequests: new Histogram({
      name: 'mc_batch_requests',
      help: 'Monte Carlo requests per shared run (MC coalescing)',
      labelNames: ['model'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers: [registry],
    }),
  };
}
