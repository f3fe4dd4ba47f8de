/**
 * The one onRequest hook of the app. Fastify runs the hooks of a phase one after the other through
 * callbacks, each hook a step of its runner; the cheap steps every request takes are plain functions
 * called here in their order instead: the security headers and request id (security-headers.ts), the
 * bearer check with API_KEY (auth.ts), the idle collector's count of activity (idle-gc.ts), and the
 * readiness gate (models.ts: 503 while loading or shutting down). Routes keep their own onRequest
 * hooks (the Monte Carlo admission), which run after this one.
 */
import type { FastifyInstance } from 'fastify';
import { bearerCheck } from './auth.js';
import { appPlugin } from './app-plugin.js';
import { notReady } from './models.js';
import { setSecurityHeaders } from './security-headers.js';

export const requestGate = appPlugin<{ apiKey: string | undefined }>(async (app, { apiKey }) => {
  const auth = bearerCheck(apiKey);
  // the repository and the idle collector are decorated by plugins registered later (models.ts,
  // idle-gc.ts): read from the app when a request comes
  const root: FastifyInstance = app;
  // callback-style: an async hook costs a promise per request
  app.addHook('onRequest', (req, reply, done) => {
    setSecurityHeaders(reply, req.id);
    const refused = auth?.(req, reply);
    if (refused) return done(refused);
    root.idleGc?.activity();
    done(notReady(root.repository, req.url));
  });
});
