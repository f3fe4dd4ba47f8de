/**
 * The V2 codec: KServe Open Inference Protocol (V2) REST requests → data plane requests, results → V2
 * responses, errors → {"error": "..."}. Pure: no Fastify here (the routes are src/server/routes/v2.ts).
 * https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
 * Input data may be flat (row-major) or nested to the tensor's shape; the batch is the first dimension.
 * Monte Carlo outputs are the statistics with a V2 name in src/uncertainty/statistics.ts.
 */
import { InputError } from '../../model/errors.js';
import { type Model, classProbabilities } from '../../model/model.js';
import { type McStats, servedStats, statValues, statsWidth } from '../../uncertainty/record.js';
import { ON_REQUEST_KEYS, STATS, type StatDescriptor, type Task } from '../../uncertainty/statistics.js';
import { DEFAULT_UNCERTAINTY, type IntervalMethod, describeUncertainty } from '../../model/uncertainty.js';
import type {
  PredictRequest,
  PredictResult,
  RowsInput,
  SampleFields,
  SampleRequest,
  SampleResult,
} from '../../serving/dataplane.js';
import {
  type DurationStat,
  INFERENCE_MODES,
  type InferenceMode,
  type ModeStatistics,
  type ModelStatistics,
} from '../../serving/inference-statistics.js';
import {
  type V2BinaryRequest,
  V2BinaryError,
  type V2Datatype,
  type V2RawInput,
  type V2ResponseBody,
  type V2TensorData,
  binaryOutputSelector,
  encodeResponse,
  toFloat32,
} from './v2-binary.js';
import { samplesOf } from './v1.js';
import {
  tensorInputs,
  tensorMcExtraOutputs,
  tensorMcOutputs,
  tensorMetadataOutputs,
  tensorPredictOutputs,
} from './v2-tensors.js';

export interface V2Tensor {
  name: string;
  shape: number[];
  datatype: string;
  /** Absent for a tensor sent in binary (parameters.binary_data_size; its values are in V2BinaryRequest). */
  data?: unknown;
  parameters?: Record<string, unknown>;
}

export interface V2Output {
  name: string;
  shape: number[];
  /** INT32: a tensor classifier's label per position. */
  datatype: 'FP32' | 'INT32';
  data: Float32Array | Int32Array;
}

const FLOAT_TYPES = new Set(['FP32', 'FP64', 'FP16']);
const KNOWN_TYPES = new Set([
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
]);
const INT_TYPES = new Set(['UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64']);
const FLOAT32_MAX = 3.4028234663852886e38;

/** Flatten `data` (flat or nested) checking it against `shape`; returns row-major values. */
function flatten(data: unknown, shape: number[], where: string): unknown[] {
  if (!Array.isArray(data))
    throw new InputError(`${where}.data: expected an array, got ${data === null ? 'null' : typeof data}`);
  const total = shape.reduce((a, b) => a * b, 1);
  if (data.length === total && !data.some(Array.isArray)) return data;
  // nested: every level must match the shape
  const out: unknown[] = [];
  const walk = (v: unknown, depth: number, path: string): void => {
    if (depth === shape.length) {
      if (Array.isArray(v))
        throw new InputError(`${where}.data${path}: nested deeper than shape [${shape.join(', ')}]`);
      out.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new InputError(
        `${where}.data${path}: expected ${shape[depth]} elements at depth ${depth} for shape [${shape.join(', ')}], got ${Array.isArray(v) ? v.length : typeof v}`,
      );
    }
    v.forEach((x, i) => {
      walk(x, depth + 1, `${path}[${i}]`);
    });
  };
  if (data.some(Array.isArray)) walk(data, 0, '');
  else
    throw new InputError(`${where}: data has ${data.length} elements but shape [${shape.join(', ')}] needs ${total}`);
  return out;
}

/**
 * The request's single input tensor as a float32 matrix (rows × features); `count` gets the row count
 * once the shape is checked, before any value is read (the data plane's limits). `binary`: the
 * request's binary tensors (the binary tensor data extension), aligned with `inputs`.
 */
