/**
 * Triton's model configuration extension (server docs/protocol/extension_model_configuration.md): the
 * JSON form of the ModelConfig message (common protobuf/model_config.proto), field names as in the proto,
 * 64-bit integers as JSON numbers as Triton writes them. Pure: no Fastify here; the route is
 * routes/v2-models.ts. Read by Triton's own tools (perf_analyzer, model analyzer) and client scripts to
 * learn max_batch_size and the tensors' dims and datatypes.
 */
import type { Config, VersionPolicy } from '../../config.js';
import type { Model, TensorSpec } from '../../model/model.js';
import { DEFAULT_UNCERTAINTY, describeUncertainty } from '../../model/uncertainty.js';
import { metadataOutputs, modelMcOutputs } from './v2.js';

/** The settings the configuration reports (the server's, the same for every model). */
export type ModelConfigSettings = Pick<
  Config,
  | 'MAX_BATCH_ROWS'
  | 'BATCH_MAX_ROWS'
  | 'BATCH_MAX_WAIT_US'
  | 'MAX_QUEUE'
  | 'MAX_REQUEST_MS'
  | 'MODEL_VERSION_POLICY'
  | 'MC_DEFAULT_SAMPLES'
  | 'MC_MAX_SAMPLES'
  | 'MC_MAX_WORK'
>;

/** V2 datatypes (the Open Inference Protocol's names) → model_config.proto DataType. */
const DATA_TYPES: Record<string, string> = {
  BOOL: 'TYPE_BOOL',
  UINT8: 'TYPE_UINT8',
  UINT16: 'TYPE_UINT16',
  UINT32: 'TYPE_UINT32',
  UINT64: 'TYPE_UINT64',
  INT8: 'TYPE_INT8',
  INT16: 'TYPE_INT16',
  INT32: 'TYPE_INT32',
  INT64: 'TYPE_INT64',
  FP16: 'TYPE_FP16',
  FP32: 'TYPE_FP32',
  FP64: 'TYPE_FP64',
  BYTES: 'TYPE_STRING',
  BF16: 'TYPE_BF16',
};

/** A model's V2 metadata platform → Triton's platform and backend names for the same runtime. */
const RUNTIMES: Record<string, { platform: string; backend: string }> = {
  onnx_onnxv1: { platform: 'onnxruntime_onnx', backend: 'onnxruntime' },
};

export interface TritonTensor {
  name: string;
  data_type: string;
  dims: number[];
  reshape?: { shape: number[] };
}

export interface TritonModelConfig {
  name: string;
  platform: string;
  backend: string;
  version_policy: { latest: { num_versions: number } } | { all: Record<string, never> };
  max_batch_size: number;
  input: TritonTensor[];
  output: TritonTensor[];
  dynamic_batching?: {
    preferred_batch_size: number[];
    max_queue_delay_microseconds: number;
    default_queue_policy: {
      timeout_action: 'REJECT';
      default_timeout_microseconds: number;
      allow_timeout_override: boolean;
      max_queue_size: number;
    };
  };
  instance_group: { name: string; kind: 'KIND_CPU'; count: number }[];
  parameters: Record<string, { string_value: string }>;
}

/**
 * A tensor without its batch dimension (when the model batches). A tensor that is only the batch ([-1])
 * is written as Triton's configurations write one: dims [1] reshaped to [] (a batch of scalars).
 */
function tritonTensor(t: Pick<TensorSpec, 'name' | 'shape'> & { datatype: string }, batched: boolean): TritonTensor {
  const dims = batched ? t.shape.slice(1) : [...t.shape];
  const base = { name: t.name, data_type: DATA_TYPES[t.datatype] ?? 'TYPE_INVALID' };
  return dims.length === 0 ? { ...base, dims: [1], reshape: { shape: [] } } : { ...base, dims };
}

function versionPolicy(p: VersionPolicy): TritonModelConfig['version_policy'] {
  return p.kind === 'all' ? { all: {} } : { latest: { num_versions: p.count } };
}

/** The predict batcher (BATCH_MAX_ROWS rows a run, BATCH_MAX_WAIT_US at most, MAX_QUEUE waiting); absent when off. */
function dynamicBatching(s: ModelConfigSettings): TritonModelConfig['dynamic_batching'] {
  if (s.BATCH_MAX_ROWS <= 0) return undefined;
  return {
    preferred_batch_size: [s.BATCH_MAX_ROWS],
    max_queue_delay_microseconds: s.BATCH_MAX_WAIT_US,
    default_queue_policy: {
      timeout_action: 'REJECT',
      default_timeout_microseconds: s.MAX_REQUEST_MS * 1000,
      // x-request-timeout and parameters.timeout shorten a request's deadline (never beyond MAX_REQUEST_MS)
      allow_timeout_override: true,
      max_queue_size: s.MAX_QUEUE,
    },
  };
}

/** Model parameters are strings in model_config.proto (ModelParameter.string_value); lists comma-joined. */
function stringParameters(values: Record<string, unknown>): Record<string, { string_value: string }> {
  const out: Record<string, { string_value: string }> = {};
  for (const [key, v] of Object.entries(values)) {
    if (v !== undefined) out[key] = { string_value: Array.isArray(v) ? v.join(',') : String(v) };
  }
  return out;
}

/**
 * The model configuration of `m` served with `s`: its tensors without the batch dimension, max_batch_size
 * MAX_BATCH_ROWS, the version policy, the predict batcher as dynamic_batching, and the Monte Carlo
 * dropout settings (and the model's uncertainty settings) as parameters.
 */
export function encodeModelConfig(m: Model, s: ModelConfigSettings): TritonModelConfig {
  const runtime = RUNTIMES[m.platform] ?? { platform: m.platform, backend: '' };
  // a graph with a fixed first dimension does not batch: Triton's max_batch_size 0, dims the whole shape
  const batched = m.input.shape[0] === -1;
  const batching = batched ? dynamicBatching(s) : undefined;
  return {
    name: m.name,
    ...runtime,
    version_policy: versionPolicy(s.MODEL_VERSION_POLICY),
    max_batch_size: batched ? s.MAX_BATCH_ROWS : 0,
    input: (m.layout === 'tensor' ? (m.inputs ?? [m.input]) : [m.input]).map((t) => tritonTensor(t, batched)),
    output: metadataOutputs(m).map((t) => tritonTensor(t, batched)),
    ...(batching ? { dynamic_batching: batching } : {}),
    instance_group: [{ name: m.name, kind: 'KIND_CPU', count: 1 }],
    parameters: stringParameters({
      task: m.task,
      mc_available: m.mcAvailable,
      mc_default_samples: s.MC_DEFAULT_SAMPLES,
      mc_max_samples: s.MC_MAX_SAMPLES,
      mc_max_work: s.MC_MAX_WORK,
      mc_outputs: modelMcOutputs(m),
      ...describeUncertainty(m.task, m.uncertainty ?? DEFAULT_UNCERTAINTY),
    }),
  };
}
