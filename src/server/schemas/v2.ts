/** zod schemas of the KServe Open Inference Protocol (V2) REST routes. */
import { z } from 'zod';
import { onRequestNames } from '../../uncertainty/statistics.js';
import { INTERVAL_METHODS } from '../../model/uncertainty.js';
import { AUTO_DEFAULT_MAX_SAMPLES, AUTO_DEFAULT_TOLERANCE } from '../../uncertainty/stopping.js';
import { Tolerance, autoOnly } from './v1.js';

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
  id: z.string().optional().describe('Echoed in the response (no length limit but the body limit)'),
  parameters: z
    .looseObject({
      mc_samples: z
        .union([z.number().int().min(1), z.literal('auto')])
        .optional()
        .describe(
          'Monte Carlo dropout with this many samples (outputs mean/std or probabilities/entropy/mutual_information), or "auto": sample until every served value\'s Monte Carlo error is within mc_tolerance, mc_max_samples at most (parameters of the answer: mc_samples_used, the most any row used; each row stops on its own, and the output mc_samples_used, INT32 [rows], says each row\'s when they differ)',
        ),
      mc_tolerance: Tolerance.optional().describe(
        `With mc_samples "auto": the largest Monte Carlo error, 0 < x ≤ 1 (default ${AUTO_DEFAULT_TOLERANCE})`,
      ),
      mc_max_samples: z
        .number()
        .int()
        .min(1)
        .optional()
        .describe(
          `With mc_samples "auto": the most samples (≤ MC_MAX_SAMPLES; default min(${AUTO_DEFAULT_MAX_SAMPLES}, MC_MAX_SAMPLES)); rows × mc_max_samples ≤ MC_MAX_WORK`,
        ),
      seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
      interval: z.number().gt(0).lt(1).optional(),
      interval_method: z
        .enum(INTERVAL_METHODS)
        .optional()
        .describe(
          "Regression MC: gaussian (mean ± z·std) or conformal (mean ± q·std from the card's calibration scores); default the model's interval_method",
        ),
      timeout: z
        .number()
        .int()
        .min(1)
        .optional()
        .describe(
          'Deadline in microseconds (as Triton): work still queued then is dropped, running Monte Carlo stops; 504. Capped by MAX_REQUEST_MS',
        ),
      binary_data_output: z
        .boolean()
        .optional()
        .describe(
          'Binary tensor data extension: every output in binary after the JSON header (Inference-Header-Content-Length)',
        ),
    })
    .superRefine(autoOnly('mc_samples', ['mc_tolerance', 'mc_max_samples']))
    .optional(),
  inputs: z
    .array(
      z.object({
        name: z.string(),
        shape: z.array(z.number().int().min(0)).min(1).max(8),
        datatype: z.string(),
        parameters: z
          .looseObject({
            binary_data_size: z
              .number()
              .int()
              .min(0)
              .optional()
              .describe('Binary tensor data extension: the byte size of this input in the binary part of the body'),
          })
          .optional(),
        data: z
          .array(z.union([Scalar, z.array(z.unknown())]))
          .optional()
          .describe(
            "Row-major flat, or nested to the shape, in the input's datatype (INT64 ids as JSON integers, BOOL as true/false); absent when the tensor is sent in binary (parameters.binary_data_size)",
          ),
      }),
    )
    .min(1),
  outputs: z
    .array(
      z.object({
        name: z.string(),
        parameters: z
          .looseObject({
            binary_data: z
              .boolean()
              .optional()
              .describe('Binary tensor data extension: this output in binary (wins over binary_data_output)'),
          })
          .optional(),
      }),
    )
    .optional()
    .describe(
      `The outputs to answer with, in this order (default: the model's, or with mc_samples every Monte Carlo statistic served always). A statistic served on request (${onRequestNames('regression', 'v2').join(', ')}) is computed only when named here`,
    ),
});

