/**
 * Refusing Monte Carlo before Fastify (issue 20, the retry storm). While the Monte Carlo lane is full,
 * a `POST /v1/models/{name}/uncertainty` is answered from the HTTP server's 'request' event, before
 * Fastify routes it, runs its hooks or reads its body: the same 503 (status, headers, body) the route's
 * admission check gives (routes/v1-inference.ts, the fallback, and the path of `app.inject`), paced
 * the same way (refusal-pacing.ts), counted in the same metrics and summarised in the same log line
 * (a line a second). The answer would differ only where a hook before the route's could answer first,
 * so the early path is off with API_KEY (401), CORS_ORIGIN (its headers) or RATE_LIMIT_MAX (429), and
 * while the server is not ready (the readiness gate's 503). Fastify's per-request log lines ("incoming
 * request", "request completed", info level) are not written for an early refusal.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../../config.js';
import { OverloadedError } from '../../serving/errors.js';
import * as v1 from '../protocol/v1.js';
import { appPlugin } from './app-plugin.js';
import { logRefusal } from './errors.js';
import { paceRefusal } from './refusal-pacing.js';
import { SECURITY_HEADERS, genReqId } from './security-headers.js';

/** The route whose requests are always Monte Carlo, and its label in the HTTP metrics. */
const UNCERTAINTY_ROUTE = '/v1/models/:name/uncertainty';
const UNCERTAINTY_URL = /^\/v1\/models\/[^/?#]+\/uncertainty(?:\?|$)/;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export const earlyRefusal = appPlugin<{ config: Config }>(async (app, { config }) => {
  if (config.API_KEY || config.CORS_ORIGIN || config.RATE_LIMIT_MAX > 0) return;
  const server = app.server;
  const fastify = server.listeners('request') as Handler[];
  if (fastify.length !== 1) return; // not the server Fastify made (a serverFactory): leave it alone
  const duration = app.metrics.httpDuration.at('POST', UNCERTAINTY_ROUTE, '503');
  /** The refusal a request would get now, or null. */
  const plane = app.dataPlane;
  const refusal = (req: IncomingMessage): OverloadedError | null => {
    // an empty Monte Carlo queue refuses nothing (MAX_QUEUE ≥ 1): every request while the lane is
    // not full pays one comparison, not the URL's test
    if (plane.mcWaiting === 0 || req.method !== 'POST' || !UNCERTAINTY_URL.test(req.url ?? '')) return null;
    if (app.repository.state !== 'ready') return null;
    try {
      plane.checkMcAdmission();
      return null;
    } catch (err) {
      if (err instanceof OverloadedError) return err;
      throw err;
    }
  };
  // the scheduler hands out the same error while its answer is the same: its body is written once
  let answered: { err: OverloadedError; body: string; length: string } | null = null;
  const answer = (err: OverloadedError) => {
    if (answered?.err !== err) {
      const body = JSON.stringify(v1.errorBody(err.status, err.message, v1.errorCode(err.kind)));
      answered = { err, body, length: String(Buffer.byteLength(body)) };
    }
    return answered;
  };
  const handler: Handler = (req, res) => {
    const err = refusal(req);
    if (!err) return fastify[0]!(req, res);
    const started = performance.now();
    app.idleGc?.activity();
    logRefusal(app.log, err.message);
    const retryAfter = err.retryAfterSeconds ?? 1;
    const { body, length } = answer(err);
    res.writeHead(err.status, {
      ...SECURITY_HEADERS,
      'x-request-id': genReqId(req),
      'retry-after': String(retryAfter),
      'content-type': 'application/json; charset=utf-8',
      'content-length': length,
    });
    paceRefusal(req, res, retryAfter);
    res.end(body, () => duration.observe((performance.now() - started) / 1000));
  };
  server.removeAllListeners('request');
  server.on('request', handler);
});