export function inputRows(
  model: Model,
  inputs: V2Tensor[],
  count: (rows: number, field: string) => void,
  binary: V2BinaryRequest | null = null,
): { x: Float32Array; rows: number } {
  if (inputs.length !== 1)
    throw new InputError(
      `inputs: the model takes exactly 1 input tensor ("${model.input.name}"), got ${inputs.length}`,
    );
  const t = inputs[0]!;
  const where = `inputs[0] ("${t.name}")`;
  if (t.name !== model.input.name)
    throw new InputError(`inputs[0].name: unknown input "${t.name}"; the model's input is "${model.input.name}"`);
  if (!KNOWN_TYPES.has(t.datatype)) throw new InputError(`${where}.datatype: unknown datatype "${t.datatype}"`);
  if (!FLOAT_TYPES.has(t.datatype) && !INT_TYPES.has(t.datatype))
    throw new InputError(
      `${where}.datatype: ${t.datatype} is not supported; send FP32 (FP64 and integer types are converted)`,
    );
  const f = model.features.length;
  const shape = t.shape;
  if (shape.length === 1 && shape[0] === f) shape.unshift(1); // a single row sent as [F]
  if (shape.length !== 2 || shape[1] !== f)
    throw new InputError(`${where}.shape: expected [rows, ${f}], got [${shape.join(', ')}]`);
  const rows = shape[0]!;
  if (rows < 1) throw new InputError(`${where}.shape: the batch dimension must be at least 1`);
  const sent = binary?.inputs[0];
  if (t.data === undefined && !sent?.binary) {
    throw new InputError(
      t.parameters?.binary_data_size !== undefined
        ? `${where}: parameters.binary_data_size is given, but the request has no Inference-Header-Content-Length header, so there is no binary data`
        : `${where}.data: missing (send "data", or the values in binary with parameters.binary_data_size)`,
    );
  }
  count(rows, where);
  if (sent?.binary) return { x: binaryRows(sent.data as V2TensorData, sent.datatype, where), rows };
  const values = flatten(t.data, shape, where);
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new InputError(
        `${where}.data[${i}]: expected a finite number, got ${v === null ? 'null' : typeof v === 'string' ? 'a string' : String(v)}`,
      );
    if (Math.abs(v) > FLOAT32_MAX) throw new InputError(`${where}.data[${i}]: ${v} is outside the float32 range`);
    if (INT_TYPES.has(t.datatype) && !Number.isInteger(v))
      throw new InputError(`${where}.data[${i}]: ${v} is not an integer (datatype ${t.datatype})`);
    out[i] = v;
  }
  return { x: out, rows };
}

/**
 * Binary values (already checked against the shape by the codec) as float32 rows: every value finite
 * and, for FP64, within the float32 range, as for JSON data. The FP32 array is used as it came.
 */
function binaryRows(data: V2TensorData, datatype: V2Datatype, where: string): Float32Array {
  if (datatype === 'FP64') {
    const d = data as Float64Array;
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (!Number.isFinite(v))
        throw new InputError(`${where}: binary element ${i}: expected a finite number, got ${v}`);
      if (Math.abs(v) > FLOAT32_MAX)
        throw new InputError(`${where}: binary element ${i}: ${v} is outside the float32 range`);
    }
  }
  let out: Float32Array;
  try {
    out = toFloat32(data, datatype);
  } catch (err) {
    if (err instanceof V2BinaryError) throw new InputError(`${where}: ${err.message}`);
    throw err;
  }
  if (FLOAT_TYPES.has(datatype) || datatype === 'BF16') {
    for (let i = 0; i < out.length; i++)
      if (!Number.isFinite(out[i]!))
        throw new InputError(`${where}: binary element ${i}: expected a finite number, got ${out[i]}`);
  }
  return out;
}

function tensor(name: string, shape: number[], data: ArrayLike<number>): V2Output {
  return { name, shape, datatype: 'FP32', data: data instanceof Float32Array ? data : new Float32Array(data) };
}

