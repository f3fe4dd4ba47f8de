import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { V2Error, V2InferRequest, V2InferResponse, V2Live, V2ModelMetadata, V2ModelReady, V2Params, V2Ready, V2ServerMetadata } from '../schemas/v2.js';

const errors = { 400: V2Error, 401: V2Error, 404: V2Error, 413: V2Error, 422: V2Error, 503: V2Error };

/** KServe Open Inference Protocol (V2) REST. Errors are {"error": "..."} (see app.ts). */
export const v2Routes = (version: string): FastifyPluginAsyncZod => async (app) => {
  const tags = ['v2'];
  app.get('/v2', { schema: { tags, summary: 'Server metadata', response: { 200: V2ServerMetadata } } }, async () => ({ name: 'dropout-serve', version, extensions: ['mc_dropout'] }));
  app.get('/v2/health/live', { schema: { tags, summary: 'Server live', response: { 200: V2Live } } }, async () => ({ live: true }));
  app.get('/v2/health/ready', { schema: { tags, summary: 'Server ready', response: { 200: V2Ready, 503: V2Ready } } }, async (_req, reply) => {
    const ready = app.service.state === 'ready';
    return reply.code(ready ? 200 : 503).send({ ready });
  });
  for (const prefix of ['/v2/models/:name', '/v2/models/:name/versions/:version']) {
    app.get(prefix, { schema: { tags, summary: 'Model metadata', params: V2Params, response: { 200: V2ModelMetadata, ...errors } } }, async (req) => app.service.v2Metadata(req.params.name, req.params.version));
    app.get(`${prefix}/ready`, { schema: { tags, summary: 'Model ready', params: V2Params, response: { 200: V2ModelReady, ...errors } } }, async (req) => {
      app.service.v2Metadata(req.params.name, req.params.version);
      return { name: req.params.name, ready: app.service.state === 'ready' };
    });
    app.post(
      `${prefix}/infer`,
      { schema: { tags, summary: 'Inference; Monte Carlo dropout with parameters.mc_samples', params: V2Params, body: V2InferRequest, response: { 200: V2InferResponse, ...errors } } },
      async (req) => {
        app.service.v2Metadata(req.params.name, req.params.version);
        return app.service.v2Infer(req.params.name, req.body);
      },
    );
  }
};
