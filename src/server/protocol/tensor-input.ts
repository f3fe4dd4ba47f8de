/**
 * A tensor model's inputs as the protocols send them (issue 19): each input's shape checked against the
 * model's declared one (the batch first), its values read into the typed array onnxruntime takes for
 * its datatype (model.ts `TensorValues`), integer ids kept integers. Shared by the V2 codec (one tensor
 * per input, JSON or binary) and the /v1 codec (instances, nested arrays per row). Pure; every bad input
 * is an InputError naming the input, the axis and the expected extent.
 */
import { InputError } from '../../model/errors.js';
import type { Datatype, InputTensor, Model, TensorSpec, TensorValues } from '../../model/model.js';

const FLOAT32_MAX = 3.4028234663852886e38;
const FLOAT16_MAX = 65504;

/** How JSON values become one datatype's typed array: its constructor and one element's check and value. */
interface JsonCodec {
  make(n: number): TensorValues;
  /** The value to store, or a message saying why `v` is not one of this datatype. */
  read(v: unknown): number | bigint | string;
}

const describe = (v: unknown): string =>
  v === null ? 'null' : typeof v === 'string' ? 'a string' : Array.isArray(v) ? 'an array' : String(v);

const finite = (v: unknown, max: number, type: string): number | string => {
  if (typeof v !== 'number' || !Number.isFinite(v)) return `expected a finite number, got ${describe(v)}`;
  return Math.abs(v) > max ? `${v} is outside the ${type} range` : v;
};

const integer = (v: unknown, min: number, max: number, type: string): number | string => {
  if (typeof v !== 'number' || !Number.isInteger(v)) return `expected an integer (${type}), got ${describe(v)}`;
  return v < min || v > max ? `${v} is outside the ${type} range [${min}, ${max}]` : v;
};

