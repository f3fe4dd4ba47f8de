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

export const metrics = appPlugin(async (app) => {
  const m = createMetrics();
  app.decorate('metrics', m);
  // a callback-style hook: it runs on every request, and an async one costs a promise each
  app.addHook('onResponse', (req, reply, done) => {
    m.httpDuration.observeValues(
      [req.method, req.routeOptions.url ?? 'unmatched', String(reply.statusCode)],
      reply.elapsedTime / 1000,
    );
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
