/**
 * Fast paths for the two bodies that carry the traffic (predict and uncertainty with rows as arrays of
 * numbers). zod's parse of {"instances": [[…10 numbers]]} was ≈ 6% of predict throughput (it tries
 * each branch of the unions and copies every array). A fast path either accepts a body exactly as the
 * zod schema would, returning what zod would return, or returns undefined and zod decides (objects as
 * rows, unknown keys, every invalid body: zod then writes the error message). A property test checks
 * the first half of that contract against zod on random bodies.
 */
import type { z } from 'zod';
import { INTERVAL_METHODS, isIntervalLevel } from '../../uncertainty/intervals.js';

export type FastPath = (data: unknown) => unknown;

const fastPaths = new WeakMap<object, FastPath>();

/** Attach a fast path to a schema (the validator compiler in app.ts looks it up). */
export function withFastPath<T extends z.ZodType>(schema: T, fast: FastPath): T {
  fastPaths.set(schema, fast);
  return schema;
}

export function fastPathOf(schema: unknown): FastPath | undefined {
  return typeof schema === 'object' && schema !== null ? fastPaths.get(schema) : undefined;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A non-empty array of rows, each an array of numbers (JSON numbers are finite). */
export function numberRows(v: unknown): boolean {
  if (!Array.isArray(v) || v.length === 0) return false;
  for (let i = 0; i < v.length; i++) {
    const row: unknown = v[i];
    if (!Array.isArray(row)) return false;
    for (let j = 0; j < row.length; j++) {
      const x: unknown = row[j];
      if (typeof x !== 'number' || !Number.isFinite(x)) return false;
    }
  }
  return true;
}

/** Route params {name} of the model routes: a name of 1..200 characters. */
export function modelParamsFastPath(data: unknown): unknown {
  if (!isPlainObject(data)) return undefined;
  for (const k in data) if (k !== 'name') return undefined;
  const { name } = data;
  return typeof name === 'string' && name.length >= 1 && name.length <= 200 ? data : undefined;
}

/** {"instances": rows} or a bare rows array. */
export function predictFastPath(data: unknown): unknown {
  if (Array.isArray(data)) return numberRows(data) ? data : undefined;
  if (!isPlainObject(data)) return undefined;
  for (const k in data) if (k !== 'instances') return undefined;
  return numberRows(data.instances) ? data : undefined;
}

const UNCERTAINTY_KEYS = new Set(['instances', 'samples', 'interval', 'interval_method', 'seed', 'return_samples']);

export function uncertaintyFastPath(maxSamples: number): FastPath {
  return (data) => {
    if (!isPlainObject(data)) return undefined;
    for (const k in data) if (!UNCERTAINTY_KEYS.has(k)) return undefined;
    const { samples, interval, seed } = data;
    if (!numberRows(data.instances)) return undefined;
    if (
      samples !== undefined &&
      !(Number.isSafeInteger(samples) && (samples as number) >= 1 && (samples as number) <= maxSamples)
    )
      return undefined;
    if (interval !== undefined && !isIntervalLevel(interval)) return undefined;
    if (seed !== undefined && !(Number.isSafeInteger(seed) && (seed as number) >= 0)) return undefined;
    if (data.return_samples !== undefined && typeof data.return_samples !== 'boolean') return undefined;
    if (
      data.interval_method !== undefined &&
      data.interval_method !== 'gaussian' &&
      data.interval_method !== 'conformal'
    )
      return undefined;
    return data;
  };
}

/** The query of the /v1 model routes: nothing (the common case) passes; `?version=` goes to zod. */
export function versionQueryFastPath(data: unknown): unknown {
  if (!isPlainObject(data)) return undefined;
  for (const _ in data) return undefined;
  return data;
}

/** Every key of `o` is one of `keys` (zod's z.object strips the others, so a body with one goes to zod). */
function onlyKeys(o: Record<string, unknown>, keys: ReadonlySet<string>): boolean {
  for (const k in o) if (!keys.has(k)) return false;
  return true;
}

const isSafeInt = (v: unknown, min: number): boolean => Number.isSafeInteger(v) && (v as number) >= min;

/**
 * V2 `parameters` (a loose object: other keys pass unchanged). The "auto" fields (mc_tolerance,
 * mc_max_samples) and their refinement are left to zod.
 */
function v2Parameters(p: unknown): boolean {
  if (!isPlainObject(p)) return false;
  const { mc_samples, seed, interval, interval_method, timeout, binary_data_output } = p;
  if ('mc_tolerance' in p || 'mc_max_samples' in p) return false;
  if (mc_samples !== undefined && mc_samples !== 'auto' && !isSafeInt(mc_samples, 1)) return false;
  if (seed !== undefined && !isSafeInt(seed, 0)) return false;
  if (interval !== undefined && !(typeof interval === 'number' && interval > 0 && interval < 1)) return false;
  if (interval_method !== undefined && !(INTERVAL_METHODS as readonly unknown[]).includes(interval_method))
    return false;
  if (timeout !== undefined && !isSafeInt(timeout, 1)) return false;
  return binary_data_output === undefined || typeof binary_data_output === 'boolean';
}

const V2_INPUT_KEYS = new Set(['name', 'shape', 'datatype', 'parameters', 'data']);

/** One V2 input tensor: name, shape (1–8 whole numbers ≥ 0), datatype, data of scalars or arrays. */
function v2Input(t: unknown): boolean {
  if (!isPlainObject(t) || !onlyKeys(t, V2_INPUT_KEYS)) return false;
  const { name, shape, datatype, parameters, data } = t;
  if (typeof name !== 'string' || typeof datatype !== 'string') return false;
  if (!Array.isArray(shape) || shape.length < 1 || shape.length > 8) return false;
  for (let i = 0; i < shape.length; i++) if (!isSafeInt(shape[i], 0)) return false;
  if (parameters !== undefined) {
    if (!isPlainObject(parameters)) return false;
    const size = parameters.binary_data_size;
    if (size !== undefined && !isSafeInt(size, 0)) return false;
  }
  if (data === undefined) return true;
  if (!Array.isArray(data)) return false;
  for (let i = 0; i < data.length; i++) {
    const v: unknown = data[i];
    // a number, string, boolean, null or an array: anything but a plain object
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return false;
  }
  return true;
}

const V2_OUTPUT_KEYS = new Set(['name', 'parameters']);

function v2Output(o: unknown): boolean {
  if (!isPlainObject(o) || !onlyKeys(o, V2_OUTPUT_KEYS) || typeof o.name !== 'string') return false;
  const p = o.parameters;
  if (p === undefined) return true;
  return isPlainObject(p) && (p.binary_data === undefined || typeof p.binary_data === 'boolean');
}

const V2_INFER_KEYS = new Set(['id', 'parameters', 'inputs', 'outputs']);

/** A V2 infer request (schemas/v2.ts V2InferRequest) with no key zod would strip and no "auto" fields. */
export function v2InferFastPath(data: unknown): unknown {
  if (!isPlainObject(data) || !onlyKeys(data, V2_INFER_KEYS)) return undefined;
  const { id, parameters, inputs, outputs } = data;
  if (id !== undefined && typeof id !== 'string') return undefined;
  if (parameters !== undefined && !v2Parameters(parameters)) return undefined;
  if (!Array.isArray(inputs) || inputs.length === 0) return undefined;
  for (let i = 0; i < inputs.length; i++) if (!v2Input(inputs[i])) return undefined;
  if (outputs !== undefined) {
    if (!Array.isArray(outputs)) return undefined;
    for (let i = 0; i < outputs.length; i++) if (!v2Output(outputs[i])) return undefined;
  }
  return data;
}

const V2_PARAMS_KEYS = new Set(['name', 'version']);

/** Route params of the V2 model routes: name 1..200 characters, version 1..100 when given. */
export function v2ParamsFastPath(data: unknown): unknown {
  if (!isPlainObject(data) || !onlyKeys(data, V2_PARAMS_KEYS)) return undefined;
  const { name, version } = data;
  if (typeof name !== 'string' || name.length < 1 || name.length > 200) return undefined;
  if (version === undefined) return data;
  return typeof version === 'string' && version.length >= 1 && version.length <= 100 ? data : undefined;
}