/** Outputs of a predict (eval-mode) infer: the model's output tensor (+ probabilities for classifiers). */
export function predictOutputs(model: Model, raw: Float32Array, rows: number): V2Output[] {
  const K = model.outputSize;
  const outs = [tensor(model.output.name, model.output.shape.length === 1 ? [rows] : [rows, K], raw)];
  if (model.task === 'classification') {
    if (model.output.name !== 'probabilities')
      outs.push(tensor('probabilities', [rows, K], classProbabilities(model, raw, rows)));
  }
  return outs;
}

/** The V2 outputs of each task's statistics (the descriptors with a V2 name), in table order. */
const MC_OUTPUTS = {
  regression: STATS.regression.filter((d) => d.v2 !== null),
  classification: STATS.classification.filter((d) => d.v2 !== null),
};

/** The output names of an MC infer for a task (model metadata `mc_outputs`; on-request ones included). */
export function mcOutputNames(task: Task): string[] {
  return MC_OUTPUTS[task].map((d) => d.v2!);
}

/** A model's MC output names: its task's, and a tensor classifier's label per position. */
export function modelMcOutputs(m: Model): string[] {
  return m.layout === 'tensor' ? [...mcOutputNames(m.task), ...tensorMcExtraOutputs(m)] : mcOutputNames(m.task);
}

/** The V2 names of every on-request statistic (both tasks): naming one in `outputs` asks for it. */
const ON_REQUEST_V2 = new Set(
  [...STATS.regression, ...STATS.classification]
    .filter((d) => ON_REQUEST_KEYS.includes(d.key) && d.v2 !== null)
    .map((d) => d.v2!),
);

/**
 * Outputs of an MC infer: one FP32 tensor per statistic with a V2 name that the record holds (an
 * on-request one only when `outputs` named it), [rows] or [rows, width].
 */
export function mcOutputs(stats: McStats): V2Output[] {
  const width = statsWidth(stats);
  const held = servedStats(stats);
  let outputs = OUTPUTS_OF_HELD.get(held);
  if (outputs === undefined) {
    outputs = MC_OUTPUTS[stats.kind].filter((d) => held.includes(d));
    OUTPUTS_OF_HELD.set(held, outputs);
  }
  return outputs.map((d) =>
    tensor(d.v2!, d.shape === 'row' ? [stats.rows] : [stats.rows, width], statValues(stats, d)),
  );
}

/**
 * The V2 outputs of each list of statistics a record can hold (servedStats: the same array for every
 * record without on-request statistics), worked out once per list rather than per answer.
 */
const OUTPUTS_OF_HELD = new WeakMap<readonly StatDescriptor[], StatDescriptor[]>();

/**
 * The output of an "auto" answer's samples per row (issue 22: each row stops on its own): INT32 [rows],
 * there when the rows' counts differ or the request names it in `outputs`.
 */
export const SAMPLES_USED_OUTPUT = 'mc_samples_used';

function samplesUsedOutput(s: McStats, body: V2InferRequest): V2Output | null {
  if (!s.rowSamples && !body.outputs?.some((o) => o.name === SAMPLES_USED_OUTPUT)) return null;
  const data = s.rowSamples ?? new Int32Array(s.rows).fill(s.samples);
  return { name: SAMPLES_USED_OUTPUT, datatype: 'INT32', shape: [s.rows], data };
}

/** The on-request statistics a request's `outputs` names (the data plane resolves them per task). */
function askedStatistics(body: V2InferRequest): SampleRequest['statistics'] {
  const names = body.outputs?.map((o) => o.name).filter((n) => ON_REQUEST_V2.has(n));
  return names?.length ? { names, by: 'v2', field: 'outputs' } : undefined;
}

/** Keep only the requested outputs (the request's `outputs` list), in the requested order. */
export function selectOutputs(all: V2Output[], requested: { name: string }[] | undefined): V2Output[] {
  if (!requested || requested.length === 0) return all;
  return requested.map((r, i) => {
    const o = all.find((x) => x.name === r.name);
    if (!o)
      throw new InputError(
        `outputs[${i}].name: unknown output "${r.name}" (available: ${all.map((x) => x.name).join(', ')})`,
      );
    return o;
  });
}

