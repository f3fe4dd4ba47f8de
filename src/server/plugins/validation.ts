/**
 * Request validation and response serialisation. zod validates (fastify-type-provider-zod); the predict
 * and uncertainty bodies first try a fast path that accepts only what zod would accept, unchanged
 * (schemas/fast-path.ts), and leave everything else to zod. Responses are built by our own code and their
 * zod schemas document them (OpenAPI); encoding them through zod on every request cost ~10% of predict
 * throughput, so they are serialised directly. JSON only: a text/plain body is a 415.
 */
import { validatorCompiler } from 'fastify-type-provider-zod';
import { fastPathOf } from '../schemas/fast-path.js';
import { appPlugin } from './app-plugin.js';

export const validation = appPlugin(async (app) => {
  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler((route) => {
    const zod = validatorCompiler(route as Parameters<typeof validatorCompiler>[0]);
    const fast = fastPathOf(route.schema);
    if (!fast) return zod;
    return (data) => {
      const value = fast(data);
      return value === undefined ? zod(data) : { value };
    };
  });
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
});
