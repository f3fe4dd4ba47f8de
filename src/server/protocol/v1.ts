/**
 * The /v1 codec: REST requests → data plane requests, results → JSON, errors → Fastify's shape
 * {statusCode, error, message, code}. Pure: no Fastify here (the routes are src/server/routes/v1.ts).
 * Monte Carlo predictions and their zod schema are both derived from the descriptor tables in
 * src/uncertainty/statistics.ts: a statistic is a number per row (an array per row when the model has several
 * outputs) unless its /v1 field has a codec in V1_FIELDS.
 */
import { STATUS_CODES } from 'node:http';
import { z } from 'zod';
import { ERROR_KINDS, type ErrorKind, InputError } from '../../model/errors.js';
import { type Model, classProbabilities } from '../../model/model.js';
import { toMatrix } from '../../model/rows.js';
import { type McStats, servedStats, statValues, statsWidth } from '../../uncertainty/record.js';
import { STATS, type StatDescriptor, type Task } from '../../uncertainty/statistics.js';
import { INTERVAL_METHODS, type IntervalMethod } from '../../model/uncertainty.js';
import { AUTO_DEFAULT_TOLERANCE } from '../../uncertainty/stopping.js';
import { columnTensors, instanceTensors, tensorPredictions, tensorStatsRows } from './v1-tensors.js';
import type {
  PredictRequest,
  PredictResult,
  RowsInput,
  SampleFields,
  SampleRequest,
  SampleResult,
} from '../../serving/dataplane.js';

/** A row: feature values in the card's order, or keyed by feature name. */
export type Row = number[] | Record<string, number>;
/**
 * An instance: a tabular row, or a tensor model's row (a nested array of its input's row shape, or an
 * object of those keyed by input name).
 */
export type Instance = Row | unknown[] | Record<string, unknown>;
/** TF Serving's columnar `inputs`: one input's batch, or each input's keyed by name (tensor models). */
export type Columns = unknown[] | Record<string, unknown>;
export type PredictBody = { instances: Instance[] } | { inputs: Columns } | Instance[];
export interface UncertaintyBody {
  /** Exactly one of `instances` and `inputs` (the schema checks it). */
  instances?: Instance[];
  inputs?: Columns;
  /** "auto": sequential stopping at `tolerance`, `max_samples` at most (src/uncertainty/stopping.ts). */
  samples?: number | 'auto';
  tolerance?: number;
  max_samples?: number;
  interval?: number;
  interval_method?: IntervalMethod;
  seed?: number;
  return_samples?: boolean;
  /** Statistics served on request, by their /v1 field names (quantile_25, quantile_75). */
  statistics?: string[];
}

/** TF Serving's columnar `inputs`: tensor models only. */
class V1Columns implements RowsInput {
  constructor(private readonly inputs: Columns) {}

  decode(model: Model): never {
    throw new InputError(
      `inputs: model "${model.name}" takes rows of features; send them as "instances" (the columnar "inputs" is for tensor models)`,
    );
  }

  tensors(model: Model, count: (rows: number, field: string) => void): ReturnType<typeof columnTensors> {
    return columnTensors(model, this.inputs, count);
  }
}

/** How /v1 names the Monte Carlo fields in limit messages. */
export const V1_SAMPLE_FIELDS: SampleFields = {
  samples: 'samples',
  samplesName: 'samples',
  workAdvice: 'send fewer rows or samples',
};

/** With `samples: "auto"` the limits apply to max_samples. */
export const V1_AUTO_SAMPLE_FIELDS: SampleFields = {
  samples: 'max_samples',
  samplesName: 'max_samples',
  workAdvice: 'send fewer rows or a lower max_samples',
};

const V1_FIELD_NAMES = { fixed: V1_SAMPLE_FIELDS, auto: V1_AUTO_SAMPLE_FIELDS };