// --- requests, responses, errors ---------------------------------------------------------------------

export interface V2InferRequest {
  id?: string;
  /** `timeout`: the request's deadline in µs, as Triton's. */
  parameters?: {
    /** "auto": sequential stopping at mc_tolerance, mc_max_samples at most (src/uncertainty/stopping.ts). */
    mc_samples?: number | 'auto';
    mc_tolerance?: number;
    mc_max_samples?: number;
    seed?: number;
    interval?: number;
    interval_method?: IntervalMethod;
    timeout?: number;
    binary_data_output?: boolean;
    [k: string]: unknown;
  };
  inputs: V2Tensor[];
  outputs?: { name: string; parameters?: Record<string, unknown> }[];
}

export interface V2InferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  parameters?: Record<string, unknown>;
  outputs: V2Output[];
}

export interface V2ModelParams {
  name: string;
  version?: string;
}

/** How V2 names the Monte Carlo fields in limit messages. */
export const V2_SAMPLE_FIELDS: SampleFields = { samples: 'parameters.mc_samples', samplesName: 'mc_samples' };

/** With `mc_samples: "auto"` the limits apply to mc_max_samples. */
export const V2_AUTO_SAMPLE_FIELDS: SampleFields = {
  samples: 'parameters.mc_max_samples',
  samplesName: 'mc_max_samples',
};

const SAMPLE_FIELDS = { fixed: V2_SAMPLE_FIELDS, auto: V2_AUTO_SAMPLE_FIELDS };

/** A request's inputs for the data plane: rows for a tabular model, input tensors for a tensor model. */
class V2Input implements RowsInput {
  constructor(
    private readonly inputs: V2Tensor[],
    private readonly binary: V2BinaryRequest | null,
  ) {}

  decode(model: Model, count: (rows: number, field: string) => void): { x: Float32Array; rows: number } {
    return inputRows(model, this.inputs, count, this.binary);
  }

  tensors(model: Model, count: (rows: number, field: string) => void): ReturnType<typeof tensorInputs> {
    return tensorInputs(model, this.inputs, count, this.binary);
  }
}

/** Whether an infer request asks for Monte Carlo dropout (parameters.mc_samples). */
export const isSampleRequest = (body: V2InferRequest): boolean => body.parameters?.mc_samples !== undefined;

/** parameters.timeout (µs, as Triton's) in ms, when given. */
const timeoutMs = (body: V2InferRequest): { timeoutMs?: number } =>
  body.parameters?.timeout !== undefined ? { timeoutMs: body.parameters.timeout / 1000 } : {};

/** `binary`: the request's binary tensors (Inference-Header-Content-Length), null for JSON. */
export function predictRequest(
  params: V2ModelParams,
  body: V2InferRequest,
  binary: V2BinaryRequest | null = null,
): PredictRequest {
  return { model: params.name, version: params.version, input: new V2Input(body.inputs, binary), ...timeoutMs(body) };
}

/**
 * One literal of one shape whatever the body holds (an absent field is undefined, and every field
 * withContext sets is there): fields added to a smaller literal changed its shape on every request.
 */
export function sampleRequest(
  params: V2ModelParams,
  body: V2InferRequest,
  binary: V2BinaryRequest | null = null,
): SampleRequest {
  const p = body.parameters ?? {};
  const { samples, tolerance, fields } = samplesOf(p.mc_samples, p.mc_tolerance, p.mc_max_samples, SAMPLE_FIELDS);
  return {
    model: params.name,
    version: params.version,
    input: new V2Input(body.inputs, binary),
    samples,
    tolerance,
    fields,
    interval: p.interval,
    intervalMethod: p.interval_method,
    seed: p.seed,
    returnSamples: undefined,
    statistics: askedStatistics(body),
    timeoutMs: p.timeout !== undefined ? p.timeout / 1000 : undefined,
    elapsedMs: undefined,
    client: undefined,
  };
}

/**
 * The model input a raw binary request (Inference-Header-Content-Length: 0) fills: FP32 [-1, features],
 * or a tensor model's single input as declared (none for several inputs).
 */
