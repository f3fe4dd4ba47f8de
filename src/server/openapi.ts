/** The OpenAPI document as the code defines it, with the default configuration's limits. */
import { loadConfig } from '../config.js';
import { buildApp } from './app.js';

export async function generateOpenApiObject(): Promise<Record<string, unknown>> {
  const app = await buildApp({ config: loadConfig({}) });
  await app.ready();
  const doc = app.swagger() as unknown as Record<string, unknown>;
  await app.close();
  return doc;
}

export async function generateOpenApi(): Promise<string> {
  return `${JSON.stringify(await generateOpenApiObject(), null, 2)}\n`;
}
