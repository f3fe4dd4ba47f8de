/**
 * buildApp(opts) → a Fastify instance with every plugin and route, never listening (tests use
 * app.inject; server.ts listens). The models are loaded by `app.loadModels()` (plugins/models.ts).
 * Plugin order matters: hooks run in registration order (the request gate: headers, auth, readiness;
 * then CORS, rate limit);
 * the validator, the error handler (a route keeps the handler of the moment it is added) and swagger
 * (it collects routes as they are added) come before any route.
 */
import type { ServerOptions } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Config } from '../config.js';
import { VERSION } from '../version.js';
import { lazyChildLogger } from './lazy-logger.js';
import { bodyBudget } from './plugins/body-budget.js';
import { corsPlugin } from './plugins/cors.js';
import { docs } from './plugins/docs.js';
import { earlyRefusal } from './plugins/early-refusal.js';
import { errors } from './plugins/errors.js';
import { idleConnections } from './plugins/idle-connections.js';
import { idleGc } from './plugins/idle-gc.js';
import { metrics } from './plugins/metrics.js';
import { models } from './plugins/models.js';
import { rateLimitPlugin } from './plugins/rate-limit.js';
import { requestGate } from './plugins/request-gate.js';
import { genReqId } from './plugins/security-headers.js';
import { validation } from './plugins/validation.js';
import { healthRoutes } from './routes/health.js';
import { repositoryRoutes } from './routes/repository.js';
import { v1Routes } from './routes/v1.js';
import { v2Routes } from './routes/v2.js';

export interface AppOptions {
  config: Config;
  /** Fastify logger options; false (the default) for tests. */
  logger?: FastifyServerOptions['logger'];
}

/** How often Node looks for requests over their headers or request timeout (its default: 30 s). */
const CONNECTIONS_CHECK_MS = 1000;

/**
 * Slow clients (Fastify's docs: set requestTimeout when there is no reverse proxy): a request must
 * arrive whole, headers and body, within REQUEST_TIMEOUT_MS (Node answers 408 and closes; a stalled
 * upload's buffers are then released), the headers within at most 10 s of it, checked every second;
 * a connection silent for CONNECTION_TIMEOUT_MS is closed (longer than MAX_REQUEST_MS, the longest an
 * answer may take) by one sweep (plugins/idle-connections.ts), not by Node's per-socket timer.
 */
function slowClientOptions(config: Config): { requestTimeout: number; http: ServerOptions } {
  const requestTimeout = config.REQUEST_TIMEOUT_MS;
  return {
    requestTimeout,
    http: {
      requestTimeout,
      headersTimeout: Math.min(10_000, requestTimeout),
      connectionsCheckingInterval: CONNECTIONS_CHECK_MS,
    },
  };
}

export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const { config } = opts;
  const app = Fastify({
    logger: opts.logger ?? false,
    // a request's child logger is made when it first logs (lazy-logger.ts)
    ...(opts.logger ? { childLoggerFactory: lazyChildLogger } : {}),
    bodyLimit: config.BODY_LIMIT_BYTES,
    requestIdHeader: false,
    genReqId,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ...slowClientOptions(config),
  });
  await app.register(validation);
  await app.register(errors);
  await app.register(docs);
  await app.register(requestGate, { apiKey: config.API_KEY });
  await app.register(bodyBudget, { maxBytes: config.MAX_BODY_BYTES_IN_FLIGHT, bodyLimit: config.BODY_LIMIT_BYTES });
  await app.register(metrics);
  if (config.IDLE_GC) await app.register(idleGc);
  await app.register(idleConnections, { timeoutMs: config.CONNECTION_TIMEOUT_MS });
  await app.register(models, { config });
  await app.register(earlyRefusal, { config });
  await app.register(corsPlugin, { origin: config.CORS_ORIGIN });
  await app.register(rateLimitPlugin, { max: config.RATE_LIMIT_MAX, windowMs: config.RATE_LIMIT_WINDOW_MS });
  await app.register(healthRoutes);
  await app.register(v1Routes(config));
  await app.register(v2Routes(config, VERSION), { prefix: '/v2' });
  await app.register(repositoryRoutes(config.ADMIN_API_KEY), { prefix: '/v2/repository' });
  return app;
}
