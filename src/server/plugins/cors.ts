/** CORS, off unless CORS_ORIGIN is set (`*` or a comma list of origins). */
import cors from '@fastify/cors';
import { appPlugin } from './app-plugin.js';

export const corsPlugin = appPlugin<{ origin: string | undefined }>(async (app, { origin }) => {
  if (!origin) return;
  const origins = origin === '*' ? '*' : origin.split(',').map((o) => o.trim());
  await app.register(cors, {
    origin: origins,
    methods: ['GET', 'POST'],
    allowedHeaders: ['content-type', 'authorization', 'x-request-id'],
    exposedHeaders: ['x-request-id'],
  });
});
