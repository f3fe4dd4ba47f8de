/**
 * The V2 binary tensor data codec (src/server/protocol/v2-binary.ts): request bodies exactly as
 * tritonclient and kserve frame them (test/fixtures/v2, made by make_bodies.py with numpy and
 * rapidjson), exact round trips, responses read the way tritonclient's InferResult reads them, and
 * malformed bodies answered with an error that names the problem.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  V2BinaryError,
  type V2Datatype,
  type V2TensorData,
  binaryOutputSelector,
  encodeResponse,
  parseBinaryRequest,
  parseHeaderLength,
  toFloat32,
} from '../../../src/server/protocol/v2-binary.js';

const fx = 'test/fixtures/v2';
interface Case {
  header: string | null;
  bytes: number;
  inputs: { name: string; datatype: V2Datatype; shape: number[]; binary: boolean; values: unknown[] }[];
  outputs?: Record<string, boolean>;
}
const cases = JSON.parse(readFileSync(join(fx, 'bodies.json'), 'utf8')) as Record<string, Case>;

/** Values of decoded data, comparable with bodies.json (int64 as decimal strings, BYTES as byte lists). */
function comparable(data: V2TensorData, datatype: V2Datatype): unknown[] {
  if (Array.isArray(data)) return data.map((b) => Array.from(b));
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Array.from(data, (v) => v.toString());
  if (datatype === 'BOOL') return Array.from(data as Uint8Array, (v) => v === 1);
  return Array.from(data as ArrayLike<number>);
}

/** A request body framed as tritonclient frames it (_get_inference_request): JSON, then binary inputs in order. */
function tritonBody(header: Record<string, unknown>, raws: Uint8Array[]): { body: Buffer; headerLength: string } {
  const json = JSON.stringify(header);
  return { body: Buffer.concat([Buffer.from(json), ...raws]), headerLength: String(Buffer.byteLength(json)) };
}
const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** tritonclient's InferResult (http/_infer_result.py): JSON header, then each output with binary_data_size at a running offset. */
function readLikeTritonclient(
  body: Buffer,
  headerLength: number | null,
): Record<string, { datatype: string; shape: number[]; data: unknown }> {
  const result = JSON.parse(body.subarray(0, headerLength ?? body.length).toString('utf8')) as {
    outputs: {
      name: string;
      datatype: string;
      shape: number[];
      parameters?: { binary_data_size?: number };
      data?: unknown[];
    }[];
  };
  const buffer = headerLength === null ? Buffer.alloc(0) : body.subarray(headerLength);
  const out: Record<string, { datatype: string; shape: number[]; data: unknown }> = {};
  let index = 0;
  for (const o of result.outputs) {
    const size = o.parameters?.binary_data_size;
    if (size !== undefined) {
      const bytes = buffer.subarray(index, index + size);
      const copy = new Uint8Array(bytes).buffer; // np.frombuffer
      out[o.name] = {
        datatype: o.datatype,
        shape: o.shape,
        data: o.datatype === 'FP32' ? new Float32Array(copy) : new Uint8Array(copy),
      };
      index += size;
    } else {
      out[o.name] = { datatype: o.datatype, shape: o.shape, data: o.data };
    }
  }
  return out;
}

/** Float32 values with the awkward cases: −0, NaN, ±Infinity, subnormals, extremes. */
const awkwardF32 = Float32Array.from([
  0,
  -0,
  Number.NaN,
  Infinity,
  -Infinity,
  1.4e-45,
  -1.4e-45,
  1.1754942e-38,
  3.4028235e38,
  -3.4028235e38,
  0.1,
  1 / 3,
]);
const sameBits = (a: ArrayBufferView, b: ArrayBufferView): void =>
  expect(Buffer.from(bytesOf(a)).equals(Buffer.from(bytesOf(b)))).toBe(true);

