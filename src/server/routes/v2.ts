import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../../config.js';
import { useErrorShape } from '../plugins/errors.js';
import { useV2Bodies } from '../plugins/v2-body.js';
import * as v2 from '../protocol/v2.js';
import { V2Live, V2Params, V2Ready, V2ServerMetadata } from '../schemas/v2.js';
import { v2InferRoutes } from './v2-infer.js';
import { v2ModelRoutes } from './v2-models.js';

/**
 * What GET /v2 lists: Monte Carlo dropout, the binary tensor data extension, Triton's statistics and model
 * configuration, and model_repository when the management routes are on (ADMIN_API_KEY).
 */
export function v2Extensions(config: Pick<Config, 'ADMIN_API_KEY'>): string[] {
  const always = ['mc_dropout', 'binary_tensor_data', 'statistics', 'model_configuration'];
  return config.ADMIN_API_KEY ? [...always, 'model_repository'] : always;
}

/**
 * KServe Open Inference Protocol (V2) REST, registered under the prefix /v2: its errors and unknown
 * routes answer {"error": "..."} (this context's error shape).
 */
export const v2Routes =
  (config: Config, version: string): FastifyPluginAsyncZod =>
  async (app) => {
    useErrorShape(app, v2.errorBody);
    // JSON answers say exactly application/json, as KServe's and Triton's servers do: kserve's client
    // reads an error's message only then (inference_client.py _construct_http_status_error)
    app.addHook('onSend', (_req, reply, payload, done) => {
      if (reply.getHeader('content-type') === 'application/json; charset=utf-8')
        reply.header('content-type', 'application/json');
      done(null, payload);
    });
    // JSON with or without a content type, binary tensors, gzip/deflate (plugins/v2-body.ts)
    useV2Bodies(app, {
      rawInput: (req) => {
        const params = V2Params.safeParse(req.params);
        return params.success ? v2.rawInput(app.dataPlane.model(params.data.name, params.data.version)) : undefined;
      },
    });
    const tags = ['v2'];
    const extensions = v2Extensions(config);
    // '/' under the prefix answers both /v2 and /v2/ (the spec's path)
    app.get('/', { schema: { tags, summary: 'Server metadata', response: { 200: V2ServerMetadata } } }, async () => ({
      name: 'dropout-serve',
      version,
      extensions,
    }));
    app.get('/health/live', { schema: { tags, summary: 'Server live', response: { 200: V2Live } } }, async () => ({
      live: true,
    }));
    app.get(
      '/health/ready',
      { schema: { tags, summary: 'Server ready', response: { 200: V2Ready, 503: V2Ready } } },
      async (_req, reply) => reply.code(app.dataPlane.ready ? 200 : 503).send({ ready: app.dataPlane.ready }),
    );
    await app.register(v2ModelRoutes(config));
    await app.register(v2InferRoutes);
  };
