/**
 * Prometheus metrics: `app.metrics` (../metrics.ts), HTTP durations by route and status (an onResponse
 * hook), and GET /metrics. The data plane reports through metricsObserver (../metrics.ts).
 */
import type { FastifyReply, FastifyRequest, onResponseHookHandler } from 'fastify';
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
  const observe = (req: FastifyRequest, reply: FastifyReply, route: string): void =>
    m.httpDuration.at(req.method, route, statusLabel(reply.statusCode)).observe(reply.elapsedTime / 1000);
  // each route's own hook knows its URL: Fastify's req.routeOptions builds an object of twelve fields on
  // every read. Callback-style hooks: they run on every request, and async ones cost a promise each.
  app.addHook('onRoute', (route) => {
    const url = route.url;
    const hook: onResponseHookHandler = (req, reply, done) => {
      observe(req, reply, url);
      done();
    };
    route.onResponse = route.onResponse === undefined ? [hook] : [...[route.onResponse].flat(), hook];
  });
  // requests that matched no route have no route hook
  app.addHook('onResponse', (req, reply, done) => {
    if (req.is404) observe(req, reply, 'unmatched');
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
