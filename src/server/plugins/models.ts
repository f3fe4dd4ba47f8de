/**
 * The models: decorates `app.repository` (ModelRepository: discovery, loading, swapping) and
 * `app.dataPlane` (DataPlane: limits, batching, workers), wires their events to the logs and metrics,
 * and gates requests on readiness (503 while loading or shutting down; health and metrics stay open).
 * `app.loadModels()` loads everything (server.ts calls it after listening; tests before injecting), then
 * starts the hot reload (`app.modelWatcher`, with MODELS_WATCH).
 * On close, the hot reload stops, requests in flight finish, then the models and the worker threads are
 * released.
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../config.js';
import { DataPlane } from '../../serving/dataplane.js';
import { NotReadyError } from '../../serving/errors.js';
import { ModelRepository, type RepositoryEvents, runtimeOptions } from '../../serving/repository.js';
import { RepositoryWatcher } from '../../serving/watcher.js';
import { metricsObserver, repositoryMetrics } from '../metrics.js';
import { appPlugin } from './app-plugin.js';
import { isPublic } from './auth.js';

declare module 'fastify' {
  interface FastifyInstance {
    repository: ModelRepository;
    dataPlane: DataPlane;
    /** The hot reload (MODELS_WATCH), null when off. */
    modelWatcher: RepositoryWatcher | null;
    /** Load every configured model; throws ModelLoadError (the server then exits 1). */
    loadModels(): Promise<void>;
  }
}

/** The repository's events: the metrics, and a log line each. `repository` is read when an event fires. */
function repositoryEvents(app: FastifyInstance, repository: () => ModelRepository): RepositoryEvents {
  const metered = repositoryMetrics(app.metrics);
  return {
    loaded: (m, source, seconds) => {
      metered.loaded?.(m, source, seconds);
      app.idleGc?.loaded();
      app.log.info(
        { model: m.name, version: m.version, ...m.loadInfo(), ms_until_served: Math.round(seconds * 1000) },
        'model loaded',
      );
    },
    failed: (source, error) => {
      metered.failed?.(source, error);
      // at start-up the failure is logged by loadModels (skipped) or server.ts (fatal)
      if (repository().state !== 'ready') return;
      const served = repository().versions(source.name);
      app.log.error(
        {
          model: source.name,
          version: source.version,
          path: source.file,
          error: error.message,
          served_versions: served,
        },
        served.length ? 'model load failed; the served version keeps serving' : 'model load failed',
      );
    },
    unloaded: (m, reason) => {
      metered.unloaded?.(m, reason);
      app.log.info(
        { model: m.name, version: m.version, reason },
        reason === 'replaced'
          ? 'model version replaced; it closes after its last request'
          : 'model unloaded; it closes after its last request',
      );
    },
    closed: (m) =>
      app.log.info({ model: m.name, version: m.version }, 'model closed (sessions and worker copies released)'),
    served: (n) => metered.served?.(n),
  };
}

/** `app.loadModels()`: every model, the log lines of what was skipped, then the hot reload. */
function modelLoader(
  app: FastifyInstance,
  config: Config,
  repository: ModelRepository,
  dataPlane: DataPlane,
  watcher: RepositoryWatcher | null,
): () => Promise<void> {
  return async () => {
    const report = await repository.loadAll();
    for (const f of report.failed)
      app.log.error(
        { model: f.source.name, path: f.source.file, error: f.error },
        'model skipped (MODELS_SKIP_INVALID)',
      );
    for (const s of report.skipped) app.log.warn({ reason: s }, 'folder skipped');
    if (dataPlane.workerThreads > 0)
      app.log.info({ threads: dataPlane.workerThreads, min_work: config.MC_WORKER_MIN_WORK }, 'MC worker pool ready');
    if (watcher) {
      watcher.start();
      app.log.info(
        { poll_ms: config.MODELS_POLL_MS, dir: config.MODEL_PATH ?? config.MODELS_DIR },
        'hot reload on (MODELS_WATCH)',
      );
    }
  };
}

/**
 * The readiness gate (request-gate.ts asks it of every request): a 503 while loading or shutting
 * down, except for health and metrics; undefined when serving.
 */
export function notReady(repository: ModelRepository, url: string): NotReadyError | undefined {
  if (repository.state === 'ready' || isPublic(url)) return undefined;
  return new NotReadyError(
    repository.state === 'loading' ? 'models are loading; retry shortly' : 'the server is shutting down',
  );
}

/** Keep-alive ends while shutting down. */
function endKeepAliveWhenClosing(app: FastifyInstance, repository: ModelRepository): void {
  // callback-style: an async hook costs a promise per request
  // while shutting down, end each keep-alive connection after its response so that close() can finish
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (repository.state === 'closing') reply.header('connection', 'close');
    done(null, payload);
  });
}

export const models = appPlugin<{ config: Config }>(async (app, { config }) => {
  const repository: ModelRepository = new ModelRepository({
    modelsDir: config.MODELS_DIR,
    modelPath: config.MODEL_PATH,
    skipInvalid: config.MODELS_SKIP_INVALID,
    runtime: runtimeOptions(config),
    versionPolicy: config.MODEL_VERSION_POLICY,
    events: repositoryEvents(app, () => repository),
  });
  const dataPlane = new DataPlane(repository, config, metricsObserver(app.metrics));
  const watcher = config.MODELS_WATCH
    ? new RepositoryWatcher(repository, {
        intervalMs: config.MODELS_POLL_MS,
        onError: (err) => app.log.error({ error: err.message }, 'hot reload: poll failed'),
      })
    : null;
  app.metrics.queueSource = () => dataPlane.queueDepth();
  app.decorate('repository', repository);
  app.decorate('dataPlane', dataPlane);
  app.decorate('modelWatcher', watcher);
  app.decorate('loadModels', modelLoader(app, config, repository, dataPlane, watcher));
  endKeepAliveWhenClosing(app, repository);
  app.addHook('onClose', async () => {
    await watcher?.stop();
    await repository.close();
    await dataPlane.close();
  });
});