export function rawInput(model: Model): V2RawInput | undefined {
  if (model.layout !== 'tensor')
    return { name: model.input.name, datatype: 'FP32', shape: [-1, model.features.length] };
  const inputs = model.inputs ?? [model.input];
  return inputs.length === 1 ? { ...inputs[0]! } : undefined;
}

/** Rows with inputs far outside the training range: `out_of_range`, a list of feature names per row. */
const rangeParameters = (r: { outOfRange: string[][] | null }): Record<string, unknown> | undefined =>
  r.outOfRange ? { out_of_range: r.outOfRange } : undefined;

function response(
  model: Model,
  body: V2InferRequest,
  outputs: V2Output[],
  parameters?: Record<string, unknown>,
): V2InferResponse {
  // the keys in this order, id and parameters only when there is one (JSON order of the answer)
  const r: Partial<V2InferResponse> & Pick<V2InferResponse, 'model_name' | 'model_version'> = {
    model_name: model.name,
    model_version: model.version,
  };
  if (body.id !== undefined) r.id = body.id;
  if (parameters) r.parameters = parameters;
  r.outputs = selectOutputs(outputs, body.outputs);
  return r as V2InferResponse;
}

/** A predict infer: the model's output tensor (+ probabilities for classifiers), the requested ones. */
export function encodePredict(body: V2InferRequest, r: PredictResult): V2InferResponse {
  const outputs = r.dims ? tensorPredictOutputs(r.model, r.output, r.dims) : predictOutputs(r.model, r.output, r.rows);
  return response(r.model, body, outputs, rangeParameters(r));
}

/**
 * A Monte Carlo infer: the statistics' tensors (and an "auto" answer's mc_samples_used), and the
 * parameters used (samples, seed, interval and its method).
 */
export function encodeSample(body: V2InferRequest, r: SampleResult): V2InferResponse {
  const s = r.stats;
  const outputs = r.outputDims
    ? tensorMcOutputs(s, r.outputDims, r.model.outputLayout?.classAxis ?? null)
    : mcOutputs(s);
  if (r.tolerance !== undefined) {
    const used = samplesUsedOutput(s, body);
    if (used) outputs.push(used);
  }
  // built in place, in this key order (the conditional spreads were objects copied per request)
  const parameters: Record<string, unknown> =
    r.tolerance !== undefined
      ? { mc_samples: 'auto', mc_samples_used: s.samples, mc_tolerance: r.tolerance, mc_max_samples: r.samples }
      : { mc_samples: r.samples };
  parameters.seed = r.seed;
  if (s.kind === 'regression') {
    parameters.interval = r.interval;
    parameters.interval_method = s.intervalMethod;
  }
  if (r.outOfRange) parameters.out_of_range = r.outOfRange;
  return response(r.model, body, outputs, parameters);
}

/**
 * The HTTP body of an infer response: plain JSON, or with the binary tensor data extension the
 * outputs the request asked for in binary (parameters.binary_data_output, outputs[].parameters
 * .binary_data) after the JSON header, whose length goes in Inference-Header-Content-Length.
 */
export function encodeInferBody(
  request: V2InferRequest,
  res: V2InferResponse,
): { body: string | Buffer; headerLength: number | null; contentType: V2ResponseBody['contentType'] } {
  // the head without copying the answer with an object rest (undefined id and parameters are left out)
  const head = { model_name: res.model_name, model_version: res.model_version, id: res.id, parameters: res.parameters };
  const outputs = res.outputs;
  if (!allJson(request)) {
    let binary: (name: string) => boolean;
    try {
      binary = binaryOutputSelector(request as unknown as Record<string, unknown>);
    } catch (err) {
      if (err instanceof V2BinaryError) throw new InputError(err.message);
      throw err;
    }
    if (outputs.some((o) => binary(o.name))) return encodeResponse(head, outputs, binary);
  }
  // all JSON (the common case): one string, as the serializer would write it
  return { body: inferJson(head, outputs), headerLength: null, contentType: 'application/json' };
}

