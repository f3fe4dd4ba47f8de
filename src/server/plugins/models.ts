/**
 * The models: decorates `app.repository` (ModelRepository: discovery, loading, swapping) and
 * `app.dataPlane` (DataPlane: limits, batching, workers), wires their events to the logs and metrics,
 * and gates requests on readiness (503 while loading or shutting down; health and metrics stay open).
 * `app.loadModels()` loads everything (server.ts calls it after listening; tests before injecting).
 * On close, requests in flight finish, then the models and the worker threads are released.
 */
import type { Config } from '../../config.js';
import { DataPlane } from '../../serving/dataplane.js';
import { NotReadyError } from '../../serving/errors.js';
import { ModelRepository, runtimeOptions } from '../../serving/repository.js';
import { metricsObserver } from '../metrics.js';
import { appPlugin } from './app-plugin.js';
import { isPublic } from './auth.js';

declare module 'fastify' {
  interface FastifyInstance {
    repository: ModelRepository;
    dataPlane: DataPlane;
    /** Load every configured model; throws ModelLoadError (the server then exits 1). */
    loadModels(): Promise<void>;
  }
}

export const models = appPlugin<{ config: Config }>(async (app, { config }) => {
  const repository = new ModelRepository({
    modelsDir: config.MODELS_DIR,
    modelPath: config.MODEL_PATH,
    skipInvalid: config.MODELS_SKIP_INVALID,
    runtime: runtimeOptions(config),
    events: {
      loaded: (m) => app.log.info({ model: m.name, ...m.loadInfo() }, 'model loaded'),
      served: (n) => app.metrics.modelsLoaded.set(n),
    },
  });
  const dataPlane = new DataPlane(repository, config, metricsObserver(app.metrics));
  app.metrics.queueSource = () => dataPlane.queueDepth();
  app.decorate('repository', repository);
  app.decorate('dataPlane', dataPlane);
  app.decorate('loadModels', async () => {
    const report = await repository.loadAll();
    for (const f of report.failed) app.log.error({ model: f.source.name, path: f.source.file, error: f.error }, 'model skipped (MODELS_SKIP_INVALID)');
    for (const s of report.skipped) app.log.warn({ reason: s }, 'folder skipped');
    if (dataPlane.workerThreads > 0) app.log.info({ threads: dataPlane.workerThreads, min_work: config.MC_WORKER_MIN_WORK }, 'MC worker pool ready');
  });

  // callback-style hooks: they run on every request, and async ones cost a promise each
  app.addHook('onRequest', (req, _reply, done) => {
    if (repository.state !== 'ready' && !isPublic(req.url)) {
      return done(new NotReadyError(repository.state === 'loading' ? 'models are loading; retry shortly' : 'the server is shutting down'));
    }
    done();
  });
  // while shutting down, end each keep-alive connection after its response so that close() can finish
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (repository.state === 'closing') reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onClose', async () => {
    await repository.close();
    await dataPlane.close();
  });
});
