/**
 * The binary tensor data extension of the V2 / Open Inference Protocol over HTTP (Triton's
 * docs/protocol/extension_binary_data.md; what tritonclient and kserve's clients send by default):
 * a body is a JSON inference header followed by raw tensors, little-endian, row-major, without
 * padding, in the order of the header's inputs (requests) or outputs (responses). The header's length
 * is given by the HTTP header `Inference-Header-Content-Length`; each binary tensor's byte length by its
 * `parameters.binary_data_size`. An element of BOOL is one byte (1 or 0); one of BYTES is a 4-byte
 * little-endian unsigned length followed by that many bytes. A request asks for binary outputs with
 * `parameters.binary_data_output` (all outputs) or `outputs[].parameters.binary_data` (one output,
 * which wins).
 *
 * Pure functions over Buffers and typed arrays: no HTTP framework here. Every malformed body throws a
 * V2BinaryError whose message names the problem (the routes answer it with a V2 400).
 */

/** A body the binary extension cannot read; the message says why. */
export class V2BinaryError extends Error {
  override name = 'V2BinaryError';
}

/** The V2 tensor datatypes. */
export const V2_DATATYPES = [
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
  'BF16',
  'BYTES',
] as const;
export type V2Datatype = (typeof V2_DATATYPES)[number];

/** Bytes per element (BYTES elements have their own length prefix). */
export const V2_ELEMENT_SIZE: Record<Exclude<V2Datatype, 'BYTES'>, number> = {
  BOOL: 1,
  UINT8: 1,
  INT8: 1,
  UINT16: 2,
  INT16: 2,
  FP16: 2,
  BF16: 2,
  UINT32: 4,
  INT32: 4,
  FP32: 4,
  UINT64: 8,
  INT64: 8,
  FP64: 8,
};

/**
 * A binary tensor's values: FP32 Float32Array, FP64 Float64Array, INT64 BigInt64Array, UINT64
 * BigUint64Array, INT32 Int32Array, UINT32 Uint32Array, INT16 Int16Array, UINT16 Uint16Array, INT8
 * Int8Array, UINT8 and BOOL Uint8Array (0 or 1), FP16 and BF16 Uint16Array (the raw bit patterns:
 * Node 20 has no Float16Array; see toFloat32), BYTES one Uint8Array per element.
 */
export type V2TensorData =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array
  | Uint8Array[];

/** One input of a parsed request. */
export interface V2RequestInput {
  name: string;
  shape: number[];
  datatype: V2Datatype;
  parameters?: Record<string, unknown>;
  /** Binary inputs: the decoded values. JSON inputs: the header's `data`, unchanged (validated elsewhere). */
  data: V2TensorData | unknown;
  /** true when the values came from the binary part of the body. */
  binary: boolean;
}

export interface V2BinaryRequest {
  /** The JSON inference header as sent (`inputs[].data` untouched: binary inputs have none). */
  header: Record<string, unknown>;
  inputs: V2RequestInput[];
  /** Length of the JSON header and of the binary part, in bytes. */
  headerBytes: number;
  binaryBytes: number;
}