describe('V2 binary requests as the clients frame them (test/fixtures/v2)', () => {
  for (const [name, c] of Object.entries(cases)) {
    if (c.header === null) continue;
    it(`${name}: every input decodes to the values the client sent`, () => {
      const body = readFileSync(join(fx, `${name}.bin`));
      expect(body.length).toBe(c.bytes);
      const req = parseBinaryRequest(body, c.header!);
      expect(req.headerBytes).toBe(Number(c.header));
      expect(req.inputs.map((i) => [i.name, i.datatype, i.shape, i.binary])).toEqual(
        c.inputs.map((i) => [i.name, i.datatype, i.shape, i.binary]),
      );
      req.inputs.forEach((inp, k) => {
        const want = c.inputs[k]!;
        if (inp.binary) expect(comparable(inp.data as V2TensorData, inp.datatype)).toEqual(want.values);
        else expect(inp.data).toEqual(want.values); // JSON data left as sent
      });
      expect(req.headerBytes + req.binaryBytes).toBe(body.length);
      if (c.outputs) {
        const pick = binaryOutputSelector(req.header);
        for (const [out, wanted] of Object.entries(c.outputs))
          if (out !== 'binary_data_output') expect(pick(out)).toBe(wanted);
        if ('binary_data_output' in c.outputs) expect(pick('anything')).toBe(true);
      }
    });
  }

  it('the header length counts bytes, not characters (kserve sends its id as raw UTF-8: "ïd-1")', () => {
    const body = readFileSync(join(fx, 'kserve_fp32_int32.bin'));
    const json = body.subarray(0, Number(cases.kserve_fp32_int32!.header)).toString('utf8');
    expect(json.length).toBe(Number(cases.kserve_fp32_int32!.header) - 1);
    expect(() => parseBinaryRequest(body, String(json.length))).toThrow(V2BinaryError);
  });

  it('a JSON-only tritonclient request (no Inference-Header-Content-Length) asks for binary outputs: binary_data_output', () => {
    const body = readFileSync(join(fx, 'triton_json_only.bin'));
    const header = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    expect(binaryOutputSelector(header)('y')).toBe(true);
    expect(() => parseBinaryRequest(body, undefined)).toThrow('the Inference-Header-Content-Length header is missing');
  });

  it('a body at an odd offset of a larger buffer (a pooled Buffer) decodes the same', () => {
    const body = readFileSync(join(fx, 'triton_fp64_int64_mixed.bin'));
    const pool = Buffer.alloc(body.length + 3);
    body.copy(pool, 3);
    const shifted = pool.subarray(3);
    const a = parseBinaryRequest(body, cases.triton_fp64_int64_mixed!.header!);
    const b = parseBinaryRequest(shifted, cases.triton_fp64_int64_mixed!.header!);
    expect(b.inputs.map((i) => i.data)).toEqual(a.inputs.map((i) => i.data));
  });
});

