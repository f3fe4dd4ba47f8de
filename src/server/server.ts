/**
 * The process shell: config → buildApp → listen → load models → ready; close-with-grace on
 * SIGTERM/SIGINT (readiness 503, in-flight requests finish, sessions released, exit 0 within
 * SHUTDOWN_GRACE_MS; a second signal exits at once). A bad model or config exits non-zero.
 */
// First: pins nextTick's tick object maps before anything can collect them (tick-maps.ts says why).
import './tick-maps.js';
import closeWithGrace from 'close-with-grace';
import { type Config, ConfigError, loadConfig } from '../config.js';
import { ModelLoadError } from '../model/errors.js';
import { buildApp } from './app.js';

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dropout-serve: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const app = await buildApp({
    config,
    logger: {
      level: config.LOG_LEVEL,
      redact: ['req.headers.authorization'],
      ...(process.stdout.isTTY
        ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } }
        : {}),
    },
  });

  closeWithGrace(
    { delay: config.SHUTDOWN_GRACE_MS, logger: { error: (m: unknown) => app.log.error(m) } },
    async ({ signal, err }) => {
      if (err) app.log.error({ err }, 'fatal error, closing');
      else app.log.info({ signal }, 'shutting down: refusing new requests, finishing in-flight ones');
      app.repository.state = 'closing';
      await app.close();
      app.log.info('closed');
    },
  );

  await app.listen({ port: config.PORT, host: config.HOST });
  try {
    await app.loadModels();
  } catch (err) {
    if (err instanceof ModelLoadError) {
      app.log.fatal({ error: err.message }, 'cannot load models');
      process.stderr.write(`dropout-serve: ${err.message}\n`);
      await app.close();
      process.exit(1);
    }
    throw err;
  }
  app.log.info({ models: app.repository.names(), url: `http://${config.HOST}:${config.PORT}` }, 'ready');
}

main().catch((err) => {
  process.stderr.write(`dropout-serve: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