/** The single input of a model, which a raw binary request (header length 0) is for. */
export interface V2RawInput {
  name: string;
  datatype: V2Datatype;
  /** The model's input shape, -1 for at most one variable dimension. */
  shape: number[];
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Parse the value of an `Inference-Header-Content-Length` HTTP header (as Node gives it: a string, or
 * an array when sent twice) into a byte count.
 */
export function parseHeaderLength(value: string | string[] | number | undefined): number {
  if (value === undefined)
    throw new V2BinaryError(
      'the Inference-Header-Content-Length header is missing: a body with binary tensors must give the length of its JSON header',
    );
  if (Array.isArray(value)) {
    if (value.length !== 1)
      throw new V2BinaryError(`the Inference-Header-Content-Length header is given ${value.length} times`);
    value = value[0]!;
  }
  const text = String(value).trim();
  if (!/^\d{1,15}$/.test(text))
    throw new V2BinaryError(
      `Inference-Header-Content-Length must be a non-negative integer, got "${String(value).slice(0, 40)}"`,
    );
  return Number(text);
}

/** Elements of a shape; throws on a shape that is not a list of non-negative integers. */
function elementCount(shape: unknown, what: string): number {
  if (!Array.isArray(shape)) throw new V2BinaryError(`${what}: "shape" must be an array of non-negative integers`);
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
      throw new V2BinaryError(
        `${what}: "shape" must be an array of non-negative integers, got ${JSON.stringify(shape).slice(0, 80)}`,
      );
    n *= d;
  }
  if (!Number.isSafeInteger(n))
    throw new V2BinaryError(`${what}: shape ${JSON.stringify(shape)} has too many elements`);
  return n;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isDatatype(v: unknown): v is V2Datatype {
  return typeof v === 'string' && (V2_DATATYPES as readonly string[]).includes(v);
}

/**
 * Decode `size` bytes at `offset` of `body` as `count` elements of `datatype` (copied into a fresh,
 * aligned buffer: the body's own bytes may sit at any offset of a pooled buffer).
 */
export function decodeTensor(
  body: Uint8Array,
  offset: number,
  size: number,
  datatype: V2Datatype,
  count: number,
  what: string,
): V2TensorData {
  if (datatype === 'BYTES') return decodeBytes(body, offset, size, count, what);
  const elem = V2_ELEMENT_SIZE[datatype];
  if (size !== count * elem) {
    throw new V2BinaryError(
      `${what}: ${count} elements of ${datatype} take ${count * elem} bytes, but binary_data_size is ${size}`,
    );
  }
  // a copy at offset 0 of its own ArrayBuffer (aligned); not body.slice, which on a Buffer is a view
  const bytes = new Uint8Array(size);
  bytes.set(body.subarray(offset, offset + size));
  const buf = bytes.buffer;
  if (!LITTLE_ENDIAN && elem > 1) swapBytes(bytes, elem);
  switch (datatype) {
    case 'BOOL': {
      for (let i = 0; i < bytes.length; i++)
        if (bytes[i]! > 1)
          throw new V2BinaryError(
            `${what}: BOOL element ${i} is the byte ${bytes[i]}; only 0 (false) and 1 (true) are allowed`,
          );
      return bytes;
    }
    case 'UINT8':
      return bytes;
    case 'INT8':
      return new Int8Array(buf);
    case 'UINT16':
    case 'FP16':
    case 'BF16':
      return new Uint16Array(buf);
    case 'INT16':
      return new Int16Array(buf);
    case 'UINT32':
      return new Uint32Array(buf);
    case 'INT32':
      return new Int32Array(buf);
    case 'FP32':
      return new Float32Array(buf);
    case 'UINT64':
      return new BigUint64Array(buf);
    case 'INT64':
      return new BigInt64Array(buf);
    case 'FP64':
      return new Float64Array(buf);
  }
}

function swapBytes(bytes: Uint8Array, elem: number): void {
  for (let i = 0; i < bytes.length; i += elem) bytes.subarray(i, i + elem).reverse();
}

function decodeBytes(body: Uint8Array, offset: number, size: number, count: number, what: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const end = offset + size;
  let at = offset;
  while (at < end) {
    if (end - at < 4)
      throw new V2BinaryError(
        `${what}: BYTES element ${out.length} starts with a truncated length prefix (${end - at} of 4 bytes left in binary_data_size ${size})`,
      );
    const len = view.getUint32(at, true);
    at += 4;
    if (len > end - at)
      throw new V2BinaryError(
        `${what}: the length prefix of BYTES element ${out.length} says ${len} bytes, but only ${end - at} remain in binary_data_size ${size}`,
      );
    const el = new Uint8Array(len);
    el.set(body.subarray(at, at + len));
    out.push(el);
    at += len;
  }
  if (out.length !== count)
    throw new V2BinaryError(
      `${what}: binary_data_size ${size} holds ${out.length} BYTES elements, but the shape needs ${count}`,
    );
  return out;
}

/**
 * Parse a request body with binary tensors. `headerLength` is the `Inference-Header-Content-Length`
 * value (see parseHeaderLength). The first headerLength bytes are the JSON inference header; after
 * it come the inputs that have `parameters.binary_data_size`, in the header's order, and nothing else.
 * A header length of 0 is a raw binary request (the whole body is the single input's data), which
 * needs `rawInput`: its shape may have one -1, deduced from the byte count.
 * Throws V2BinaryError naming the problem.
 */
export function parseBinaryRequest(
  body: Uint8Array,
  headerLength: string | string[] | number | undefined,
  opts: { rawInput?: V2RawInput } = {},
): V2BinaryRequest {
  const hlen = parseHeaderLength(headerLength);
  if (hlen > body.length)
    throw new V2BinaryError(`Inference-Header-Content-Length is ${hlen}, but the body has only ${body.length} bytes`);
  if (hlen === 0) return parseRawRequest(body, opts.rawInput);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(0, hlen)));
  } catch (err) {
    throw new V2BinaryError(
      `the first ${hlen} bytes (Inference-Header-Content-Length) are not a JSON inference header: ${(err as Error).message}`,
    );
  }
  if (!isRecord(header)) throw new V2BinaryError('the inference header must be a JSON object');
  const rawInputs = header.inputs;
  if (!Array.isArray(rawInputs) || rawInputs.length === 0)
    throw new V2BinaryError('the inference header must have a non-empty "inputs" array');
  let at = hlen;
  const inputs: V2RequestInput[] = rawInputs.map((inp, k) => {
    if (!isRecord(inp)) throw new V2BinaryError(`inputs[${k}] must be an object`);
    const name = inp.name;
    if (typeof name !== 'string' || name.length === 0)
      throw new V2BinaryError(`inputs[${k}]: "name" must be a non-empty string`);
    const what = `input "${name}"`;
    if (!isDatatype(inp.datatype))
      throw new V2BinaryError(
        `${what}: unknown datatype ${JSON.stringify(inp.datatype)} (one of ${V2_DATATYPES.join(', ')})`,
      );
    const count = elementCount(inp.shape, what);
    const params = inp.parameters;
    if (params !== undefined && !isRecord(params)) throw new V2BinaryError(`${what}: "parameters" must be an object`);
    const size = params?.binary_data_size;
    const base = {
      name,
      shape: inp.shape as number[],
      datatype: inp.datatype,
      ...(params ? { parameters: params } : {}),
    };
    if (size === undefined) {
      if (inp.data === undefined) throw new V2BinaryError(`${what} has neither "data" nor parameters.binary_data_size`);
      return { ...base, data: inp.data, binary: false };
    }
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
      throw new V2BinaryError(
        `${what}: parameters.binary_data_size must be a non-negative integer, got ${JSON.stringify(size)}`,
      );
    if (inp.data !== undefined)
      throw new V2BinaryError(`${what} has both "data" and parameters.binary_data_size; send its values one way`);
    if (size > body.length - at) {
      throw new V2BinaryError(
        `${what}: binary_data_size is ${size}, but only ${body.length - at} bytes of the body remain after the ${hlen}-byte header${at > hlen ? ` and the ${at - hlen} bytes of the binary inputs before it` : ''}`,
      );
    }
    const data = decodeTensor(body, at, size, inp.datatype, count, what);
    at += size;
    return { ...base, data, binary: true };
  });
  if (at !== body.length) {
    throw new V2BinaryError(
      `the body has ${body.length - at} bytes after the header and the binary inputs that no input's binary_data_size accounts for (header ${hlen} + binary ${at - hlen} of ${body.length} bytes)`,
    );
  }
  return { header, inputs, headerBytes: hlen, binaryBytes: at - hlen };
}