describe('V2 binary round trips are exact', () => {
  it('FP32, FP64 and INT64 in (awkward values included), bit for bit', () => {
    const f64 = Float64Array.from([0, -0, Number.NaN, Infinity, -Infinity, 5e-324, Number.MAX_VALUE, 0.1, Math.PI]);
    const i64 = BigInt64Array.from([0n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n]);
    const { body, headerLength } = tritonBody(
      {
        inputs: [
          { name: 'a', shape: [3, 4], datatype: 'FP32', parameters: { binary_data_size: awkwardF32.byteLength } },
          { name: 'b', shape: [9], datatype: 'FP64', parameters: { binary_data_size: f64.byteLength } },
          { name: 'c', shape: [5, 1], datatype: 'INT64', parameters: { binary_data_size: i64.byteLength } },
        ],
        parameters: { binary_data_output: true },
      },
      [bytesOf(awkwardF32), bytesOf(f64), bytesOf(i64)],
    );
    const req = parseBinaryRequest(body, headerLength);
    expect(req.inputs[0]!.data).toBeInstanceOf(Float32Array);
    expect(req.inputs[1]!.data).toBeInstanceOf(Float64Array);
    expect(req.inputs[2]!.data).toBeInstanceOf(BigInt64Array);
    sameBits(req.inputs[0]!.data as Float32Array, awkwardF32);
    sameBits(req.inputs[1]!.data as Float64Array, f64);
    expect(Array.from(req.inputs[2]!.data as BigInt64Array)).toEqual(Array.from(i64));
  });

  it('any FP32/FP64/INT64 tensors, mixed with JSON inputs, in any order (property)', () => {
    const tensor = fc.oneof(
      fc.float32Array({ maxLength: 40 }).map((d) => ({ datatype: 'FP32' as const, d })),
      fc.float64Array({ maxLength: 40 }).map((d) => ({ datatype: 'FP64' as const, d })),
      fc.bigInt64Array({ maxLength: 40 }).map((d) => ({ datatype: 'INT64' as const, d })),
      fc.array(fc.integer(), { maxLength: 5 }).map((d) => ({ datatype: 'JSON' as const, d })),
    );
    fc.assert(
      fc.property(fc.array(tensor, { minLength: 1, maxLength: 5 }), (tensors) => {
        const inputs = tensors.map((t, k) =>
          t.datatype === 'JSON'
            ? { name: `i${k}`, shape: [t.d.length], datatype: 'INT32', data: t.d }
            : {
                name: `i${k}`,
                shape: [t.d.length],
                datatype: t.datatype,
                parameters: { binary_data_size: t.d.byteLength },
              },
        );
        const { body, headerLength } = tritonBody(
          { inputs },
          tensors.flatMap((t) => (t.datatype === 'JSON' ? [] : [bytesOf(t.d)])),
        );
        const req = parseBinaryRequest(body, headerLength);
        tensors.forEach((t, k) => {
          if (t.datatype === 'JSON') expect(req.inputs[k]!.data).toEqual(t.d);
          else sameBits(req.inputs[k]!.data as ArrayBufferView, t.d);
        });
      }),
      { numRuns: 200, seed: 12 },
    );
  });

  it('FP32 out: binary outputs are read back bit for bit the way tritonclient reads them; JSON ones keep their data', () => {
    const y = Float32Array.from(awkwardF32);
    const z = Float32Array.from([1.5, -2.25]);
    const request = {
      parameters: { binary_data_output: true },
      outputs: [{ name: 'y' }, { name: 'z', parameters: { binary_data: false } }],
    };
    const res = encodeResponse(
      { model_name: 'm', model_version: '1', id: 'r1' },
      [
        { name: 'y', shape: [6, 2], datatype: 'FP32', data: y },
        { name: 'z', shape: [2], datatype: 'FP32', data: z },
      ],
      binaryOutputSelector(request),
    );
    expect(res.contentType).toBe('application/octet-stream');
    expect(res.headerLength).toBe(res.body.length - y.byteLength);
    const head = JSON.parse(res.body.subarray(0, res.headerLength!).toString('utf8')) as Record<string, unknown>;
    expect(head).toEqual({
      model_name: 'm',
      model_version: '1',
      id: 'r1',
      outputs: [
        { name: 'y', datatype: 'FP32', shape: [6, 2], parameters: { binary_data_size: 48 } },
        { name: 'z', datatype: 'FP32', shape: [2], data: [1.5, -2.25] },
      ],
    });
    const read = readLikeTritonclient(res.body, res.headerLength);
    sameBits(read.y!.data as Float32Array, y);
    expect(read.z!.data).toEqual([1.5, -2.25]);
  });

  it('several binary outputs follow the header in output order; none binary gives a plain JSON body', () => {
    const a = Float32Array.from([1, 2, 3]);
    const b = Float32Array.from([4, 5]);
    const both = encodeResponse(
      { model_name: 'm' },
      [
        { name: 'a', shape: [3], datatype: 'FP32', data: a },
        { name: 'b', shape: [1, 2], datatype: 'FP32', data: b },
      ],
      () => true,
    );
    const read = readLikeTritonclient(both.body, both.headerLength);
    sameBits(read.a!.data as Float32Array, a);
    sameBits(read.b!.data as Float32Array, b);
    const none = encodeResponse(
      { model_name: 'm' },
      [{ name: 'a', shape: [3], datatype: 'FP32', data: a }],
      binaryOutputSelector({}),
    );
    expect(none.headerLength).toBeNull();
    expect(none.contentType).toBe('application/json');
    expect(JSON.parse(none.body.toString('utf8'))).toEqual({
      model_name: 'm',
      outputs: [{ name: 'a', datatype: 'FP32', shape: [3], data: [1, 2, 3] }],
    });
  });

  it('per-output binary_data overrides binary_data_output, both ways', () => {
    expect(
      binaryOutputSelector({
        parameters: { binary_data_output: false },
        outputs: [{ name: 'y', parameters: { binary_data: true } }],
      })('y'),
    ).toBe(true);
    expect(
      binaryOutputSelector({
        parameters: { binary_data_output: true },
        outputs: [{ name: 'y', parameters: { binary_data: false } }],
      })('y'),
    ).toBe(false);
    expect(binaryOutputSelector({ parameters: { binary_data_output: true } })('y')).toBe(true);
    expect(binaryOutputSelector({ outputs: [{ name: 'y' }] })('y')).toBe(false);
  });
});

