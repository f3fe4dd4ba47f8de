/**
 * The bad-input corpus: every case gets a 4xx with a JSON body whose message names the problem, and
 * the server is still ready afterwards. No stack traces, no file paths.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIABETES_ROW, testApp } from '../helpers/app.js';
import { fakeTensorModel } from '../helpers/fake-tensor-model.js';

let app: FastifyInstance;
beforeAll(async () => {
  ({ app } = await testApp({
    MAX_BATCH_ROWS: '100',
    MC_MAX_WORK: '50000',
    MC_MAX_SAMPLES: '2000',
    BODY_LIMIT_BYTES: '65536',
    MC_MAX_WORK_BYTES: '1000000',
  }));
  // tensor models (issue 19): a segmentation net [N,1,4,4] and a text classifier (INT64 ids and mask [N,16])
  for (const kind of ['segmentation', 'text'] as const)
    await app.repository.swap(fakeTensorModel(kind), { name: kind, file: `${kind}.onnx`, card: null });
});
afterAll(() => app.close());

const ROW = DIABETES_ROW;
const v2 = (data: unknown, extra: Record<string, unknown> = {}) => ({
  inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', data, ...extra }],
});
const deep = (n: number): string => `${'['.repeat(n)}1${']'.repeat(n)}`;

type Case = [
  name: string,
  method: 'POST' | 'GET',
  url: string,
  body: string | object | Buffer | undefined,
  status: number,
  mention: RegExp,
  contentType?: string | null,
  headers?: Record<string, string>,
];

/**
 * A V2 infer case with binary tensors framed as tritonclient frames them: the JSON header, the raw
 * bytes, no content-type, and Inference-Header-Content-Length (the header's length unless given).
 */
