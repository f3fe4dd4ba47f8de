/** The OpenAPI document (@fastify/swagger, from the routes' zod schemas), GET /openapi.json and Swagger UI at /docs. */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import { VERSION } from '../../version.js';
import { appPlugin } from './app-plugin.js';

/** Registered before the routes: swagger collects them as they are added. */
export const docs = appPlugin(async (app) => {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'dropout-serve',
        version: VERSION,
        description:
          'Serve dropout neural networks with Monte Carlo dropout uncertainty. /v1: REST (predict with dropout off, uncertainty with T stochastic passes). /v2: KServe Open Inference Protocol; MC with parameters.mc_samples.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'Needed when the server runs with API_KEY' },
          admin: {
            type: 'http',
            scheme: 'bearer',
            description:
              'ADMIN_API_KEY: the model management routes (/v2/repository); they answer 404 when the server runs without it',
          },
        },
      },
      tags: [
        { name: 'inference' },
        { name: 'models' },
        { name: 'v2' },
        { name: 'repository' },
        { name: 'health' },
        { name: 'meta' },
      ],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    transformStaticCSP: (header) => header.replace(/\s*upgrade-insecure-requests;?/, ''),
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
});