describe('V2 binary: malformed bodies name the problem', () => {
  const x = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const good = tritonBody(
    { inputs: [{ name: 'x', shape: [2, 3], datatype: 'FP32', parameters: { binary_data_size: 24 } }] },
    [bytesOf(x)],
  );
  const withHeader = (header: Record<string, unknown>, raw: Uint8Array = bytesOf(x)) => tritonBody(header, [raw]);
  const fails = (body: Uint8Array, header: string | string[] | undefined, message: string | RegExp, opts = {}) => {
    let err: unknown;
    try {
      parseBinaryRequest(body, header, opts);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(V2BinaryError);
    if (typeof message === 'string') expect((err as Error).message).toContain(message);
    else expect((err as Error).message).toMatch(message);
  };

  it('the Inference-Header-Content-Length value', () => {
    expect(parseBinaryRequest(good.body, good.headerLength).inputs[0]!.data).toEqual(x);
    fails(good.body, undefined, 'the Inference-Header-Content-Length header is missing');
    for (const bad of ['abc', '-1', '1.5', '', '0x10', '1e3'])
      fails(good.body, bad, 'Inference-Header-Content-Length must be a non-negative integer');
    fails(
      good.body,
      [good.headerLength, good.headerLength],
      'the Inference-Header-Content-Length header is given 2 times',
    );
    fails(
      good.body,
      String(good.body.length + 1),
      `Inference-Header-Content-Length is ${good.body.length + 1}, but the body has only ${good.body.length} bytes`,
    );
    expect(parseHeaderLength(['12'])).toBe(12);
    expect(parseHeaderLength(' 7 ')).toBe(7);
  });

  it('a header length that cuts the JSON short, or runs into the tensor bytes', () => {
    fails(
      good.body,
      String(Number(good.headerLength) - 1),
      /^the first \d+ bytes \(Inference-Header-Content-Length\) are not a JSON inference header/,
    );
    fails(good.body, String(Number(good.headerLength) + 4), /are not a JSON inference header/);
  });

  it('the JSON header itself', () => {
    const json = (text: string) => {
      const body = Buffer.from(text);
      return [body, String(body.length)] as const;
    };
    fails(...json('[1,2]'), 'the inference header must be a JSON object');
    fails(...json('{"id":"1"}'), 'the inference header must have a non-empty "inputs" array');
    fails(...json('{"inputs":[]}'), 'the inference header must have a non-empty "inputs" array');
    fails(...json('{"inputs":[7]}'), 'inputs[0] must be an object');
    fails(
      ...json('{"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]}'),
      'inputs[0]: "name" must be a non-empty string',
    );
    fails(
      ...json('{"inputs":[{"name":"x","shape":[1],"datatype":"FLOAT","data":[1]}]}'),
      'input "x": unknown datatype "FLOAT"',
    );
    fails(
      ...json('{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}'),
      'input "x": "shape" must be an array of non-negative integers',
    );
    fails(
      ...json('{"inputs":[{"name":"x","shape":[1.5],"datatype":"FP32","data":[1]}]}'),
      'input "x": "shape" must be an array of non-negative integers',
    );
    fails(
      ...json('{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}'),
      'input "x" has neither "data" nor parameters.binary_data_size',
    );
    fails(
      ...json('{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":[]}]}'),
      'input "x": "parameters" must be an object',
    );
    const bad = Buffer.concat([Buffer.from('{"inputs":"'), Buffer.from([0xff]), Buffer.from('"}')]);
    fails(bad, String(bad.length), /are not a JSON inference header/);
  });

  it('sizes that do not add up', () => {
    const hdr = (size: unknown, shape = [2, 3], extra = {}) => ({
      inputs: [{ name: 'x', shape, datatype: 'FP32', parameters: { binary_data_size: size }, ...extra }],
    });
    let r = withHeader(hdr(20));
    fails(r.body, r.headerLength, 'input "x": 6 elements of FP32 take 24 bytes, but binary_data_size is 20');
    r = withHeader(hdr(24, [2, 2]));
    fails(r.body, r.headerLength, 'input "x": 4 elements of FP32 take 16 bytes, but binary_data_size is 24');
    r = withHeader(hdr(28));
    fails(r.body, r.headerLength, 'input "x": binary_data_size is 28, but only 24 bytes of the body remain after the');
    r = withHeader(hdr(-4));
    fails(r.body, r.headerLength, 'input "x": parameters.binary_data_size must be a non-negative integer, got -4');
    r = withHeader(hdr('24'));
    fails(r.body, r.headerLength, 'input "x": parameters.binary_data_size must be a non-negative integer, got "24"');
    r = withHeader(hdr(24, [2, 3], { data: [1, 2, 3, 4, 5, 6] }));
    fails(r.body, r.headerLength, 'input "x" has both "data" and parameters.binary_data_size');
    r = withHeader(
      { inputs: [{ name: 'x', shape: [2, 3], datatype: 'FP32', parameters: { binary_data_size: 24 } }] },
      Buffer.concat([bytesOf(x), Buffer.from([1, 2, 3])]),
    );
    fails(
      r.body,
      r.headerLength,
      "the body has 3 bytes after the header and the binary inputs that no input's binary_data_size accounts for",
    );
    // a second input runs past the end: the message counts the first input's bytes
    r = tritonBody(
      {
        inputs: [
          { name: 'x', shape: [6], datatype: 'FP32', parameters: { binary_data_size: 24 } },
          { name: 'w', shape: [2], datatype: 'FP64', parameters: { binary_data_size: 16 } },
        ],
      },
      [bytesOf(x), new Uint8Array(8)],
    );
    fails(r.body, r.headerLength, 'input "w": binary_data_size is 16, but only 8 bytes of the body remain after the');
  });

  it('BYTES length prefixes and BOOL bytes', () => {
    const prefixed = (...parts: (number | string)[]) =>
      Buffer.concat(
        parts.map((p) => (typeof p === 'number' ? Buffer.from(new Uint32Array([p]).buffer) : Buffer.from(p))),
      );
    const bytesHeader = (size: number, n: number) => ({
      inputs: [{ name: 's', shape: [n], datatype: 'BYTES', parameters: { binary_data_size: size } }],
    });
    let raw = prefixed(2, 'ab', 0, 3, 'xyz');
    let r = tritonBody(bytesHeader(raw.length, 3), [raw]);
    expect(parseBinaryRequest(r.body, r.headerLength).inputs[0]!.data).toEqual(
      [Buffer.from('ab'), Buffer.alloc(0), Buffer.from('xyz')].map((b) => new Uint8Array(b)),
    );
    r = tritonBody(bytesHeader(raw.length, 2), [raw]);
    fails(r.body, r.headerLength, 'input "s": binary_data_size 17 holds 3 BYTES elements, but the shape needs 2');
    raw = prefixed(2, 'ab', 9, 'xyz');
    r = tritonBody(bytesHeader(raw.length, 2), [raw]);
    fails(
      r.body,
      r.headerLength,
      'input "s": the length prefix of BYTES element 1 says 9 bytes, but only 3 remain in binary_data_size 13',
    );
    raw = Buffer.concat([prefixed(2, 'ab'), Buffer.from([1, 0])]);
    r = tritonBody(bytesHeader(raw.length, 2), [raw]);
    fails(
      r.body,
      r.headerLength,
      'input "s": BYTES element 1 starts with a truncated length prefix (2 of 4 bytes left in binary_data_size 8)',
    );
    r = tritonBody({ inputs: [{ name: 'b', shape: [3], datatype: 'BOOL', parameters: { binary_data_size: 3 } }] }, [
      Uint8Array.from([1, 0, 2]),
    ]);
    fails(r.body, r.headerLength, 'input "b": BOOL element 2 is the byte 2; only 0 (false) and 1 (true) are allowed');
  });

  it('raw binary requests (Inference-Header-Content-Length: 0)', () => {
    const body = Buffer.from(bytesOf(x));
    fails(
      body,
      '0',
      'Inference-Header-Content-Length is 0 (a raw binary request without a JSON header), which only a model with a single input accepts',
    );
    const req = parseBinaryRequest(body, '0', { rawInput: { name: 'x', datatype: 'FP32', shape: [-1, 3] } });
    expect(req.inputs[0]).toMatchObject({ name: 'x', shape: [2, 3], datatype: 'FP32', binary: true });
    sameBits(req.inputs[0]!.data as Float32Array, x);
    expect(binaryOutputSelector(req.header)('y')).toBe(true);
    fails(
      body,
      '0',
      'input "x" (raw binary request): 24 bytes are not a whole number of [-1, 5] FP32 rows (20 bytes each)',
      { rawInput: { name: 'x', datatype: 'FP32', shape: [-1, 5] } },
    );
    fails(body, '0', 'has more than one variable dimension', {
      rawInput: { name: 'x', datatype: 'FP32', shape: [-1, -1] },
    });
  });

  it('binary output flags must be booleans', () => {
    expect(() => binaryOutputSelector({ parameters: { binary_data_output: 'yes' } })).toThrow(
      'parameters.binary_data_output must be true or false, got "yes"',
    );
    expect(() => binaryOutputSelector({ outputs: [{ name: 'y', parameters: { binary_data: 1 } }] })).toThrow(
      'output "y": parameters.binary_data must be true or false, got 1',
    );
    expect(() => binaryOutputSelector({ parameters: 3 })).toThrow('"parameters" must be an object');
  });

  it('whatever the bytes, parsing answers a V2BinaryError or a result, never another error (property)', () => {
    const base = tritonBody(
      {
        inputs: [
          { name: 'x', shape: [2, 3], datatype: 'FP32', parameters: { binary_data_size: 24 } },
          { name: 's', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: 6 } },
        ],
      },
      [bytesOf(x), Uint8Array.from([2, 0, 0, 0, 104, 105])],
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.body.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.nat(base.body.length),
        fc.integer({ min: -3, max: 3 }),
        (edits, cut, shift) => {
          const body = Buffer.from(base.body.subarray(0, Math.max(cut, 1)));
          for (const [at, v] of edits) if (at < body.length) body[at] = v;
          try {
            parseBinaryRequest(body, String(Number(base.headerLength) + shift));
          } catch (err) {
            expect(err).toBeInstanceOf(V2BinaryError);
          }
        },
      ),
      { numRuns: 500, seed: 3 },
    );
  });
});

