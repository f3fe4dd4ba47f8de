import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { Live, Ready } from '../schemas/v1.js';

/** Liveness and readiness (503 while loading or shutting down). */
export const healthRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get('/health/live', { schema: { tags: ['health'], summary: 'Liveness', response: { 200: Live } } }, async () => ({
    status: 'ok' as const,
  }));
  app.get(
    '/health/ready',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: 503 while loading or shutting down',
        response: { 200: Ready, 503: Ready },
      },
    },
    async (_req, reply) => {
      if (!app.dataPlane.ready) return reply.code(503).send({ status: app.repository.state, models: [] });
      return { status: 'ready', models: app.repository.names() };
    },
  );
};
