/** zod schemas of the V2 model repository extension (Triton's extension_model_repository.md, KServe's answers). */
import { z } from 'zod';

export const RepositoryParams = z.object({
  name: z.string().min(1).max(200).describe('Model name (folder under MODELS_DIR)'),
});

export const IndexRequest = z
  .object({
    ready: z
      .boolean()
      .optional()
      .describe('Only the model versions ready for inference (default false: every version on disk or served)'),
  })
  .nullish()
  .describe('Optional: the body may be empty');

export const IndexResponse = z
  .array(
    z.object({
      name: z.string(),
      version: z.string().optional(),
      state: z.enum(['READY', 'LOADING', 'UNAVAILABLE']).describe("Triton's model states"),
      reason: z.string().describe('Why a version is not served (empty when READY, unless a reload of it failed)'),
    }),
  )
  .describe('One entry per model version on disk or served');

const Parameters = z.record(z.string(), z.unknown()).optional();

export const LoadRequest = z
  .object({
    parameters: Parameters.describe(
      'Triton\'s "config" and "file:<version>/<name>" (a model sent in the request) are not supported',
    ),
  })
  .nullish()
  .describe('Optional: the body may be empty');

export const LoadResponse = z.object({
  name: z.string(),
  load: z.literal(true),
  versions: z.array(z.string()).describe('The versions served after the load'),
});

export const UnloadRequest = z
  .object({ parameters: Parameters.describe('"unload_dependents" is accepted and has no effect (no ensembles here)') })
  .nullish()
  .describe('Optional: the body may be empty');

export const UnloadResponse = z.object({ name: z.string(), unload: z.literal(true) });
