/** Validation of client rows into a float32 matrix, with errors that name the row and column. */
import { InputError } from './errors.js';

const FLOAT32_MAX = 3.4028234663852886e38;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}`;
  if (typeof v === 'number') return String(v);
  return typeof v;
}

function checkValue(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new InputError(`${where}: expected a finite number, got ${describe(v)}`);
  if (Math.abs(v) > FLOAT32_MAX) throw new InputError(`${where}: ${v} is outside the float32 range`);
  return v;
}

/**
 * Turn `instances` (rows as arrays of numbers, or objects keyed by feature name) into a row-major
 * float32 matrix (rows × features). `field` names the request field in messages.
 */
export function toMatrix(
  instances: unknown,
  features: readonly string[],
  field = 'instances',
): { data: Float32Array; rows: number } {
  if (!Array.isArray(instances))
    throw new InputError(`${field}: expected an array of rows, got ${describe(instances)}`);
  if (instances.length === 0) throw new InputError(`${field}: expected at least one row, got an empty array`);
  const f = features.length;
  const data = new Float32Array(instances.length * f);
  instances.forEach((row: unknown, r) => {
    const at = `${field}[${r}]`;
    if (Array.isArray(row)) {
      if (row.length !== f)
        throw new InputError(`${at}: expected ${f} values (${preview(features)}), got ${row.length}`);
      for (let j = 0; j < f; j++) data[r * f + j] = checkValue(row[j], `${at}[${j}]`);
    } else if (row !== null && typeof row === 'object') {
      const obj = row as Record<string, unknown>;
      const missing = features.filter((k) => !Object.hasOwn(obj, k));
      if (missing.length)
        throw new InputError(`${at}: missing feature(s) ${missing.map((k) => JSON.stringify(k)).join(', ')}`);
      const unknown = Object.keys(obj).filter((k) => !features.includes(k));
      if (unknown.length)
        throw new InputError(
          `${at}: unknown feature(s) ${unknown
            .slice(0, 5)
            .map((k) => JSON.stringify(k))
            .join(', ')} (expected ${preview(features)})`,
        );
      for (let j = 0; j < f; j++) data[r * f + j] = checkValue(obj[features[j]!], `${at}.${features[j]}`);
    } else {
      throw new InputError(
        `${at}: expected an array of ${f} numbers or an object keyed by feature name, got ${describe(row)}`,
      );
    }
  });
  return { data, rows: instances.length };
}

function preview(features: readonly string[]): string {
  return features.length <= 12 ? features.join(', ') : `${features.slice(0, 12).join(', ')}, …`;
}
