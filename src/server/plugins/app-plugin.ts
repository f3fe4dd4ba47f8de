/**
 * appPlugin(fn): a plugin whose hooks, decorators and handlers apply to the whole app rather than to an
 * encapsulated child context — what fastify-plugin does, through the `skip-override` symbol Fastify
 * reads (fastify/lib/pluginUtils.js), without adding that package.
 */
import type { FastifyPluginAsync } from 'fastify';

export function appPlugin<Options extends object = Record<never, never>>(
  fn: FastifyPluginAsync<Options>,
): FastifyPluginAsync<Options> {
  (fn as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
  return fn;
}
