/**
 * Fast paths for the two bodies that carry the traffic (predict and uncertainty with rows as arrays of
 * numbers). zod's parse of {"instances": [[…10 numbers]]} was ≈ 6% of predict throughput (it tries
 * each branch of the unions and copies every array). A fast path either accepts a body exactly as the
 * zod schema would, returning what zod would return, or returns undefined and zod decides (objects as
 * rows, unknown keys, every invalid body: zod then writes the error message). A property test checks
 * the first half of that contract against zod on random bodies.
 */
import type { z } from 'zod';
import { isIntervalLevel } from '../../uncertainty/intervals.js';

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