/**
 * No output can be asked for in binary: no `outputs` and binary_data_output absent or false (the
 * common case, decided without building binaryOutputSelector's map per request).
 */
const allJson = (request: V2InferRequest): boolean =>
  request.outputs === undefined &&
  (request.parameters?.binary_data_output === undefined || request.parameters.binary_data_output === false);

/**
 * JSON.stringify({...head, outputs}) with each output written directly: copying every typed array into
 * an Array inside one object for JSON.stringify cost two thirds of a small Monte Carlo answer's encoding
 * (issue 20). Each output's data is JSON.stringify of a plain copy of its values: V8 writes the numbers
 * of an array of doubles in its serializer, about a third cheaper than a template literal's String() of
 * each (non-finite values are `null` either way, as in JSON).
 */
export function inferJson(head: Omit<V2InferResponse, 'outputs'>, outputs: readonly V2Output[]): string {
  let text = '';
  for (const o of outputs) {
    const d = o.data;
    const values = new Array<number>(d.length);
    for (let i = 0; i < d.length; i++) values[i] = d[i]!;
    // a shape is whole numbers (its JSON is the join); a name's JSON text is kept (the same few names answer every request)
    text += `${text === '' ? '' : ','}{"name":${nameJson(o.name)},"datatype":"${o.datatype}","shape":[${shapeJson(o.shape)}],"data":${JSON.stringify(values)}}`;
  }
  const json = JSON.stringify(head);
  return `${json.length > 2 ? `${json.slice(0, -1)},` : '{'}"outputs":[${text}]}`;
}

/** A shape's dimensions joined by commas: Array.prototype.join's generic path was ~400 instructions a tensor (callgrind). */
function shapeJson(shape: readonly number[]): string {
  return shape.length === 1 ? `${shape[0]}` : shape.length === 2 ? `${shape[0]},${shape[1]}` : shape.join(',');
}

/** The JSON text of output names seen (at most 256, the names of served models' outputs in practice). */
const NAME_JSON = new Map<string, string>();

function nameJson(name: string): string {
  let json = NAME_JSON.get(name);
  if (json === undefined) {
    json = JSON.stringify(name);
    if (NAME_JSON.size < 256) NAME_JSON.set(name, json);
  }
  return json;
}

/** The outputs an eval-mode infer answers with: the model's, plus probabilities for a classifier. */
export function metadataOutputs(m: Model): TensorMeta[] {
  if (m.layout === 'tensor') return tensorMetadataOutputs(m);
  const outputs: TensorMeta[] = [{ ...m.output }];
  if (m.task === 'classification' && m.output.name !== 'probabilities')
    outputs.push({ name: 'probabilities', datatype: 'FP32', shape: [-1, m.outputSize] });
  return outputs;
}

/** Model metadata: tensors with -1 for the batch; task, features, labels and MC outputs as parameters. */
export function encodeMetadata(
  m: Model,
  versions: string[],
): {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMeta[];
  outputs: TensorMeta[];
  parameters: Record<string, unknown>;
} {
  return {
    name: m.name,
    versions,
    platform: m.platform,
    inputs: m.layout === 'tensor' ? (m.inputs ?? [m.input]).map((t) => ({ ...t })) : [{ ...m.input }],
    outputs: metadataOutputs(m),
    parameters: {
      task: m.task,
      features: [...m.features],
      ...(m.task === 'classification' ? { labels: [...m.labels] } : {}),
      ...(m.layout === 'tensor' ? { layout: 'tensor', class_axis: m.outputLayout?.classAxis ?? null } : {}),
      mc_available: m.mcAvailable,
      mc_outputs: modelMcOutputs(m),
      ...describeUncertainty(m.task, m.uncertainty ?? DEFAULT_UNCERTAINTY),
    },
  };
}

interface TensorMeta {
  name: string;
  datatype: string;
  shape: number[];
}

// --- statistics (Triton's statistics extension) -------------------------------------------------------

interface V2DurationStat {
  count: number;
  ns: number;
}