export const V2InferResponse = z.object({
  model_name: z.string(),
  model_version: z.string().optional(),
  id: z.string().optional(),
  parameters: z
    .record(z.string(), z.unknown())
    .optional()
    .describe(
      'MC: mc_samples, seed, interval (mc_samples "auto": also mc_samples_used, mc_tolerance, mc_max_samples); out_of_range: per row, the features far outside the training range (when any is)',
    ),
  outputs: z.array(
    z.object({
      name: z.string(),
      shape: z.array(z.number().int()),
      datatype: z.enum(['FP32', 'INT32']).describe("FP32; INT32 for a tensor classifier's label per position"),
      parameters: z
        .object({ binary_data_size: z.number().int() })
        .optional()
        .describe('Binary outputs: the byte size of this output after the JSON header'),
      data: z.array(z.number()).optional().describe('Absent for a binary output'),
    }),
  ),
});

const DurationStat = z
  .object({ count: z.number().int(), ns: z.number().int() })
  .describe('A count and a cumulative duration in nanoseconds');
const ModeStats = z.object({
  inference_count: z.number().int().describe('Rows of successful requests'),
  execution_count: z.number().int().describe('Calls into the model (a coalesced batch is one)'),
  sample_count: z.number().int().optional().describe('Monte Carlo: rows × samples of successful requests'),
  inference_stats: z.object({
    success: DurationStat,
    fail: DurationStat,
    queue: DurationStat,
    compute_input: DurationStat,
    compute_infer: DurationStat,
    compute_output: DurationStat,
    cache_hit: DurationStat,
    cache_miss: DurationStat,
  }),
  batch_stats: z.array(
    z.object({
      batch_size: z.number().int(),
      compute_input: DurationStat,
      compute_infer: DurationStat,
      compute_output: DurationStat,
    }),
  ),
});

export const V2ModelStats = z
  .object({
    model_stats: z.array(
      ModeStats.extend({
        name: z.string(),
        version: z.string(),
        last_inference: z.number().int().describe('Milliseconds since the epoch of the last request (0: none)'),
        memory_usage: z.array(z.never()),
        mode_stats: z
          .object({ predict: ModeStats, mc: ModeStats })
          .describe('The same figures per mode: predict (dropout off) and mc (Monte Carlo dropout)'),
      }),
    ),
  })
  .describe(
    "Triton's statistics extension (docs/protocol/extension_statistics.md); top-level figures are both modes together",
  );

const TritonTensor = z.object({
  name: z.string(),
  data_type: z.string().describe('model_config.proto DataType: TYPE_FP32, …'),
  dims: z.array(z.number().int()).describe('The shape without the batch dimension (when max_batch_size > 0)'),
  reshape: z
    .object({ shape: z.array(z.number().int()) })
    .optional()
    .describe('A batch of scalars: dims [1] reshaped to []'),
});

export const V2ModelConfig = z
  .object({
    name: z.string(),
    platform: z.string().describe('onnxruntime_onnx'),
    backend: z.string().describe('onnxruntime'),
    version_policy: z
      .union([z.object({ latest: z.object({ num_versions: z.number().int() }) }), z.object({ all: z.object({}) })])
      .describe('MODEL_VERSION_POLICY'),
    max_batch_size: z.number().int().describe('MAX_BATCH_ROWS (0: the graph does not batch)'),
    input: z.array(TritonTensor),
    output: z.array(TritonTensor),
    dynamic_batching: z
      .object({
        preferred_batch_size: z.array(z.number().int()).describe('BATCH_MAX_ROWS'),
        max_queue_delay_microseconds: z.number().int().describe('BATCH_MAX_WAIT_US'),
        default_queue_policy: z.object({
          timeout_action: z.literal('REJECT'),
          default_timeout_microseconds: z.number().int().describe('MAX_REQUEST_MS × 1000'),
          allow_timeout_override: z.boolean(),
          max_queue_size: z.number().int().describe('MAX_QUEUE'),
        }),
      })
      .optional()
      .describe('The predict batcher; absent when BATCH_MAX_ROWS=0'),
    instance_group: z.array(z.object({ name: z.string(), kind: z.literal('KIND_CPU'), count: z.number().int() })),
    parameters: z
      .record(z.string(), z.object({ string_value: z.string() }))
      .describe(
        'Monte Carlo dropout (mc_available, mc_default_samples, mc_max_samples, mc_max_work, mc_outputs) and the uncertainty settings',
      ),
  })
  .describe("Triton's model configuration (model_config.proto ModelConfig as JSON)");
