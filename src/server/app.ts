/**
 * buildApp(opts) → a Fastify instance with every route, never listening (tests use app.inject;
 * server.ts listens). Models are handed to `app.service` by the caller (see loadModelsInto).
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { hasZodFastifySchemaValidationErrors, jsonSchemaTransform, validatorCompiler } from 'fastify-type-provider-zod';
import type { Config } from '../config.js';
import { DEFAULT_RUNTIME_OPTIONS, type RuntimeOptions } from '../model/model.js';
import { McPool } from '../serving/pool.js';
import { loadAll } from '../serving/repository.js';
import { VERSION } from '../version.js';
import { NotReady, Unauthorized } from './errors.js';
import { fastPathOf } from './schemas/fast-path.js';
import { type Metrics, createMetrics } from './metrics.js';
import { healthRoutes } from './routes/health.js';
import { v1Routes } from './routes/v1.js';
import { v2Routes } from './routes/v2.js';
import { InferenceService } from './service.js';
import { V2Error } from './protocol/v2.js';

declare module 'fastify' {
  interface FastifyInstance {
    service: InferenceService;
    metrics: Metrics;
  }
}

export interface AppOptions {
  config: Config;
  /** Fastify logger options; false (the default) for tests. */
  logger?: FastifyServerOptions['logger'];
}

const REQUEST_ID_RE = /^[\w.:-]{1,128}$/;
const REQUEST_ID_PREFIX = randomUUID().slice(0, 8);
let requestCounter = 0;
const PUBLIC_PREFIXES = ['/health/', '/v2/health/', '/metrics'];

function isPublic(url: string): boolean {
  const path = url.split('?')[0]!;
  return PUBLIC_PREFIXES.some((p) => path === p.replace(/\/$/, '') || path.startsWith(p));
}

/**
 * Security headers for a JSON API: the set the OWASP REST Security Cheat Sheet lists, written from a
 * constant (@fastify/helmet computes its larger browser-page set on every request, which halved predict
 * throughput; the bytes of the extra browser headers cost another third). Nothing is ever rendered, so
 * the CSP forbids everything; the Swagger UI under /docs replaces it with its own (staticCSP).
 */
const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'strict-transport-security': 'max-age=31536000',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
} as const;

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

interface ZodIssueLike {
  code?: string;
  path: PropertyKey[];
  message: string;
  errors?: ZodIssueLike[][];
}

/** zod reports a failed union as one "Invalid input"; follow the branch that got furthest instead. */
function resolveIssue(issue: ZodIssueLike): { path: PropertyKey[]; message: string } {
  if (issue.code !== 'invalid_union' || !issue.errors?.length) return issue;
  const best = issue.errors
    .flat()
    .map(resolveIssue)
    .reduce((a, b) => (b.path.length > a.path.length ? b : a));
  return { path: [...issue.path, ...best.path], message: best.message };
}

/** Turn any error into [status, message]; 5xx messages are hidden from the client. */
function describeError(err: FastifyError | Error): { status: number; message: string; code?: string } {
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = (err as FastifyError).validationContext ?? 'body';
    const issues = (err as FastifyError).validation!.slice(0, 3).map((v) => {
      const resolved = resolveIssue({ code: v.keyword, path: v.instancePath.split('/').filter(Boolean), message: v.message ?? 'invalid', ...(v.params as object) });
      const path = resolved.path.map((p) => (/^\d+$/.test(String(p)) ? `[${String(p)}]` : `.${String(p)}`)).join('');
      return `${where}${path}: ${resolved.message}`;
    });
    return { status: 400, message: issues.join('; '), code: 'FST_ERR_VALIDATION' };
  }
  if (err instanceof V2Error) return { status: err.statusCode, message: err.message };
  const status = (err as FastifyError).statusCode;
  const code = (err as FastifyError).code;
  // client errors, and our own 503s (loading, shutting down), carry their message to the client
  if (typeof status === 'number' && ((status >= 400 && status < 500) || code?.startsWith('DS_'))) return { status, message: err.message, code };
  return { status: typeof status === 'number' && status >= 500 ? status : 500, message: 'internal server error' };
}

