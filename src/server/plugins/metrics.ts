/**
 * Prometheus metrics: `app.metrics` (../metrics.ts), HTTP durations by route and status (an onResponse
 * hook), and GET /metrics. The data plane reports through metricsObserver (../metrics.ts).
 */
import { type Metrics, createMetrics } from '../metrics.js';
import { appPlugin } from './app-plugin.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics;
  }
}

/** Status codes as label values, made once (String(code) builds a string per request past 99). */
const STATUS_LABELS = Array.from({ length: 600 }, (_, code) => String(code));
const statusLabel = (code: number): string => STATUS_LABELS[code] ?? String(code);

export const metrics = appPlugin(async (app) => {
  const m = createMetrics();
  app.decorate('metrics', m);
  // a callback-style hook: it runs on every request, and an async one costs a promise each
  app.addHook('onResponse', (req, reply, done) => {
    m.httpDuration
      .at(req.method, req.routeOptions.url ?? 'unmatched', statusLabel(reply.statusCode))
      .observe(reply.elapsedTime / 1000);
    done();
  });
  app.get(
    '/metrics',
    { schema: { tags: ['meta'], summary: 'Prometheus metrics (text exposition format)' } },
    async (_req, reply) => {
      reply.header('content-type', m.registry.contentType);
      return m.registry.metrics();
    },
  );
});