/** The IEEE half bits of a float (round to nearest even), for FP16 inputs sent as JSON numbers. */
export function floatToHalf(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    // a subnormal half: the significand with its implicit bit, shifted to units of 2^-24
    if (exp < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - exp;
    const half = 1 << (shift - 1);
    const rem = m & ((1 << shift) - 1);
    let h = m >>> shift;
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = sign | (exp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return h;
}

/** One entry per datatype (model.ts `Datatype`). */
const JSON_CODECS: Record<Datatype, JsonCodec> = {
  FP32: { make: (n) => new Float32Array(n), read: (v) => finite(v, FLOAT32_MAX, 'float32') },
  FP64: { make: (n) => new Float64Array(n), read: (v) => finite(v, Number.MAX_VALUE, 'float64') },
  FP16: {
    make: (n) => new Uint16Array(n),
    read: (v) => {
      const r = finite(v, FLOAT16_MAX, 'float16');
      return typeof r === 'number' ? floatToHalf(r) : r;
    },
  },
  INT64: {
    make: (n) => new BigInt64Array(n),
    // JSON numbers are doubles: beyond ±2^53 an id would already be rounded (send those in binary)
    read: (v) => {
      const r = integer(v, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'INT64 as a JSON number');
      return typeof r === 'number' ? BigInt(r) : r;
    },
  },
  INT32: { make: (n) => new Int32Array(n), read: (v) => integer(v, -(2 ** 31), 2 ** 31 - 1, 'INT32') },
  UINT8: { make: (n) => new Uint8Array(n), read: (v) => integer(v, 0, 255, 'UINT8') },
  BOOL: {
    make: (n) => new Uint8Array(n),
    read: (v) =>
      v === true || v === 1 ? 1 : v === false || v === 0 ? 0 : `expected true or false, got ${describe(v)}`,
  },
};

/** Flat JSON values (row-major) as the typed array of `datatype`; `where` names the input in messages. */
export function jsonValues(values: readonly unknown[], datatype: Datatype, where: string): TensorValues {
  const codec = JSON_CODECS[datatype];
  const out = codec.make(values.length);
  for (let i = 0; i < values.length; i++) {
    const r = codec.read(values[i]);
    if (typeof r === 'string') throw new InputError(`${where}: element ${i}: ${r}`);
    (out as unknown as (number | bigint)[])[i] = r;
  }
  return out;
}

/** The typed array each datatype arrives in from the binary tensor data extension (v2-binary.ts decodeTensor). */
const BINARY_ARRAYS: Record<Datatype, new (...a: never[]) => TensorValues> = {
  FP32: Float32Array,
  FP64: Float64Array,
  FP16: Uint16Array,
  INT64: BigInt64Array,
  INT32: Int32Array,
  UINT8: Uint8Array,
  BOOL: Uint8Array,
};

/** Binary values of `datatype` (already length-checked): floats must be finite, as JSON ones are. */
export function binaryValues(data: unknown, datatype: Datatype, where: string): TensorValues {
  if (!(data instanceof BINARY_ARRAYS[datatype])) throw new InputError(`${where}: binary data is not ${datatype}`);
  const values = data as TensorValues;
  if (datatype === 'FP32' || datatype === 'FP64') {
    const f = values as Float32Array | Float64Array;
    for (let i = 0; i < f.length; i++)
      if (!Number.isFinite(f[i]!)) throw new InputError(`${where}: binary element ${i} is ${f[i]}, not finite`);
  } else if (datatype === 'FP16') {
    const h = values as Uint16Array;
    for (let i = 0; i < h.length; i++)
      if ((h[i]! & 0x7c00) === 0x7c00) throw new InputError(`${where}: binary FP16 element ${i} is not finite`);
  }
  return values;
}

/** `input "name"`: how messages name an input. */
export const inputName = (name: string): string => `input "${name}"`;

/**
 * Check a request tensor's shape against the model's input (`spec.shape`: -1 for the batch and free
 * axes): the same rank, at least one row, every fixed axis its extent. Returns the row count.
 */
export function checkShape(spec: TensorSpec, shape: readonly number[], where = inputName(spec.name)): number {
  const want = `[${spec.shape.join(', ')}]`;
  if (shape.length !== spec.shape.length)
    throw new InputError(
      `${where}: shape [${shape.join(', ')}] has rank ${shape.length}, expected rank ${spec.shape.length} ${want} (the batch first)`,
    );
  if (shape[0]! < 1) throw new InputError(`${where}: axis 0 (the batch) has ${shape[0]} rows, expected at least 1`);
  for (let a = 1; a < shape.length; a++) {
    const e = spec.shape[a]!;
    if (e >= 0 && shape[a] !== e) throw new InputError(`${where}: axis ${a} has ${shape[a]} values, expected ${e}`);
    if (e < 0 && shape[a]! < 1) throw new InputError(`${where}: axis ${a} has ${shape[a]} values, expected at least 1`);
  }
  return shape[0]!;
}

/** The model's inputs in the graph's order (a tensor model always has them). */
export function modelInputs(model: Model): readonly TensorSpec[] {
  return model.inputs ?? [model.input];
}

/**
 * Match request tensors to the model's inputs by name: each input exactly once, no other. Returns the
 * index of the request tensor of each model input, in the model's order.
 */
export function matchInputs(model: Model, names: readonly string[], field: string): number[] {
  const specs = modelInputs(model);
  const known = specs.map((s) => `"${s.name}"`).join(', ');
  names.forEach((n, i) => {
    if (!specs.some((s) => s.name === n))
      throw new InputError(`${field}[${i}]: unknown input "${n}"; the model's inputs are ${known}`);
    if (names.indexOf(n) !== i) throw new InputError(`${field}[${i}]: input "${n}" is given twice`);
  });
  return specs.map((s) => {
    const i = names.indexOf(s.name);
    if (i < 0) throw new InputError(`${field}: missing ${inputName(s.name)}; the model's inputs are ${known}`);
    return i;
  });
}

/** Every input's batch equal to the first's, else a 400 naming both. */
export function checkSameBatch(tensors: readonly InputTensor[]): number {
  const first = tensors[0]!;
  const rows = first.dims[0]!;
  for (const t of tensors)
    if (t.dims[0] !== rows)
      throw new InputError(
        `${inputName(t.name)}: axis 0 (the batch) has ${t.dims[0]} rows, but ${inputName(first.name)} has ${rows}; every input needs the same batch`,
      );
  return rows;
}

/** The shape of a nested array, read along its first elements ([[1, 2, 3], [4, 5, 6]] → [2, 3]). */
export function nestedShape(v: unknown): number[] {
  const shape: number[] = [];
  while (Array.isArray(v)) {
    shape.push(v.length);
    v = v[0];
  }
  return shape;
}

/**
 * Row-major values of `data` for `shape`: flat (exactly the shape's element count, no arrays inside) or
 * nested to the shape; `label` is how messages name the data (`data`, `instances`).
 */
export function flattenNested(data: unknown, shape: readonly number[], where: string, label: string): unknown[] {
  if (!Array.isArray(data)) throw new InputError(`${where}: ${label} must be an array`);
  const total = shape.reduce((a, b) => a * b, 1);
  if (data.length === total && shape.length > 1 && !data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  const walk = (v: unknown, axis: number, path: string): void => {
    if (axis === shape.length) {
      if (Array.isArray(v))
        throw new InputError(`${where}: ${label}${path} is nested deeper than shape [${shape.join(', ')}]`);
      out.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[axis])
      throw new InputError(
        `${where}: ${label}${path} has ${Array.isArray(v) ? `${v.length} values` : 'a scalar'} on axis ${axis}, expected ${shape[axis]}`,
      );
    for (let i = 0; i < v.length; i++) walk(v[i], axis + 1, `${path}[${i}]`);
  };
  walk(data, 0, '');
  return out;
}
