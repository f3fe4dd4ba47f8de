import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { useErrorShape } from '../plugins/errors.js';
import { INFERENCE_HEADER_CONTENT_LENGTH, useV2Bodies } from '../plugins/v2-body.js';
import * as v2 from '../protocol/v2.js';
import { minTimeout, requestContext } from '../request-context.js';
import {
  V2Error,
  V2InferRequest,
  V2InferResponse,
  V2Live,
  V2ModelMetadata,
  V2ModelReady,
  V2ModelStats,
  V2Params,
  V2Ready,
  V2ServerMetadata,
} from '../schemas/v2.js';

/** What GET /v2 lists: Monte Carlo dropout, the binary tensor data extension, Triton's statistics (+ the
 * extensions the app passes in: model_repository when ADMIN_API_KEY is set). */
const V2_EXTENSIONS = ['mc_dropout', 'binary_tensor_data', 'statistics'];

/** An encoded infer response: JSON, or JSON + binary outputs with Inference-Header-Content-Length. */
function sendInfer(reply: FastifyReply, r: ReturnType<typeof v2.encodeInferBody>): FastifyReply {
  reply.header('content-type', r.contentType);
  if (r.headerLength !== null) reply.header(INFERENCE_HEADER_CONTENT_LENGTH, r.headerLength);
  return reply.send(r.body);
}

const errors = { 400: V2Error, 401: V2Error, 404: V2Error, 413: V2Error, 422: V2Error, 503: V2Error, 504: V2Error };

/**
 * KServe Open Inference Protocol (V2) REST, registered under the prefix /v2: its errors and unknown
 * routes answer {"error": "..."} (this context's error shape).
 */
export const v2Routes =
  (version: string, extensions: string[] = []): FastifyPluginAsyncZod =>
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
    // '/' under the prefix answers both /v2 and /v2/ (the spec's path); model_repository when management is on
    app.get('/', { schema: { tags, summary: 'Server metadata', response: { 200: V2ServerMetadata } } }, async () => ({
      name: 'dropout-serve',
      version,
      extensions: [...V2_EXTENSIONS, ...extensions],
    }));
    app.get('/health/live', { schema: { tags, summary: 'Server live', response: { 200: V2Live } } }, async () => ({
      live: true,
    }));
    app.get(
      '/health/ready',
      { schema: { tags, summary: 'Server ready', response: { 200: V2Ready, 503: V2Ready } } },
      async (_req, reply) => reply.code(app.dataPlane.ready ? 200 : 503).send({ ready: app.dataPlane.ready }),
    );
    // Triton's statistics extension: every model, a model's versions, one version
    app.get(
      '/models/stats',
      {
        schema: {
          tags,
          summary: 'Statistics of every model (Triton statistics extension)',
          response: { 200: V2ModelStats },
        },
      },
      async () => v2.encodeStatistics(app.dataPlane.modelStatistics()),
    );
    for (const prefix of ['/models/:name', '/models/:name/versions/:version']) {
      app.get(
        `${prefix}/stats`,
        {
          schema: {
            tags,
            summary: 'Model statistics per mode (Triton statistics extension)',
            params: V2Params,
            response: { 200: V2ModelStats, ...errors },
          },
        },
        async (req) => v2.encodeStatistics(app.dataPlane.modelStatistics(req.params.name, req.params.version)),
      );
    }
    for (const prefix of ['/models/:name', '/models/:name/versions/:version']) {
      app.get(
        prefix,
        {
          schema: { tags, summary: 'Model metadata', params: V2Params, response: { 200: V2ModelMetadata, ...errors } },
        },
        async (req) =>
          v2.encodeMetadata(
            app.dataPlane.model(req.params.name, req.params.version),
            app.repository.versions(req.params.name),
          ),
      );
      app.get(
        `${prefix}/ready`,
        { schema: { tags, summary: 'Model ready', params: V2Params, response: { 200: V2ModelReady, ...errors } } },
        async (req) => ({
          name: app.dataPlane.model(req.params.name, req.params.version).name,
          ready: app.dataPlane.ready,
        }),
      );
      app.post(
        `${prefix}/infer`,
        {
          schema: {
            tags,
            summary: 'Inference; Monte Carlo dropout with parameters.mc_samples',
            params: V2Params,
            body: V2InferRequest,
            response: { 200: V2InferResponse, ...errors },
          },
        },
        async (req, reply) => {
          const { params, body, v2Binary } = req;
          const ctx = requestContext(req, reply);
          // the header and parameters.timeout: the sooner deadline counts
          const scoped = <R extends { timeoutMs?: number }>(r: R): R => ({
            ...r,
            ...ctx,
            timeoutMs: minTimeout(r.timeoutMs, ctx.timeoutMs),
          });
          return sendInfer(
            reply,
            v2.encodeInferBody(
              body,
              v2.isSampleRequest(body)
                ? v2.encodeSample(body, await app.dataPlane.sample(scoped(v2.sampleRequest(params, body, v2Binary))))
                : v2.encodePredict(
                    body,
                    await app.dataPlane.predict(scoped(v2.predictRequest(params, body, v2Binary))),
                  ),
            ),
          );
        },
      );
    }
  };