const binary = (
  name: string,
  header: unknown,
  raw: ArrayBufferView,
  status: number,
  mention: RegExp,
  headerLength?: string,
): Case => {
  const json = Buffer.isBuffer(header)
    ? header
    : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const body = Buffer.concat([json, Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)]);
  return [
    `V2 binary: ${name}`,
    'POST',
    I,
    body,
    status,
    mention,
    null,
    { 'inference-header-content-length': headerLength ?? String(json.length) },
  ];
};
const NONE = new Uint8Array(0);
const f32 = (values: number[]) => Float32Array.from(values);
const binInput = (size: number, extra: Record<string, unknown> = {}) => ({
  inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', parameters: { binary_data_size: size }, ...extra }],
});
const P = '/v1/models/diabetes/predict';
const U = '/v1/models/diabetes/uncertainty';
const I = '/v2/models/diabetes/infer';
const SEG = '/v2/models/segmentation/infer';
const TEXT = '/v2/models/text/infer';
const image = (extra: Record<string, unknown> = {}) => ({
  inputs: [{ name: 'image', shape: [1, 1, 4, 4], datatype: 'FP32', data: Array(16).fill(0.5), ...extra }],
});
const ids16 = Array.from({ length: 16 }, (_, j) => j);
const textInputs = (ids: unknown = [ids16], mask: unknown = [ids16.map(() => 1)], shape = [1, 16]) => ({
  inputs: [
    { name: 'input_ids', shape, datatype: 'INT64', data: ids },
    { name: 'attention_mask', shape, datatype: 'INT64', data: mask },
  ],
});
/** Tensor models: every case names the input, and the axis and extent where there is one. */
const tensorCases: Case[] = [
  ['tensor: unknown input', 'POST', SEG, image({ name: 'img' }), 400, /unknown input "img".*"image"/],
  ['tensor: missing input', 'POST', TEXT, { inputs: [textInputs().inputs[0]] }, 400, /missing input "attention_mask"/],
  ['tensor: datatype', 'POST', SEG, image({ datatype: 'FP64' }), 400, /input "image": datatype FP64, expected FP32/],
  [
    'tensor: rank',
    'POST',
    SEG,
    image({ shape: [1, 16] }),
    400,
    /input "image": shape \[1, 16\] has rank 2, expected rank 4/,
  ],
  [
    'tensor: extent',
    'POST',
    SEG,
    image({ shape: [1, 1, 4, 5] }),
    400,
    /input "image": axis 3 has 5 values, expected 4/,
  ],
  ['tensor: empty batch', 'POST', SEG, image({ shape: [0, 1, 4, 4], data: [] }), 400, /input "image": axis 0/],
  [
    'tensor: batches disagree',
    'POST',
    TEXT,
    { inputs: [textInputs().inputs[0], { ...textInputs().inputs[1], shape: [2, 16], data: [ids16, ids16] }] },
    400,
    /input "attention_mask": axis 0 \(the batch\) has 2 rows, but input "input_ids" has 1/,
  ],
  ['tensor: float id', 'POST', TEXT, textInputs([[0.5, ...ids16.slice(1)]]), 400, /input "input_ids": element 0/],
  ['tensor: string id', 'POST', TEXT, textInputs([['a', ...ids16.slice(1)]]), 400, /input "input_ids": element 0/],
  [
    'tensor: ragged data',
    'POST',
    TEXT,
    textInputs([ids16.slice(1)]),
    400,
    /input "input_ids": data\[0\] has 15 values on axis 1, expected 16/,
  ],
  [
    'tensor: too many bytes of work',
    'POST',
    SEG,
    { ...image(), parameters: { mc_samples: 1000 } },
    413,
    /MC_MAX_WORK_BYTES=1000000/,
  ],
  [
    'tensor /v1: bare row for two inputs',
    'POST',
    '/v1/models/text/predict',
    { instances: [ids16] },
    400,
    /instances\[0\]: the model takes 2 inputs/,
  ],
  [
    'tensor /v1: wrong row extent',
    'POST',
    '/v1/models/segmentation/predict',
    { instances: [[[ids16.slice(0, 4), ids16.slice(0, 4), ids16.slice(0, 4)]]] },
    400,
    /input "image": axis 2 has 3 values, expected 4/,
  ],
  [
    'tensor: binary data of the wrong size',
    'POST',
    SEG,
    Buffer.concat([
      Buffer.from(
        JSON.stringify({
          inputs: [{ name: 'image', shape: [1, 1, 4, 4], datatype: 'FP32', parameters: { binary_data_size: 60 } }],
        }),
      ),
      Buffer.alloc(60),
    ]),
    400,
    /input "image": 16 elements of FP32 take 64 bytes, but binary_data_size is 60/,
    null,
    {
      'inference-header-content-length': String(
        JSON.stringify({
          inputs: [{ name: 'image', shape: [1, 1, 4, 4], datatype: 'FP32', parameters: { binary_data_size: 60 } }],
        }).length,
      ),
    },
  ],
];