/** A raw binary request: the whole body is the one input's data (Inference-Header-Content-Length: 0). */
function parseRawRequest(body: Uint8Array, raw: V2RawInput | undefined): V2BinaryRequest {
  if (!raw)
    throw new V2BinaryError(
      'Inference-Header-Content-Length is 0 (a raw binary request without a JSON header), which only a model with a single input accepts',
    );
  const what = `input "${raw.name}" (raw binary request)`;
  const variable = raw.shape.filter((d) => d < 0).length;
  if (variable > 1)
    throw new V2BinaryError(
      `${what}: the model's input shape [${raw.shape.join(', ')}] has more than one variable dimension, so a raw binary request cannot give its shape; send a JSON header`,
    );
  let shape = raw.shape.slice();
  if (raw.datatype === 'BYTES') {
    shape = [1];
  } else if (variable === 1) {
    const fixed = raw.shape.filter((d) => d >= 0).reduce((a, b) => a * b, 1) * V2_ELEMENT_SIZE[raw.datatype];
    if (fixed === 0 || body.length % fixed !== 0)
      throw new V2BinaryError(
        `${what}: ${body.length} bytes are not a whole number of [${raw.shape.join(', ')}] ${raw.datatype} rows (${fixed} bytes each)`,
      );
    shape = raw.shape.map((d) => (d < 0 ? body.length / fixed : d));
  }
  const count = shape.reduce((a, b) => a * b, 1);
  const data = decodeTensor(body, 0, body.length, raw.datatype, count, what);
  const input: V2RequestInput = {
    name: raw.name,
    shape,
    datatype: raw.datatype,
    parameters: { binary_data_size: body.length },
    data,
    binary: true,
  };
  return {
    header: {
      inputs: [{ name: raw.name, shape, datatype: raw.datatype, parameters: { binary_data_size: body.length } }],
      parameters: { binary_data_output: true },
    },
    inputs: [input],
    headerBytes: 0,
    binaryBytes: body.length,
  };
}

