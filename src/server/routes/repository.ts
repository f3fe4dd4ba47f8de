import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { auditOutcome, useAdminAuth } from '../plugins/admin.js';
import { useErrorShape } from '../plugins/errors.js';
import { useV2Bodies } from '../plugins/v2-body.js';
import * as v2 from '../protocol/v2.js';
import * as repo from '../protocol/v2-repository.js';
import {
  IndexRequest,
  IndexResponse,
  LoadRequest,
  LoadResponse,
  RepositoryParams,
  UnloadRequest,
  UnloadResponse,
} from '../schemas/repository.js';
import { V2Error } from '../schemas/v2.js';

const errors = { 400: V2Error, 401: V2Error, 404: V2Error, 503: V2Error };
const security = [{ admin: [] }];

/**
 * The V2 model repository extension, registered under /v2/repository: index, load (or reload), unload.
 * Needs ADMIN_API_KEY (plugins/admin.ts: 404 without it, 401 without the right bearer; an audit line
 * per request). Errors in the V2 shape {"error"}; bodies as on the V2 inference routes (JSON with or
 * without a Content-Type, gzip or deflate).
 */
export const repositoryRoutes =
  (adminKey: string | undefined): FastifyPluginAsyncZod =>
  async (app) => {
    useErrorShape(app, v2.errorBody);
    useAdminAuth(app, adminKey);
    // bodies as the V2 inference routes take them: tritonclient posts load/unload as `{}` with no
    // Content-Type, and may gzip them (plugins/v2-body.ts); no route here has a model's raw input
    useV2Bodies(app, { rawInput: () => undefined });
    const tags = ['repository'];
    app.post(
      '/index',
      {
        schema: {
          tags,
          security,
          summary: 'Every model version on disk or served, with its state',
          body: IndexRequest,
          response: { 200: IndexResponse, ...errors },
        },
      },
      async (req) => {
        const index = app.repository.index(req.body?.ready ?? false);
        auditOutcome(req, `${index.length} entries`);
        return index;
      },
    );
    app.post(
      '/models/:name/load',
      {
        schema: {
          tags,
          security,
          summary: 'Load a model, or reload it: the versions the policy picks, read again and swapped in',
          params: RepositoryParams,
          body: LoadRequest,
          response: { 200: LoadResponse, ...errors },
        },
      },
      async (req) => {
        repo.checkLoadParameters(req.body);
        const versions = await app.repository.loadByName(req.params.name);
        auditOutcome(req, `serving versions ${versions.join(', ')}`);
        return repo.encodeLoad(req.params.name, versions);
      },
    );
    app.post(
      '/models/:name/unload',
      {
        schema: {
          tags,
          security,
          summary:
            'Unload every version of a model (after its requests in flight finish); hot reload leaves it alone until it is loaded again',
          params: RepositoryParams,
          body: UnloadRequest,
          response: { 200: UnloadResponse, ...errors },
        },
      },
      async (req) => {
        await app.repository.unload(req.params.name);
        auditOutcome(req, 'unloaded');
        return repo.encodeUnload(req.params.name);
      },
    );
  };