/** The data plane's samples, tolerance and limit names of a request's samples field. */
export function samplesOf(
  samples: number | 'auto' | undefined,
  tolerance: number | undefined,
  maxSamples: number | undefined,
  fields: { fixed: SampleFields; auto: SampleFields },
): Pick<SampleRequest, 'samples' | 'tolerance' | 'fields'> {
  return samples === 'auto'
    ? { samples: maxSamples, tolerance: tolerance ?? AUTO_DEFAULT_TOLERANCE, fields: fields.auto }
    : { samples, fields: fields.fixed };
}

/** A request's instances for the data plane: rows for a tabular model, input tensors for a tensor model. */
class V1Input implements RowsInput {
  constructor(private readonly instances: Instance[]) {}

  decode(model: Model, count: (rows: number, field: string) => void): { x: Float32Array; rows: number } {
    count(this.instances.length, 'instances');
    const { data, rows } = toMatrix(this.instances as Row[], model.features);
    return { x: data, rows };
  }

  tensors(model: Model, count: (rows: number, field: string) => void): ReturnType<typeof instanceTensors> {
    return instanceTensors(model, this.instances, count);
  }
}

/** The request's rows (`instances`) or columns (`inputs`). */
const inputOf = (body: PredictBody | UncertaintyBody): RowsInput =>
  Array.isArray(body)
    ? new V1Input(body)
    : 'inputs' in body && body.inputs !== undefined
      ? new V1Columns(body.inputs)
      : new V1Input((body as { instances: Instance[] }).instances);

/** With every field withContext (request-context.ts) sets: adding them to a smaller literal changed its shape. */
export function predictRequest(name: string, body: PredictBody, version?: string): PredictRequest {
  return { model: name, version, input: inputOf(body), timeoutMs: undefined, elapsedMs: undefined, client: undefined };
}

/**
 * One literal of one shape whatever the body holds (an absent field is undefined, and every field
 * withContext sets is there): a spread of a conditional literal copied its keys on every request.
 */
export function uncertaintyRequest(name: string, body: UncertaintyBody, version?: string): SampleRequest {
  const { samples, tolerance, fields } = samplesOf(body.samples, body.tolerance, body.max_samples, V1_FIELD_NAMES);
  return {
    model: name,
    version,
    input: inputOf(body),
    samples,
    tolerance,
    fields,
    interval: body.interval,
    intervalMethod: body.interval_method,
    seed: body.seed,
    returnSamples: body.return_samples,
    statistics: body.statistics?.length ? { names: body.statistics, by: 'v1', field: 'statistics' } : undefined,
    timeoutMs: undefined,
    elapsedMs: undefined,
    client: undefined,
  };
}

/** Predictions, and `out_of_range` (per row, the features far outside the training range) when a row has any. */
export function encodePredict(r: PredictResult): {
  model: string;
  predictions: ReturnType<typeof encodePredictions> | unknown[];
  out_of_range?: string[][];
} {
  const predictions = r.dims
    ? tensorPredictions(r.model, r.output, r.dims)
    : encodePredictions(r.model, r.output, r.rows);
  // two literals rather than a spread of a conditional one (a copy of its keys on every request)
  return r.outOfRange
    ? { model: r.model.name, predictions, out_of_range: r.outOfRange }
    : { model: r.model.name, predictions };
}

/** A row with inputs far outside the training range has `out_of_range`: their feature names. */
export function encodeUncertainty(r: SampleResult): {
  model: string;
  samples: number | 'auto';
  samples_used?: number;
  tolerance?: number;
  max_samples?: number;
  interval?: number;
  interval_method?: IntervalMethod;
  seed: number;
  predictions: Record<string, unknown>[];
} {
  const s = r.stats;
  const predictions = r.outputDims
    ? tensorStatsRows(r.model, s, r.outputDims, r.model.outputLayout?.classAxis ?? null)
    : encodeStats(s, r.model.labels, r.returnSamples);
  if (r.outOfRange) {
    r.outOfRange.forEach((names, i) => {
      if (names.length) predictions[i]!.out_of_range = names;
    });
  }
  // the keys in this order; a fixed T's answers are literals (a spread of a conditional one copied its keys)
  if (r.tolerance === undefined)
    return s.kind === 'regression'
      ? {
          model: r.model.name,
          samples: r.samples,
          interval: r.interval,
          interval_method: s.intervalMethod,
          seed: r.seed,
          predictions,
        }
      : { model: r.model.name, samples: r.samples, seed: r.seed, predictions };
  return {
    model: r.model.name,
    samples: 'auto',
    samples_used: s.samples,
    tolerance: r.tolerance,
    max_samples: r.samples,
    ...(s.kind === 'regression' ? { interval: r.interval, interval_method: s.intervalMethod } : {}),
    seed: r.seed,
    predictions,
  };
}