/**
 * Values of a numeric tensor as float32 (what an FP32 model input needs): FP32 as is, FP64 and integer
 * types converted (INT64 beyond ±2^24 loses precision, as any float32 does), FP16 and BF16 decoded from
 * their bits, BOOL as 0/1. BYTES cannot be converted.
 */
export function toFloat32(data: V2TensorData, datatype: V2Datatype): Float32Array {
  if (Array.isArray(data) || datatype === 'BYTES') throw new V2BinaryError('BYTES data cannot be read as numbers');
  if (data instanceof Float32Array) return data;
  const out = new Float32Array(data.length);
  if (datatype === 'FP16') {
    const bits = data as Uint16Array;
    for (let i = 0; i < bits.length; i++) out[i] = halfToFloat(bits[i]!);
  } else if (datatype === 'BF16') {
    const wide = new Uint32Array(out.buffer);
    const bits = data as Uint16Array;
    for (let i = 0; i < bits.length; i++) wide[i] = bits[i]! << 16;
  } else if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    for (let i = 0; i < data.length; i++) out[i] = Number(data[i]!);
  } else {
    out.set(data as ArrayLike<number>);
  }
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * Which outputs a request wants as binary: `outputs[].parameters.binary_data` for a named output, else
 * the request's `parameters.binary_data_output`, else JSON. Works for JSON requests too (a JSON request
 * may ask for binary outputs). Throws V2BinaryError when either flag is not a boolean.
 */
export function binaryOutputSelector(request: {
  parameters?: unknown;
  outputs?: unknown;
}): (outputName: string) => boolean {
  let all = false;
  if (request.parameters !== undefined && request.parameters !== null) {
    if (!isRecord(request.parameters)) throw new V2BinaryError('"parameters" must be an object');
    const v = request.parameters.binary_data_output;
    if (v !== undefined && typeof v !== 'boolean')
      throw new V2BinaryError(`parameters.binary_data_output must be true or false, got ${JSON.stringify(v)}`);
    all = v === true;
  }
  const per = new Map<string, boolean>();
  if (Array.isArray(request.outputs)) {
    for (const o of request.outputs) {
      if (!isRecord(o) || typeof o.name !== 'string') continue; // the route's own validation names these
      const p = o.parameters;
      if (p === undefined || p === null) continue;
      if (!isRecord(p)) throw new V2BinaryError(`output "${o.name}": "parameters" must be an object`);
      if (p.binary_data === undefined) continue;
      if (typeof p.binary_data !== 'boolean')
        throw new V2BinaryError(
          `output "${o.name}": parameters.binary_data must be true or false, got ${JSON.stringify(p.binary_data)}`,
        );
      per.set(o.name, p.binary_data);
    }
  }
  return (name) => per.get(name) ?? all;
}

