/**
 * The V2 model repository extension's codec (Triton docs/protocol/extension_model_repository.md; KServe
 * answers load and unload with {name, load: true} and {name, unload: true}). Pure: no Fastify here; the
 * work is the repository's (src/serving/repository.ts), the routes are routes/repository.ts.
 */
import { InputError } from '../../model/errors.js';

export interface LoadBody {
  parameters?: Record<string, unknown>;
}

/**
 * Check a load request's parameters: Triton's "config" and "file:…" (a model configuration or files sent
 * in the request) are refused, since models load only from the repository's folder.
 */
export function checkLoadParameters(body: LoadBody | null | undefined): void {
  for (const key of Object.keys(body?.parameters ?? {})) {
    if (key === 'config' || key.startsWith('file:')) {
      throw new InputError(
        `parameters.${key.slice(0, 100)}: loading a model sent in the request is not supported; put its files in MODELS_DIR/<name>/ (or <name>/<version>/) and load it by name`,
      );
    }
  }
}

export const encodeLoad = (name: string, versions: string[]): { name: string; load: true; versions: string[] } => ({
  name,
  load: true,
  versions,
});

export const encodeUnload = (name: string): { name: string; unload: true } => ({ name, unload: true });