export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const { config } = opts;
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: config.BODY_LIMIT_BYTES,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      // a process-unique prefix and a counter: unique across replicas, cheaper than a UUID per request
      return typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : `${REQUEST_ID_PREFIX}-${(requestCounter++).toString(36)}`;
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });
  // JSON only: a text/plain body is a 415, not a string that fails validation
  app.removeContentTypeParser('text/plain');
  // zod validates; the predict and uncertainty bodies first try a fast path that accepts only what zod
  // would accept, unchanged (schemas/fast-path.ts), and leaves everything else to zod
  app.setValidatorCompiler((route) => {
    const zod = validatorCompiler(route as Parameters<typeof validatorCompiler>[0]);
    const fast = fastPathOf(route.schema);
    if (!fast) return zod;
    return (data) => {
      const value = fast(data);
      return value === undefined ? zod(data) : { value };
    };
  });
  // Responses are built by our own code and their zod schemas document them (OpenAPI); encoding them
  // through zod on every request cost ~10% of predict throughput, so they are serialised directly.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  const keyDigest = config.API_KEY ? digest(config.API_KEY) : null;
  const metrics = createMetrics();
  app.decorate('metrics', metrics);
  app.decorate('service', new InferenceService(config, metrics));

  // Callback-style hooks: they run on every request, and async ones cost a promise each.
  app.addHook('onRequest', (req, reply, done) => {
    reply.headers(SECURITY_HEADERS);
    reply.header('x-request-id', req.id);
    if (config.API_KEY && !isPublic(req.url)) {
      const auth = req.headers.authorization ?? '';
      const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
      // constant-time: compare fixed-length digests
      if (!timingSafeEqual(digest(token), keyDigest!)) {
        reply.header('www-authenticate', 'Bearer');
        return done(new Unauthorized());
      }
    }
    if (app.service.state !== 'ready' && !isPublic(req.url)) {
      return done(new NotReady(app.service.state === 'loading' ? 'models are loading; retry shortly' : 'the server is shutting down'));
    }
    done();
  });
  // while shutting down, end each keep-alive connection after its response so that close() can finish
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (app.service.state === 'closing') reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onResponse', (req, reply, done) => {
    metrics.httpDuration.observeValues([req.method, req.routeOptions.url ?? 'unmatched', String(reply.statusCode)], reply.elapsedTime / 1000);
    done();
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const { status, code, message: described } = describeError(err);
    const message =
      code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? `content-type "${String(req.headers['content-type'] ?? '').slice(0, 100)}" is not supported; send application/json` : described;
    if (status >= 500) req.log.error({ err, req }, 'request failed');
    else req.log.info({ statusCode: status, message }, 'client error');
    if (req.url.startsWith('/v2')) return reply.code(status).send({ error: message });
    return reply.code(status).send({ statusCode: status, error: STATUS_CODES[status] ?? 'Error', message, ...(code ? { code } : {}) });
  });
  app.setNotFoundHandler((req, reply) => {
    const message = `route ${req.method} ${req.url.split('?')[0]!.slice(0, 200)} not found`;
    if (req.url.startsWith('/v2')) return reply.code(404).send({ error: message });
    return reply.code(404).send({ statusCode: 404, error: 'Not Found', message });
  });

  if (config.CORS_ORIGIN) {
    const origins = config.CORS_ORIGIN === '*' ? '*' : config.CORS_ORIGIN.split(',').map((o) => o.trim());
    await app.register(cors, { origin: origins, methods: ['GET', 'POST'], allowedHeaders: ['content-type', 'authorization', 'x-request-id'], exposedHeaders: ['x-request-id'] });
  }
  if (config.RATE_LIMIT_MAX > 0) {
    await app.register(rateLimit, {
      max: config.RATE_LIMIT_MAX,
      timeWindow: config.RATE_LIMIT_WINDOW_MS,
      allowList: (req) => isPublic(req.url),
      errorResponseBuilder: (_req, ctx) => ({ statusCode: 429, error: 'Too Many Requests', message: `rate limit: at most ${ctx.max} requests per ${ctx.after}; retry later`, code: 'DS_RATE_LIMITED' }),
    });
  }

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'dropout-serve',
        version: VERSION,
        description:
          'Serve dropout neural networks with Monte Carlo dropout uncertainty. /v1: REST (predict with dropout off, uncertainty with T stochastic passes). /v2: KServe Open Inference Protocol; MC with parameters.mc_samples.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Needed when the server runs with API_KEY' } } },
      tags: [{ name: 'inference' }, { name: 'models' }, { name: 'v2' }, { name: 'health' }, { name: 'meta' }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    transformStaticCSP: (header) => header.replace(/\s*upgrade-insecure-requests;?/, ''),
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/metrics', { schema: { tags: ['meta'], summary: 'Prometheus metrics (text exposition format)' } }, async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  await app.register(healthRoutes);
  await app.register(v1Routes(config));
  await app.register(v2Routes(VERSION));

  app.addHook('onClose', async () => {
    await app.service.close();
  });
  return app;
}

export function runtimeOptions(config: Config): RuntimeOptions {
  return { ...DEFAULT_RUNTIME_OPTIONS, intraOpThreads: config.ORT_INTRA_OP_THREADS, maxRunRows: config.MC_MAX_RUN_ROWS, sharedPrefix: config.MC_SHARED_PREFIX };
}

/** Load the configured models into an app's service and log one line per model. */
export async function loadModelsInto(app: FastifyInstance, config: Config): Promise<void> {
  const report = await loadAll(
    { modelsDir: config.MODELS_DIR, modelPath: config.MODEL_PATH, skipInvalid: config.MODELS_SKIP_INVALID },
    runtimeOptions(config),
    (m) =>
      app.log.info(
        { model: m.name, ...m.loadInfo() },
        'model loaded',
      ),
  );
  for (const f of report.failed) app.log.error({ model: f.source.name, path: f.source.file, error: f.error }, 'model skipped (MODELS_SKIP_INVALID)');
  for (const s of report.skipped) app.log.warn({ reason: s }, 'folder skipped');
  let pool: McPool | null = null;
  const mcModels = report.sources.filter((s) => report.models.get(s.name)?.mcAvailable);
  if (config.MC_WORKERS > 0 && mcModels.length > 0) {
    pool = new McPool(
      mcModels,
      runtimeOptions(config),
      config.MC_WORKERS,
    );
    try {
      await pool.ready();
    } catch (err) {
      await pool.close();
      await Promise.all([...report.models.values()].map((m) => m.close()));
      throw err;
    }
    app.log.info({ threads: config.MC_WORKERS, min_work: config.MC_WORKER_MIN_WORK }, 'MC worker pool ready');
  }
  app.service.setModels(report.models, pool);
}
