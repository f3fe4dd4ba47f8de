import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../../config.js';
import * as v1 from '../protocol/v1.js';
import { withContext } from '../request-context.js';
import {
  ModelParams,
  PredictBody,
  PredictResponse,
  UncertaintyResponse,
  VersionQuery,
  uncertaintyBody,
} from '../schemas/v1.js';
import { V1_ERRORS as errors } from './v1-errors.js';

/** POST /v1/models/{name}/predict (dropout off) and /uncertainty (Monte Carlo dropout). */
export const v1InferenceRoutes =
  (config: Config): FastifyPluginAsyncZod =>
  async (app) => {
    const tags = ['inference'];
    const one = { params: ModelParams, querystring: VersionQuery };
    app.post(
      '/v1/models/:name/predict',
      {
        schema: {
          tags,
          summary: 'Predict with dropout off (eval mode)',
          ...one,
          body: PredictBody,
          response: { 200: PredictResponse, ...errors },
        },
      },
      // a promise chain, not an async function awaiting one: a promise and a suspension fewer per request
      (req, reply) =>
        app.dataPlane
          .predict(withContext(v1.predictRequest(req.params.name, req.body, req.query.version), req, reply))
          .then(v1.encodePredict),
    );
    app.post(
      '/v1/models/:name/uncertainty',
      {
        schema: {
          tags,
          summary:
            'Monte Carlo dropout: T stochastic passes → mean, spread, intervals (regression) or entropy and mutual information (classification)',
          ...one,
          body: uncertaintyBody(config),
          response: { 200: UncertaintyResponse, ...errors },
        },
        // a full Monte Carlo queue refuses before the body is read and parsed
        onRequest: (_req, _reply, done) => {
          try {
            app.dataPlane.checkMcAdmission();
            done();
          } catch (err) {
            done(err as Error);
          }
        },
      },
      (req, reply) =>
        app.dataPlane
          .sample(withContext(v1.uncertaintyRequest(req.params.name, req.body, req.query.version), req, reply))
          .then(v1.encodeUncertainty),
    );
  };