const cases: Case[] = [
  ...tensorCases,
  ['empty body', 'POST', P, '', 400, /body/i],
  ['invalid JSON', 'POST', P, '{"instances": [1,', 400, /JSON/],
  ['JSON string', 'POST', P, '"hello"', 400, /body/],
  ['JSON null', 'POST', P, 'null', 400, /body/],
  ['JSON number', 'POST', P, '42', 400, /body/],
  ['array of numbers (not rows)', 'POST', P, '[1,2,3]', 400, /body\[0\]/],
  ['missing instances', 'POST', P, { rows: [ROW] }, 400, /instances/],
  ['instances not an array', 'POST', P, { instances: 'abc' }, 400, /instances/],
  ['instances an object', 'POST', P, { instances: { a: 1 } }, 400, /instances/],
  ['empty instances', 'POST', P, { instances: [] }, 400, /instances/],
  ['row too short', 'POST', P, { instances: [ROW.slice(0, 9)] }, 400, /instances\[0\].*10 values/],
  ['row too long', 'POST', P, { instances: [[...ROW, 1]] }, 400, /instances\[0\].*got 11/],
  ['ragged rows', 'POST', P, { instances: [ROW, ROW.slice(0, 5)] }, 400, /instances\[1\]/],
  ['string in row', 'POST', P, { instances: [[...ROW.slice(0, 9), 'x']] }, 400, /instances\[0\]\[9\]/],
  ['null in row', 'POST', P, { instances: [[null, ...ROW.slice(1)]] }, 400, /instances\[0\]\[0\]/],
  ['boolean in row', 'POST', P, { instances: [[true, ...ROW.slice(1)]] }, 400, /instances\[0\]\[0\]/],
  ['NaN literal', 'POST', P, `{"instances": [[NaN,${ROW.slice(1).join(',')}]]}`, 400, /JSON/],
  ['Infinity literal', 'POST', P, `{"instances": [[Infinity,${ROW.slice(1).join(',')}]]}`, 400, /JSON/],
  [
    '1e400 (overflows to Infinity)',
    'POST',
    P,
    `{"instances": [[1e400,${ROW.slice(1).join(',')}]]}`,
    400,
    /instances\[0\]\[0\]/,
  ],
  ['3.5e38 (beyond float32)', 'POST', P, { instances: [[3.5e38, ...ROW.slice(1)]] }, 400, /float32/],
  ['nested too deep', 'POST', P, `{"instances": [${deep(20000)}]}`, 400, /instances\[0\]|JSON/],
  ['object row missing a feature', 'POST', P, { instances: [{ age: 1, sex: 2 }] }, 400, /missing feature/],
  [
    'object row with an unknown feature',
    'POST',
    P,
    {
      instances: [
        {
          ...Object.fromEntries(['age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6'].map((k) => [k, 1])),
          zzz: 1,
        },
      ],
    },
    400,
    /unknown feature.*zzz/,
  ],
  ['too many rows', 'POST', P, { instances: Array(101).fill(ROW) }, 413, /MAX_BATCH_ROWS=100/],
  ['body over the limit', 'POST', P, JSON.stringify({ instances: Array(2000).fill(ROW) }), 413, /too large|Body/i],
  ['samples 0', 'POST', U, { instances: [ROW], samples: 0 }, 400, /samples/],
  ['samples negative', 'POST', U, { instances: [ROW], samples: -5 }, 400, /samples/],
  ['samples float', 'POST', U, { instances: [ROW], samples: 2.5 }, 400, /samples/],
  ['samples string', 'POST', U, { instances: [ROW], samples: '100' }, 400, /samples/],
  ['samples too large', 'POST', U, { instances: [ROW], samples: 2001 }, 400, /samples.*2000/],
  ['interval 0', 'POST', U, { instances: [ROW], interval: 0 }, 400, /interval/],
  ['interval 1', 'POST', U, { instances: [ROW], interval: 1 }, 400, /interval/],
  ['interval > 1', 'POST', U, { instances: [ROW], interval: 1.5 }, 400, /interval/],
  ['seed non-integer', 'POST', U, { instances: [ROW], seed: 1.5 }, 400, /seed/],
  ['seed string', 'POST', U, { instances: [ROW], seed: 'abc' }, 400, /seed/],
  ['return_samples not boolean', 'POST', U, { instances: [ROW], return_samples: 'yes' }, 400, /return_samples/],
  ['interval_method unknown', 'POST', U, { instances: [ROW], interval_method: 'bootstrap' }, 400, /interval_method/],
  ['interval_method not a string', 'POST', U, { instances: [ROW], interval_method: 1 }, 400, /interval_method/],
  // diabetes: 71 conformal calibration rows (its card's default method), so 0.99 needs 99
  [
    'conformal level beyond the calibration rows (card default)',
    'POST',
    U,
    { instances: [ROW], interval: 0.998 },
    422,
    /interval 0\.998 .*calibrated on \d+ rows.*needs at least 499/,
  ],
  [
    'conformal level beyond the calibration rows (asked)',
    'POST',
    U,
    { instances: [ROW], interval: 0.999, interval_method: 'conformal' },
    422,
    /needs at least 999/,
  ],
  [
    'conformal on a model without scores',
    'POST',
    '/v1/models/torchnet/uncertainty',
    { instances: [[1, 2, 3, 4]], interval_method: 'conformal' },
    422,
    /torchnet.*no conformal calibration scores/,
  ],
  [
    'rows × samples over MC_MAX_WORK',
    'POST',
    U,
    { instances: Array(30).fill(ROW), samples: 2000 },
    413,
    /MC_MAX_WORK=50000/,
  ],
  ['unknown model', 'POST', '/v1/models/nope/predict', { instances: [ROW] }, 404, /unknown model "nope"/],
  [
    'path-traversal-looking model name',
    'POST',
    '/v1/models/..%2F..%2Fetc%2Fpasswd/predict',
    { instances: [ROW] },
    404,
    /unknown model/,
  ],
  ['dot-dot model name', 'GET', '/v1/models/..', undefined, 404, /not found|unknown model/],
  [
    'wrong content-type',
    'POST',
    P,
    'instances=1',
    415,
    /content-type|Unsupported Media Type/i,
    'application/x-www-form-urlencoded',
  ],
  ['text/plain body', 'POST', P, JSON.stringify({ instances: [ROW] }), 415, /content-type|Media Type/i, 'text/plain'],
  ['V2 no inputs', 'POST', I, { inputs: [] }, 400, /inputs/],
  ['V2 inputs missing', 'POST', I, {}, 400, /inputs/],
  ['V2 unknown datatype', 'POST', I, v2(ROW, { datatype: 'FP99' }), 400, /unknown datatype "FP99"/],
  ['V2 unsupported datatype', 'POST', I, v2(ROW.map(String), { datatype: 'BYTES' }), 400, /BYTES is not supported/],
  ['V2 shape/data mismatch', 'POST', I, v2(ROW.slice(0, 7)), 400, /shape \[1, 10\] needs 10/],
  [
    'V2 nested shape mismatch',
    'POST',
    I,
    v2([ROW.slice(0, 5), ROW.slice(5)], { shape: [2, 10] }),
    400,
    /expected 10 elements/,
  ],
  ['V2 negative shape', 'POST', I, v2(ROW, { shape: [-1, 10] }), 400, /shape/],
  ['V2 wrong feature count in shape', 'POST', I, v2(ROW, { shape: [2, 5] }), 400, /expected \[rows, 10\]/],
  ['V2 string data', 'POST', I, v2(['a', ...ROW.slice(1)]), 400, /data\[0\]/],
  ['V2 missing data', 'POST', I, { inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32' }] }, 400, /data/],
  ['V2 data not an array', 'POST', I, v2('abc'), 400, /data/],
  ['V2 unknown input name', 'POST', I, v2(ROW, { name: 'x' }), 400, /unknown input "x"/],
  [
    'V2 bad parameters (mc_samples string)',
    'POST',
    I,
    { ...v2(ROW), parameters: { mc_samples: 'lots' } },
    400,
    /mc_samples/,
  ],
  ['V2 bad parameters (mc_samples 0)', 'POST', I, { ...v2(ROW), parameters: { mc_samples: 0 } }, 400, /mc_samples/],
  [
    'V2 bad parameters (interval_method unknown)',
    'POST',
    I,
    { ...v2(ROW), parameters: { mc_samples: 10, interval_method: 'exact' } },
    400,
    /interval_method/,
  ],
  [
    'V2 conformal level beyond the calibration rows',
    'POST',
    I,
    { ...v2(ROW), parameters: { mc_samples: 10, interval: 0.998, interval_method: 'conformal' } },
    422,
    /needs at least 499/,
  ],
  ['V2 parameters not an object', 'POST', I, { ...v2(ROW), parameters: [1, 2] }, 400, /parameters/],
  [
    'V2 mc work over the limit',
    'POST',
    I,
    { ...v2(Array(10).fill(ROW), { shape: [10, 10] }), parameters: { mc_samples: 10000 } },
    400,
    /MC_MAX_SAMPLES|MC_MAX_WORK/,
  ],
  ['V2 unknown model', 'POST', '/v2/models/nope/infer', v2(ROW), 404, /unknown model/],
  ['V2 unknown version', 'POST', '/v2/models/diabetes/versions/9/infer', v2(ROW), 404, /no version "9"/],
  ['V2 invalid JSON', 'POST', I, '{"inputs":', 400, /JSON/],
  ['V2 invalid JSON without a content-type', 'POST', I, '{"inputs":', 400, /JSON/, null],
  [
    'V2 form body',
    'POST',
    I,
    'inputs=1',
    415,
    /content-type "application\/x-www-form-urlencoded" is not supported/,
    'application/x-www-form-urlencoded',
  ],
  [
    'V2 octet-stream without Inference-Header-Content-Length',
    'POST',
    I,
    Buffer.from(f32(ROW).buffer),
    400,
    /Inference-Header-Content-Length/,
    'application/octet-stream',
  ],
  binary(
    'header length not a number',
    binInput(40),
    f32(ROW),
    400,
    /Inference-Header-Content-Length must be a non-negative integer, got "abc"/,
    'abc',
  ),
  binary('header length negative', binInput(40), f32(ROW), 400, /non-negative integer/, '-5'),
  binary(
    'header length beyond the body',
    binInput(40),
    f32(ROW),
    400,
    /Inference-Header-Content-Length is 100000, but the body has only/,
    '100000',
  ),
  binary(
    'header length cuts the JSON',
    binInput(40),
    f32(ROW),
    400,
    /first 20 bytes .* are not a JSON inference header/,
    '20',
  ),
  binary('header not an object', '[1,2]', NONE, 400, /must be a JSON object/),
  binary('header without inputs', { outputs: [] }, NONE, 400, /non-empty "inputs" array/),
  binary(
    'header not UTF-8',
    Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
    NONE,
    400,
    /not a JSON inference header: The encoded data was not valid/,
  ),
  binary(
    'binary_data_size beyond the body',
    binInput(4000),
    f32(ROW),
    400,
    /binary_data_size is 4000, but only 40 bytes/,
  ),
  binary('bytes left over', binInput(40), f32([...ROW, 1, 2]), 400, /8 bytes after the header and the binary inputs/),
  binary(
    'size does not fit the shape',
    binInput(36),
    f32(ROW.slice(0, 9)),
    400,
    /10 elements of FP32 take 40 bytes, but binary_data_size is 36/,
  ),
  binary('binary_data_size negative', binInput(-4), f32(ROW), 400, /binary_data_size must be a non-negative integer/),
  binary(
    'both data and binary_data_size',
    binInput(40, { data: ROW }),
    f32(ROW),
    400,
    /both "data" and parameters.binary_data_size/,
  ),
  binary('unknown datatype', binInput(40, { datatype: 'FP8' }), f32(ROW), 400, /unknown datatype "FP8"/),
  binary(
    'BYTES for a numeric model',
    { inputs: [{ name: 'input', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: 6 } }] },
    Buffer.from([2, 0, 0, 0, 0x68, 0x69]),
    400,
    /BYTES is not supported; send FP32/,
  ),
  binary(
    'BOOL byte other than 0/1',
    { inputs: [{ name: 'input', shape: [1, 10], datatype: 'BOOL', parameters: { binary_data_size: 10 } }] },
    Buffer.from([0, 1, 2, 0, 0, 0, 0, 0, 0, 0]),
    400,
    /BOOL element 2 is the byte 2/,
  ),
  binary(
    'NaN in FP32 data',
    binInput(40),
    f32([Number.NaN, ...ROW.slice(1)]),
    400,
    /binary element 0: expected a finite number, got NaN/,
  ),
  binary(
    'Infinity in FP64 data',
    binInput(80, { datatype: 'FP64' }),
    Float64Array.from([1, Infinity, ...ROW.slice(2)]),
    400,
    /binary element 1: expected a finite number, got Infinity/,
  ),
  binary(
    'FP64 beyond float32',
    binInput(80, { datatype: 'FP64' }),
    Float64Array.from([1e300, ...ROW.slice(1)]),
    400,
    /binary element 0: 1e\+300 is outside the float32 range/,
  ),
  binary(
    'rows over MAX_BATCH_ROWS',
    { inputs: [{ name: 'input', shape: [101, 10], datatype: 'FP32', parameters: { binary_data_size: 4040 } }] },
    new Float32Array(1010),
    413,
    /101 rows exceed MAX_BATCH_ROWS=100/,
  ),
  binary(
    'raw body not a whole number of rows',
    '',
    f32([...ROW, 1]),
    400,
    /44 bytes are not a whole number of \[-1, 10\] FP32 rows \(40 bytes each\)/,
    '0',
  ),
  binary(
    'binary_data_output not a boolean',
    { ...binInput(40), parameters: { binary_data_output: 'yes' } },
    f32(ROW),
    400,
    /binary_data_output/,
  ),
  binary(
    'binary_data not a boolean',
    { ...binInput(40), outputs: [{ name: 'prediction', parameters: { binary_data: 1 } }] },
    f32(ROW),
    400,
    /binary_data/,
  ),
  [
    'V2 binary_data_size without the header',
    'POST',
    I,
    binInput(40),
    400,
    /parameters.binary_data_size is given, but the request has no Inference-Header-Content-Length header/,
  ],
  [
    'V2 gzip that is not gzip',
    'POST',
    I,
    JSON.stringify(v2(ROW)),
    400,
    /the body is not valid gzip data/,
    'application/json',
    { 'content-encoding': 'gzip' },
  ],
  [
    'V2 unknown content-encoding',
    'POST',
    I,
    JSON.stringify(v2(ROW)),
    415,
    /content-encoding "br" is not supported/,
    'application/json',
    { 'content-encoding': 'br' },
  ],
];

describe('bad-input corpus', () => {
  it(`has at least 40 cases (${cases.length})`, () => expect(cases.length).toBeGreaterThanOrEqual(40));
  it.each(cases)(
    '%s → 4xx naming the problem',
    async (_name, method, url, body, status, mention, contentType, headers) => {
      const payload =
        body === undefined
          ? undefined
          : typeof body === 'string' || Buffer.isBuffer(body)
            ? body
            : JSON.stringify(body);
      // contentType null: no content-type header at all (tritonclient sends none)
      const type =
        payload === undefined || contentType === null ? {} : { 'content-type': contentType ?? 'application/json' };
      const r = await app.inject({ method, url, payload, headers: { ...type, ...headers } });
      expect(r.statusCode).toBe(status);
      const json = r.json();
      const message = url.startsWith('/v2') ? json.error : json.message;
      expect(typeof message).toBe('string');
      expect(message).toMatch(mention);
      if (!url.startsWith('/v2'))
        expect(Object.keys(json).sort()).toEqual(expect.arrayContaining(['error', 'message', 'statusCode']));
      else expect(Object.keys(json)).toEqual(['error']);
      // no internals leak
      // a stack frame ("at fn (file:1:2)" or "at /file:1:2"), not JSON.parse's "at position 20 (line 1 …)"
      expect(r.body).not.toMatch(
        /\bat [\w.<>$ ]+ \([^)]*:\d+:\d+\)|\bat (?:file:)?\/\S+:\d+:\d+|node_modules|\/work\/|\.ts:\d+/,
      );
      expect((await app.inject('/health/ready')).statusCode).toBe(200);
    },
  );
});
