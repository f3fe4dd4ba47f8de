/**
 * The bad-input corpus: every case gets a 4xx with a JSON body whose message names the problem, and
 * the server is still ready afterwards. No stack traces, no file paths.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIABETES_ROW, testApp } from '../helpers/app.js';

let app: FastifyInstance;
beforeAll(async () => {
  ({ app } = await testApp({ MAX_BATCH_ROWS: '100', MC_MAX_WORK: '50000', MC_MAX_SAMPLES: '2000', BODY_LIMIT_BYTES: '65536' }));
});
afterAll(() => app.close());

const ROW = DIABETES_ROW;
const v2 = (data: unknown, extra: Record<string, unknown> = {}) => ({ inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', data, ...extra }] });
const deep = (n: number): string => `${'['.repeat(n)}1${']'.repeat(n)}`;

type Case = [name: string, method: 'POST' | 'GET', url: string, body: string | object | undefined, status: number, mention: RegExp, contentType?: string];
const P = '/v1/models/diabetes/predict';
const U = '/v1/models/diabetes/uncertainty';
const I = '/v2/models/diabetes/infer';
const cases: Case[] = [
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
  ['1e400 (overflows to Infinity)', 'POST', P, `{"instances": [[1e400,${ROW.slice(1).join(',')}]]}`, 400, /instances\[0\]\[0\]/],
  ['3.5e38 (beyond float32)', 'POST', P, { instances: [[3.5e38, ...ROW.slice(1)]] }, 400, /float32/],
  ['nested too deep', 'POST', P, `{"instances": [${deep(20000)}]}`, 400, /instances\[0\]|JSON/],
  ['object row missing a feature', 'POST', P, { instances: [{ age: 1, sex: 2 }] }, 400, /missing feature/],
  ['object row with an unknown feature', 'POST', P, { instances: [{ ...Object.fromEntries(['age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6'].map((k) => [k, 1])), zzz: 1 }] }, 400, /unknown feature.*zzz/],
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
  ['rows × samples over MC_MAX_WORK', 'POST', U, { instances: Array(30).fill(ROW), samples: 2000 }, 413, /MC_MAX_WORK=50000/],
  ['unknown model', 'POST', '/v1/models/nope/predict', { instances: [ROW] }, 404, /unknown model "nope"/],
  ['path-traversal-looking model name', 'POST', '/v1/models/..%2F..%2Fetc%2Fpasswd/predict', { instances: [ROW] }, 404, /unknown model/],
  ['dot-dot model name', 'GET', '/v1/models/..', undefined, 404, /not found|unknown model/],
  ['wrong content-type', 'POST', P, 'instances=1', 415, /content-type|Unsupported Media Type/i, 'application/x-www-form-urlencoded'],
  ['text/plain body', 'POST', P, JSON.stringify({ instances: [ROW] }), 415, /content-type|Media Type/i, 'text/plain'],
  ['V2 no inputs', 'POST', I, { inputs: [] }, 400, /inputs/],
  ['V2 inputs missing', 'POST', I, {}, 400, /inputs/],
  ['V2 unknown datatype', 'POST', I, v2(ROW, { datatype: 'FP99' }), 400, /unknown datatype "FP99"/],
  ['V2 unsupported datatype', 'POST', I, v2(ROW.map(String), { datatype: 'BYTES' }), 400, /BYTES is not supported/],
  ['V2 shape/data mismatch', 'POST', I, v2(ROW.slice(0, 7)), 400, /shape \[1, 10\] needs 10/],
  ['V2 nested shape mismatch', 'POST', I, v2([ROW.slice(0, 5), ROW.slice(5)], { shape: [2, 10] }), 400, /expected 10 elements/],
  ['V2 negative shape', 'POST', I, v2(ROW, { shape: [-1, 10] }), 400, /shape/],
  ['V2 wrong feature count in shape', 'POST', I, v2(ROW, { shape: [2, 5] }), 400, /expected \[rows, 10\]/],
  ['V2 string data', 'POST', I, v2(['a', ...ROW.slice(1)]), 400, /data\[0\]/],
  ['V2 missing data', 'POST', I, { inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32' }] }, 400, /data/],
  ['V2 data not an array', 'POST', I, v2('abc'), 400, /data/],
  ['V2 unknown input name', 'POST', I, v2(ROW, { name: 'x' }), 400, /unknown input "x"/],
  ['V2 bad parameters (mc_samples string)', 'POST', I, { ...v2(ROW), parameters: { mc_samples: 'lots' } }, 400, /mc_samples/],
  ['V2 bad parameters (mc_samples 0)', 'POST', I, { ...v2(ROW), parameters: { mc_samples: 0 } }, 400, /mc_samples/],
  ['V2 parameters not an object', 'POST', I, { ...v2(ROW), parameters: [1, 2] }, 400, /parameters/],
  ['V2 mc work over the limit', 'POST', I, { ...v2(Array(10).fill(ROW), { shape: [10, 10] }), parameters: { mc_samples: 10000 } }, 400, /MC_MAX_SAMPLES|MC_MAX_WORK/],
  ['V2 unknown model', 'POST', '/v2/models/nope/infer', v2(ROW), 404, /unknown model/],
  ['V2 unknown version', 'POST', '/v2/models/diabetes/versions/9/infer', v2(ROW), 404, /no version "9"/],
  ['V2 invalid JSON', 'POST', I, '{"inputs":', 400, /JSON/],
];

describe('bad-input corpus', () => {
  it(`has at least 40 cases (${cases.length})`, () => expect(cases.length).toBeGreaterThanOrEqual(40));
  it.each(cases)('%s → 4xx naming the problem', async (_name, method, url, body, status, mention, contentType) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const r = await app.inject({ method, url, payload, headers: payload === undefined ? {} : { 'content-type': contentType ?? 'application/json' } });
    expect(r.statusCode).toBe(status);
    const json = r.json();
    const message = url.startsWith('/v2') ? json.error : json.message;
    expect(typeof message).toBe('string');
    expect(message).toMatch(mention);
    if (!url.startsWith('/v2')) expect(Object.keys(json).sort()).toEqual(expect.arrayContaining(['error', 'message', 'statusCode']));
    else expect(Object.keys(json)).toEqual(['error']);
    // no internals leak
    expect(r.body).not.toMatch(/\bat \w+.*\(|node_modules|\/work\/|\.ts:\d+/);
    expect((await app.inject('/health/ready')).statusCode).toBe(200);
  });
});