interface V2InferenceStats {
  success: V2DurationStat;
  fail: V2DurationStat;
  queue: V2DurationStat;
  compute_input: V2DurationStat;
  compute_infer: V2DurationStat;
  compute_output: V2DurationStat;
  cache_hit: V2DurationStat;
  cache_miss: V2DurationStat;
}

interface V2BatchStats {
  batch_size: number;
  compute_input: V2DurationStat;
  compute_infer: V2DurationStat;
  compute_output: V2DurationStat;
}

interface V2ModeStats {
  inference_count: number;
  execution_count: number;
  inference_stats: V2InferenceStats;
  batch_stats: V2BatchStats[];
  /** Monte Carlo only: rows × samples. */
  sample_count?: number;
}

export interface V2ModelStat extends V2ModeStats {
  name: string;
  version: string;
  last_inference: number;
  memory_usage: never[];
  /** The same figures per mode (an extension of Triton's shape): predict and mc. */
  mode_stats: Record<InferenceMode, V2ModeStats>;
}

const duration = (d: DurationStat): V2DurationStat => ({ count: d.count, ns: d.ns });
const sum = (a: DurationStat, b: DurationStat): DurationStat => ({ count: a.count + b.count, ns: a.ns + b.ns });

/** Two modes' figures together (the model's total). */
function sumModes(a: ModeStatistics, b: ModeStatistics): ModeStatistics {
  const batches = new Map(a.batches);
  for (const [rows, d] of b.batches) batches.set(rows, sum(batches.get(rows) ?? { count: 0, ns: 0 }, d));
  return {
    inferenceCount: a.inferenceCount + b.inferenceCount,
    executionCount: a.executionCount + b.executionCount,
    sampleCount: a.sampleCount + b.sampleCount,
    success: sum(a.success, b.success),
    fail: sum(a.fail, b.fail),
    queue: sum(a.queue, b.queue),
    computeInput: sum(a.computeInput, b.computeInput),
    computeInfer: sum(a.computeInfer, b.computeInfer),
    computeOutput: sum(a.computeOutput, b.computeOutput),
    batches,
  };
}

function modeStats(m: ModeStatistics, mode: InferenceMode | null): V2ModeStats {
  return {
    inference_count: m.inferenceCount,
    execution_count: m.executionCount,
    ...(mode === 'mc' ? { sample_count: m.sampleCount } : {}),
    inference_stats: {
      success: duration(m.success),
      fail: duration(m.fail),
      queue: duration(m.queue),
      compute_input: duration(m.computeInput),
      compute_infer: duration(m.computeInfer),
      compute_output: duration(m.computeOutput),
      // no response cache
      cache_hit: { count: 0, ns: 0 },
      cache_miss: { count: 0, ns: 0 },
    },
    // per execution only the run is timed: its input and output copies are inside it (ns 0)
    batch_stats: [...m.batches]
      .sort((a, b) => a[0] - b[0])
      .map(([rows, d]) => ({
        batch_size: rows,
        compute_input: { count: d.count, ns: 0 },
        compute_infer: duration(d),
        compute_output: { count: d.count, ns: 0 },
      })),
  };
}

/**
 * GET /v2/models[/{name}[/versions/{v}]]/stats: Triton's $stats_model_response. Each model version's
 * top-level figures are predict and Monte Carlo together (what Triton's tools read); `mode_stats` has
 * them per mode. See src/serving/inference-statistics.ts for what each figure measures.
 */
export function encodeStatistics(stats: ModelStatistics[]): { model_stats: V2ModelStat[] } {
  return {
    model_stats: stats.map((s) => ({
      name: s.name,
      version: s.version,
      last_inference: s.lastInference,
      ...modeStats(sumModes(s.modes.predict, s.modes.mc), null),
      memory_usage: [],
      mode_stats: Object.fromEntries(INFERENCE_MODES.map((mode) => [mode, modeStats(s.modes[mode], mode)])) as Record<
        InferenceMode,
        V2ModeStats
      >,
    })),
  };
}

/** The V2 error shape. */
export function errorBody(_status: number, message: string): { error: string } {
  return { error: message };
}
