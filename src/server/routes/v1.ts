import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../../config.js';
import { REPORT_CSP } from '../../report/report.js';
import { encodeModel, encodeModelCard, encodeModelSummary } from '../protocol/v1-card.js';
import { ErrorBody, ModelCard, ModelEntry, ModelList, ModelParams, ReportPage, VersionQuery } from '../schemas/v1.js';
import { V1_ERRORS as errors } from './v1-errors.js';
import { v1InferenceRoutes } from './v1-inference.js';

/** The report page's own policy (inline style and SVG only), which a header can also keep out of frames. */
export const REPORT_PAGE_CSP = `${REPORT_CSP}; frame-ancestors 'none'`;

const tags = ['models'];

/** The REST API: model listing and cards, the report page, predict and uncertainty. Errors: Fastify's shape (plugins/errors.ts). */
export const v1Routes =
  (config: Config): FastifyPluginAsyncZod =>
  async (app) => {
    const versions = (name: string) => app.repository.versions(name);
    app.get(
      '/v1/models',
      { schema: { tags, summary: 'List the served models: one short record each', response: { 200: ModelList } } },
      async () => ({ models: app.repository.list().map((m) => encodeModelSummary(m, versions(m.name))) }),
    );
    const one = { params: ModelParams, querystring: VersionQuery };
    app.get(
      '/v1/models/:name',
      {
        schema: {
          tags,
          summary: 'One model: its card without raw arrays (conformal scores summarised), inputs, outputs, settings',
          ...one,
          response: { 200: ModelEntry, ...errors },
        },
      },
      async (req) => encodeModel(app.dataPlane.model(req.params.name, req.query.version), versions(req.params.name)),
    );
    app.get(
      '/v1/models/:name/card',
      {
        schema: {
          tags,
          summary:
            'The whole card file (calibration scores, training history, …) plus what the server read from the graph',
          ...one,
          response: { 200: ModelCard, ...errors },
        },
      },
      async (req) =>
        encodeModelCard(app.dataPlane.model(req.params.name, req.query.version), versions(req.params.name)),
    );
    app.get(
      '/v1/models/:name/report',
      {
        schema: {
          tags,
          summary:
            'The model report page (HTML): training, tuning, calibration and uncertainty plots, the card and the command',
          ...one,
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
    await app.register(v1InferenceRoutes(config));
  };
