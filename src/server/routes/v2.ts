import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { useErrorShape } from '../plugins/errors.js';
import * as v2 from '../protocol/v2.js';
import { minTimeout, requestContext } from '../request-context.js';
import { V2Error, V2InferRequest, V2InferResponse, V2Live, V2ModelMetadata, V2ModelReady, V2Params, V2Ready, V2ServerMetadata } from '../schemas/v2.js';

const errors = { 400: V2Error, 401: V2Error, 404: V2Error, 413: V2Error, 422: V2Error, 503: V2Error, 504: V2Error };

/**
 * KServe Open Inference Protocol (V2) REST, registered under the prefix /v2: its errors and unknown
 * routes answer {"error": "..."} (this context's error shape).
 */
export const v2Routes =
  (version: string): FastifyPluginAsyncZod =>
  async (app) => {
    useErrorShape(app, v2.errorBody);
    const tags = ['v2'];
    app.get('', { schema: { tags, summary: 'Server metadata', response: { 200: V2ServerMetadata } } }, async () => ({ name: 'dropout-serve', version, extensions: ['mc_dropout'] }));
    app.get('/health/live', { schema: { tags, summary: 'Server live', response: { 200: V2Live } } }, async () => ({ live: true }));
    app.get('/health/ready', { schema: { tags, summary: 'Server ready', response: { 200: V2Ready, 503: V2Ready } } }, async (_req, reply) =>
      reply.code(app.dataPlane.ready ? 200 : 503).send({ ready: app.dataPlane.ready }),
    );
    for (const prefix of ['/models/:name', '/models/:name/versions/:version']) {
      app.get(prefix, { schema: { tags, summary: 'Model metadata', params: V2Params, response: { 200: V2ModelMetadata, ...errors } } }, async (req) =>
        v2.encodeMetadata(app.dataPlane.model(req.params.name, req.params.version), app.repository.versions(req.params.name)),
      );
      app.get(`${prefix}/ready`, { schema: { tags, summary: 'Model ready', params: V2Params, response: { 200: V2ModelReady, ...errors } } }, async (req) => ({
        name: app.dataPlane.model(req.params.name, req.params.version).name,
        ready: app.dataPlane.ready,
      }));
      app.post(
        `${prefix}/infer`,
        { schema: { tags, summary: 'Inference; Monte Carlo dropout with parameters.mc_samples', params: V2Params, body: V2InferRequest, response: { 200: V2InferResponse, ...errors } } },
        async (req, reply) => {
          const { params, body } = req;
          const ctx = requestContext(req, reply);
          // the header and parameters.timeout: the sooner deadline counts
          const scoped = <R extends { timeoutMs?: number }>(r: R): R => ({ ...r, ...ctx, timeoutMs: minTimeout(r.timeoutMs, ctx.timeoutMs) });
          return v2.isSampleRequest(body) ? v2.encodeSample(body, await app.dataPlane.sample(scoped(v2.sampleRequest(params, body)))) : v2.encodePredict(body, await app.dataPlane.predict(scoped(v2.predictRequest(params, body))));
        },
      );
    }
  };