/** The error code of a request error kind: DS_MODEL_NOT_FOUND, DS_TOO_LARGE, … */
export const errorCode = (kind: ErrorKind): string => ERROR_KINDS[kind].code;

/** Fastify's error shape. */
export function errorBody(
  status: number,
  message: string,
  code?: string,
): { statusCode: number; error: string; message: string; code?: string } {
  return { statusCode: status, error: STATUS_CODES[status] ?? 'Error', message, ...(code ? { code } : {}) };
}

/** A number per row, or an array per row when the model has several outputs. */
export const Regression = z.union([z.number(), z.array(z.number())]);

function pick(a: ArrayLike<number>, i: number, width: number): number | number[] {
  if (width === 1) return a[i]!;
  const out = new Array<number>(width);
  for (let k = 0; k < width; k++) out[k] = a[i * width + k]!;
  return out;
}

/** Eval-mode predictions: regression a number per row (an array with several outputs); classification {label, probabilities}. */
export function encodePredictions(
  model: Pick<Model, 'task' | 'labels' | 'outputSize' | 'outputKind'>,
  raw: Float32Array,
  rows: number,
): (number | number[] | { label: string; probabilities: Record<string, number> })[] {
  const K = model.outputSize;
  const result: (number | number[] | { label: string; probabilities: Record<string, number> })[] = [];
  if (model.task === 'regression') {
    for (let i = 0; i < rows; i++) result.push(pick(raw, i, K));
    return result;
  }
  const p = classProbabilities(model, raw, rows);
  for (let i = 0; i < rows; i++) {
    let best = 0;
    const probabilities: Record<string, number> = {};
    for (let k = 0; k < K; k++) {
      if (p[i * K + k]! > p[i * K + best]!) best = k;
      probabilities[model.labels[k]!] = p[i * K + k]!;
    }
    result.push({ label: model.labels[best]!, probabilities });
  }
  return result;
}

/** Encodes one row of a /v1 field from the whole record. */
type FieldEncoder = (s: McStats, i: number, labels: readonly string[]) => unknown;

interface V1Field {
  schema: (d: StatDescriptor) => z.ZodType;
  encode: FieldEncoder;
}

/** /v1 fields that are not a plain number (or array) per row: one codec each. */
const V1_FIELDS: Record<string, V1Field> = {
  interval: {
    schema: () =>
      z
        .object({ level: z.number(), method: z.enum(INTERVAL_METHODS), lower: Regression, upper: Regression })
        .describe(
          "The central interval at `level`: mean ± z·std, z = Φ⁻¹((1+level)/2) (method gaussian), or mean ± q·std, q the split-conformal quantile of the card's scores (method conformal)",
        ),
    encode: (s, i) => {
      if (s.kind !== 'regression') throw new Error('interval: a regression statistic');
      return {
        level: s.level,
        method: s.intervalMethod,
        lower: pick(s.lower, i, s.outputs),
        upper: pick(s.upper, i, s.outputs),
      };
    },
  },
  label: {
    schema: (d) => z.string().describe(d.description),
    encode: (s, i, labels) => {
      if (s.kind !== 'classification') throw new Error('label: a classification statistic');
      return labels[s.label[i]!];
    },
  },
  probabilities: {
    schema: (d) => z.record(z.string(), z.number()).describe(d.description),
    encode: (s, i, labels) => {
      if (s.kind !== 'classification') throw new Error('probabilities: a classification statistic');
      const K = s.classes;
      const out: Record<string, number> = {};
      for (let k = 0; k < K; k++) out[labels[k]!] = s.probabilities[i * K + k]!;
      return out;
    },
  },
};

