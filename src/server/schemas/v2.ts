/** zod schemas of the KServe Open Inference Protocol (V2) REST routes. */
import { z } from 'zod';

export const V2Error = z.object({ error: z.string() }).describe('V2 error shape');

export const V2Params = z.object({ name: z.string().min(1).max(200), version: z.string().min(1).max(100).optional() });

const TensorMeta = z.object({ name: z.string(), datatype: z.string(), shape: z.array(z.number().int()) });

export const V2ServerMetadata = z.object({ name: z.string(), version: z.string(), extensions: z.array(z.string()) });
export const V2Live = z.object({ live: z.boolean() });
export const V2Ready = z.object({ ready: z.boolean() });
export const V2ModelReady = z.object({ name: z.string(), ready: z.boolean() });

export const V2ModelMetadata = z.object({
  name: z.string(),
  versions: z.array(z.string()),
  platform: z.string(),
  inputs: z.array(TensorMeta),
  outputs: z.array(TensorMeta),
  parameters: z.record(z.string(), z.unknown()).optional(),
});

const Scalar = z.union([z.number(), z.string(), z.boolean(), z.null()]);

export const V2InferRequest = z.object({
  id: z.string().max(256).optional(),
  parameters: z
    .looseObject({
      mc_samples: z.number().int().min(1).optional().describe('Monte Carlo dropout with this many samples (outputs mean/std or probabilities/entropy/mutual_information)'),
      seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
      interval: z.number().gt(0).lt(1).optional(),
      timeout: z.number().int().min(1).optional().describe('Deadline in microseconds (as Triton): work still queued then is dropped, running Monte Carlo stops; 504. Capped by MAX_REQUEST_MS'),
    })
    .optional(),
  inputs: z
    .array(
      z.object({
        name: z.string(),
        shape: z.array(z.number().int().min(0)).min(1).max(8),
        datatype: z.string(),
        parameters: z.record(z.string(), z.unknown()).optional(),
        data: z.array(z.union([Scalar, z.array(z.unknown())])).describe('Row-major flat, or nested to the shape'),
      }),
    )
    .min(1),
  outputs: z.array(z.object({ name: z.string(), parameters: z.record(z.string(), z.unknown()).optional() })).optional(),
});

export const V2InferResponse = z.object({
  model_name: z.string(),
  model_version: z.string().optional(),
  id: z.string().optional(),
  parameters: z.record(z.string(), z.unknown()).optional().describe('MC: mc_samples, seed, interval; out_of_range: per row, the features far outside the training range (when any is)'),
  outputs: z.array(z.object({ name: z.string(), shape: z.array(z.number().int()), datatype: z.literal('FP32'), data: z.array(z.number()) })),
});