/** One output of a response. */
export interface V2ResponseOutput {
  name: string;
  shape: number[];
  datatype: V2Datatype;
  data: V2TensorData;
  parameters?: Record<string, unknown>;
}

export interface V2ResponseBody {
  body: Buffer;
  /** The Inference-Header-Content-Length value to send; null when no output is binary (plain JSON). */
  headerLength: number | null;
  contentType: 'application/json' | 'application/octet-stream';
}

/**
 * Encode a response: `response` is the V2 response object without its outputs (model_name,
 * model_version, id, parameters, …, as the JSON route writes them); `outputs` in order. Binary outputs
 * (binary(name) true) get parameters.binary_data_size and their bytes after the JSON header, in output
 * order; the others carry `data` in the JSON. With no binary output the body is the plain JSON response.
 */
export function encodeResponse(
  response: Record<string, unknown>,
  outputs: V2ResponseOutput[],
  binary: (outputName: string) => boolean,
): V2ResponseBody {
  const chunks: Uint8Array[] = [];
  const jsonOutputs = outputs.map((o) => {
    const count = elementCount(o.shape, `output "${o.name}"`);
    const n = o.data.length;
    if (n !== count) throw new Error(`output "${o.name}": ${n} values for shape [${o.shape.join(', ')}]`);
    if (binary(o.name)) {
      const bytes = encodeTensor(o.data, o.datatype);
      chunks.push(bytes);
      return {
        name: o.name,
        datatype: o.datatype,
        shape: o.shape,
        parameters: { ...o.parameters, binary_data_size: bytes.length },
      };
    }
    return {
      name: o.name,
      datatype: o.datatype,
      shape: o.shape,
      ...(o.parameters ? { parameters: o.parameters } : {}),
      data: jsonData(o.data, o.datatype),
    };
  });
  const head = Buffer.from(JSON.stringify({ ...response, outputs: jsonOutputs }), 'utf8');
  if (chunks.length === 0) return { body: head, headerLength: null, contentType: 'application/json' };
  return { body: Buffer.concat([head, ...chunks]), headerLength: head.length, contentType: 'application/octet-stream' };
}

/** Little-endian bytes of a tensor (BYTES: a 4-byte length before each element). */
export function encodeTensor(data: V2TensorData, datatype: V2Datatype): Uint8Array {
  if (Array.isArray(data)) {
    if (datatype !== 'BYTES') throw new Error(`a list of byte strings is BYTES data, not ${datatype}`);
    const total = data.reduce((a, b) => a + 4 + b.length, 0);
    const out = new Uint8Array(total);
    const view = new DataView(out.buffer);
    let at = 0;
    for (const el of data) {
      view.setUint32(at, el.length, true);
      out.set(el, at + 4);
      at += 4 + el.length;
    }
    return out;
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN || data.BYTES_PER_ELEMENT === 1) return bytes;
  const copy = bytes.slice();
  swapBytes(copy, data.BYTES_PER_ELEMENT);
  return copy;
}

function jsonData(data: V2TensorData, datatype: V2Datatype): unknown[] {
  if (Array.isArray(data)) return data.map((b) => Buffer.from(b).toString('utf8'));
  if (datatype === 'BOOL') return Array.from(data as Uint8Array, (v) => v !== 0);
  // JSON numbers are doubles: 64-bit integers beyond ±2^53 are rounded (binary outputs are exact)
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Array.from(data, (v) => Number(v));
  if (datatype === 'FP16' || datatype === 'BF16') return Array.from(toFloat32(data, datatype));
  return Array.from(data as ArrayLike<number>);
}