/** The /v1 fields of a task, in table order: each with its encoder (fields shared by statistics once). */
function fieldsOf(task: Task): { name: string; descriptor: StatDescriptor; encode: FieldEncoder }[] {
  const fields: { name: string; descriptor: StatDescriptor; encode: FieldEncoder }[] = [];
  for (const d of STATS[task]) {
    if (d.v1 === null || fields.some((f) => f.name === d.v1)) continue;
    const special = V1_FIELDS[d.v1];
    fields.push({
      name: d.v1,
      descriptor: d,
      encode: special
        ? special.encode
        : (s, i) => (d.shape === 'row' ? statValues(s, d)[i]! : pick(statValues(s, d), i, statsWidth(s))),
    });
  }
  return fields;
}

const FIELDS = { regression: fieldsOf('regression'), classification: fieldsOf('classification') };

/**
 * The /v1 fields of each list of statistics a record can hold (servedStats: the same array for every
 * record without on-request statistics), worked out once per list rather than per answer.
 */
const FIELDS_OF_HELD = new WeakMap<readonly StatDescriptor[], typeof FIELDS.regression>();

/** The /v1 fields of the statistics the record holds: an on-request one only when it was asked for. */
function heldFields(s: McStats): typeof FIELDS.regression {
  const held = servedStats(s);
  let fields = FIELDS_OF_HELD.get(held);
  if (fields === undefined) {
    fields = FIELDS[s.kind].filter((f) => held.includes(f.descriptor));
    FIELDS_OF_HELD.set(held, fields);
  }
  return fields;
}

/** JSON rows of an uncertainty response (with the raw samples of each row when asked for). */
export function encodeStats(s: McStats, labels: readonly string[], withSamples: boolean): Record<string, unknown>[] {
  const fields = heldFields(s);
  const width = statsWidth(s);
  const rows: Record<string, unknown>[] = [];
  for (let i = 0; i < s.rows; i++) {
    const row: Record<string, unknown> = {};
    for (const f of fields) row[f.name] = f.encode(s, i, labels);
    if (withSamples && s.raw) {
      const samples: unknown[] = [];
      for (let t = 0; t < s.samples; t++) {
        const o = (t * s.rows + i) * width;
        samples.push(s.kind === 'regression' && width === 1 ? s.raw[o]! : Array.from(s.raw.subarray(o, o + width)));
      }
      row.samples = samples;
    }
    if (s.rowSamples) row.samples_used = s.rowSamples[i]!;
    rows.push(row);
  }
  return rows;
}

/** The zod schema of one uncertainty prediction of a task (OpenAPI and types). */
export function predictionSchema(task: Task) {
  const shape: Record<string, z.ZodType> = {};
  for (const f of FIELDS[task]) {
    const special = V1_FIELDS[f.name];
    const field = special
      ? special.schema(f.descriptor)
      : f.descriptor.shape === 'row'
        ? z.number().describe(f.descriptor.description)
        : Regression.describe(f.descriptor.description);
    shape[f.name] =
      f.descriptor.served === 'on-request'
        ? field.optional().describe(`${f.descriptor.description}. On request only (\`statistics\`)`)
        : field;
  }
  shape.samples = (task === 'regression' ? z.array(Regression) : z.array(z.array(z.number()))).optional();
  shape.samples_used = z
    .number()
    .int()
    .optional()
    .describe('samples "auto": the samples this row used, when rows used different counts (each row stops on its own)');
  shape.out_of_range = z
    .array(z.string())
    .optional()
    .describe('Features of this row far outside the training range (card feature_stats; OUT_OF_RANGE)');
  return z.object(shape);
}
