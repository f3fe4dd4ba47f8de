import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../../config.js';
import { REPORT_CSP } from '../../report/report.js';
import * as v1 from '../protocol/v1.js';
import { requestContext } from '../request-context.js';
import {
  ErrorBody,
  ModelEntry,
  ModelList,
  ModelParams,
  PredictBody,
  PredictResponse,
  ReportPage,
  UncertaintyResponse,
  VersionQuery,
  uncertaintyBody,
} from '../schemas/v1.js';

const errors = {
  400: ErrorBody,
  401: ErrorBody,
  404: ErrorBody,
  413: ErrorBody,
  422: ErrorBody,
  503: ErrorBody,
  504: ErrorBody,
};

/** The report page's own policy (inline style and SVG only), which a header can also keep out of frames. */
export const REPORT_PAGE_CSP = `${REPORT_CSP}; frame-ancestors 'none'`;

/** The REST API: model cards, predict (dropout off) and uncertainty (Monte Carlo dropout). Errors: Fastify's shape (plugins/errors.ts). */
export const v1Routes =
  (config: Config): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/v1/models',
      { schema: { tags: ['models'], summary: 'List the served models', response: { 200: ModelList } } },
      async () => ({ models: app.repository.list().map((m) => v1.encodeModel(m, app.repository.versions(m.name))) }),
    );
    app.get(
      '/v1/models/:name',
      {
        schema: {
          tags: ['models'],
          summary: 'One model card',
          params: ModelParams,
          querystring: VersionQuery,
          response: { 200: ModelEntry, ...errors },
        },
      },
      async (req) =>
        v1.encodeModel(
          app.dataPlane.model(req.params.name, req.query.version),
          app.repository.versions(req.params.name),
        ),
    );
    app.get(
      '/v1/models/:name/report',
      {
        schema: {
          tags: ['models'],
          summary:
            'The model report page (HTML): training, tuning, calibration and uncertainty plots, the card and the command',
          params: ModelParams,
          querystring: VersionQuery,
          response: {
            200: {
              description: 'The page (content-security-policy: inline style only, no frames)',
              content: { 'text/html': { schema: ReportPage } },
            },
            400: ErrorBody,
            401: ErrorBody,
            404: ErrorBody,
            503: ErrorBody,
          },
        },
      },
      async (req, reply) => {
        const html = await app.repository.report(req.params.name, req.query.version);
        return reply.type('text/html; charset=utf-8').header('content-security-policy', REPORT_PAGE_CSP).send(html);
      },
    );
    app.post(
      '/v1/models/:name/predict',
      {
        schema: {
          tags: ['inference'],
          summary: 'Predict with dropout off (eval mode)',
          params: ModelParams,
          querystring: VersionQuery,
          body: PredictBody,
          response: { 200: PredictResponse, ...errors },
        },
      },
      async (req, reply) =>
        v1.encodePredict(
          await app.dataPlane.predict({
            ...v1.predictRequest(req.params.name, req.body, req.query.version),
            ...requestContext(req, reply),
          }),
        ),
    );
    app.post(
      '/v1/models/:name/uncertainty',
      {
        schema: {
          tags: ['inference'],
          summary:
            'Monte Carlo dropout: T stochastic passes → mean, spread, intervals (regression) or entropy and mutual information (classification)',
          params: ModelParams,
          querystring: VersionQuery,
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
      async (req, reply) =>
        v1.encodeUncertainty(
          await app.dataPlane.sample({
            ...v1.uncertaintyRequest(req.params.name, req.body, req.query.version),
            ...requestContext(req, reply),
          }),
        ),
    );
  };