describe('toFloat32: what an FP32 model input gets from other datatypes', () => {
  it('FP64, INT64, INT32 and BOOL convert; FP16 and BF16 decode from their bits; BYTES is refused', () => {
    expect(Array.from(toFloat32(Float64Array.from([0.5, -2]), 'FP64'))).toEqual([0.5, -2]);
    expect(Array.from(toFloat32(BigInt64Array.from([3n, -(2n ** 40n)]), 'INT64'))).toEqual([3, -(2 ** 40)]);
    expect(Array.from(toFloat32(Int32Array.from([7, -7]), 'INT32'))).toEqual([7, -7]);
    expect(Array.from(toFloat32(Uint8Array.from([1, 0]), 'BOOL'))).toEqual([1, 0]);
    expect(Array.from(toFloat32(Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00]), 'FP16'))).toEqual([
      1,
      -2,
      65504,
      2 ** -24,
      -0,
      Infinity,
    ]);
    expect(Number.isNaN(toFloat32(Uint16Array.from([0x7e00]), 'FP16')[0])).toBe(true);
    expect(Array.from(toFloat32(Uint16Array.from([0x3f80, 0xc040, 0x0000]), 'BF16'))).toEqual([1, -3, 0]);
    const f = Float32Array.from([1]);
    expect(toFloat32(f, 'FP32')).toBe(f);
    expect(() => toFloat32([new Uint8Array(1)], 'BYTES')).toThrow(V2BinaryError);
  });
});
