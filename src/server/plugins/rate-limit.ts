/** An optional per-client request limit (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW_MS; 429), health and metrics exempt. */
import rateLimit from '@fastify/rate-limit';
import { appPlugin } from './app-plugin.js';
import { isPublic } from './auth.js';

export const rateLimitPlugin = appPlugin<{ max: number; windowMs: number }>(async (app, { max, windowMs }) => {
  if (max <= 0) return;
  await app.register(rateLimit, {
    max,
    timeWindow: windowMs,
    allowList: (req) => isPublic(req.url),
    errorResponseBuilder: (_req, ctx) => ({
      statusCode: 429,
      error: 'Too Many Requests',
      message: `rate limit: at most ${ctx.max} requests per ${ctx.after}; retry later`,
      code: 'DS_RATE_LIMITED',
    }),
  });
});
