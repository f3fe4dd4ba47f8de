import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../../config.js';
import * as v2 from '../protocol/v2.js';
import { encodeModelConfig } from '../protocol/v2-config.js';
import { V2ModelConfig, V2ModelMetadata, V2ModelReady, V2ModelStats, V2Params } from '../schemas/v2.js';
import { MODEL_PREFIXES, V2_ERRORS as errors } from './v2-errors.js';

/**
 * The V2 model routes that describe a model (under /v2): metadata, readiness, Triton's model
 * configuration and statistics extensions. Not on the inference path.
 */
export const v2ModelRoutes =
  (config: Config): FastifyPluginAsyncZod =>
  async (app) => {
    const tags = ['v2'];
    const model = (p: { name: string; version?: string | undefined }) => app.dataPlane.model(p.name, p.version);
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
    for (const prefix of MODEL_PREFIXES) {
      const params = V2Params;
      app.get(
        prefix,
        { schema: { tags, summary: 'Model metadata', params, response: { 200: V2ModelMetadata, ...errors } } },
        async (req) => v2.encodeMetadata(model(req.params), app.repository.versions(req.params.name)),
      );
      app.get(
        `${prefix}/ready`,
        { schema: { tags, summary: 'Model ready', params, response: { 200: V2ModelReady, ...errors } } },
        async (req) => ({ name: model(req.params).name, ready: app.dataPlane.ready }),
      );
      app.get(
        `${prefix}/config`,
        {
          schema: {
            tags,
            summary: "Triton's model configuration (model configuration extension)",
            params,
            response: { 200: V2ModelConfig, ...errors },
          },
        },
        async (req) => encodeModelConfig(model(req.params), config),
      );
      app.get(
        `${prefix}/stats`,
        {
          schema: {
            tags,
            summary: 'Model statistics per mode (Triton statistics extension)',
            params,
            response: { 200: V2ModelStats, ...errors },
          },
        },
        async (req) => v2.encodeStatistics(app.dataPlane.modelStatistics(req.params.name, req.params.version)),
      );
    }
  };
