/**
 * Property fuzzing (fast-check): arbitrary JSON bodies and arbitrary numeric rows never produce a 5xx,
 * never hang, and always get a JSON body back.
 */
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testApp } from '../helpers/app.js';

let app: FastifyInstance;
beforeAll(async () => {
  ({ app } = await testApp({ MC_MAX_WORK: '20000', MC_MAX_SAMPLES: '500' }));
});
afterAll(() => app.close());

const URLS = [
  '/v1/models/diabetes/predict',
  '/v1/models/diabetes/uncertainty',
  '/v1/models/wine/uncertainty',
  '/v2/models/diabetes/infer',
  '/v2/models/wine/infer',
];

async function check(url: string, payload: string): Promise<void> {
  const r = await app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } });
  expect(r.statusCode, `${url} ${payload.slice(0, 200)}`).toBeLessThan(500);
  expect(() => JSON.parse(r.body)).not.toThrow();
}

const number = fc.oneof(
  fc.double({ noNaN: false }),
  fc.integer(),
  fc.constantFrom(0, -0, 1e38, 3.5e38, -1e308, 5e-324),
);
const row = fc.array(fc.oneof(number, fc.constant(null), fc.string({ maxLength: 3 }), fc.boolean()), { maxLength: 15 });

describe('property fuzzing', () => {
  it('arbitrary JSON bodies (1200 runs over 5 routes)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...URLS), fc.jsonValue({ maxDepth: 6 }), async (url, body) =>
        check(url, JSON.stringify(body)),
      ),
      { numRuns: 1200, seed: 42 },
    );
  });
  it('structured bodies with arbitrary rows and parameters (1200 runs)', async () => {
    const v1 = fc.record(
      {
        instances: fc.array(
          fc.oneof(row, fc.dictionary(fc.constantFrom('age', 'sex', 'bmi', 'bp', 's1', 'x'), number)),
          { maxLength: 5 },
        ),
        samples: fc.oneof(fc.integer({ min: -5, max: 1000 }), fc.double(), fc.string()),
        interval: fc.oneof(fc.double(), fc.constant(0.9)),
        seed: fc.oneof(fc.integer(), fc.double()),
        return_samples: fc.oneof(fc.boolean(), fc.string()),
      },
      { requiredKeys: ['instances'] },
    );
    const v2 = fc.record({
      id: fc.oneof(fc.string(), fc.integer()),
      inputs: fc.array(
        fc.record({
          name: fc.constantFrom('input', 'x'),
          shape: fc.array(fc.integer({ min: -2, max: 12 }), { maxLength: 3 }),
          datatype: fc.constantFrom('FP32', 'FP64', 'INT64', 'BYTES', 'BOOL', 'FP8'),
          data: fc.oneof(row, fc.array(row, { maxLength: 3 })),
        }),
        { maxLength: 2 },
      ),
      parameters: fc.option(
        fc.record({ mc_samples: fc.oneof(fc.integer({ min: -1, max: 3000 }), fc.string()), seed: fc.integer() }),
        { nil: undefined },
      ),
    });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...URLS), v1, v2, async (url, b1, b2) =>
        check(url, JSON.stringify(url.startsWith('/v2') ? b2 : b1)),
      ),
      { numRuns: 1200, seed: 7 },
    );
  });
  it('V2 binary bodies: arbitrary headers, sizes, bytes and Inference-Header-Content-Length values (600 runs)', async () => {
    // a header that often reaches the tensor checks: the model's input, a datatype, a shape and a size
    const header = fc.record(
      {
        inputs: fc.array(
          fc.record(
            {
              name: fc.constantFrom('input', 'x'),
              shape: fc.array(fc.integer({ min: -1, max: 12 }), { maxLength: 3 }),
              datatype: fc.constantFrom(
                'FP32',
                'FP64',
                'INT64',
                'INT32',
                'UINT8',
                'BYTES',
                'BOOL',
                'FP16',
                'BF16',
                'FP8',
              ),
              parameters: fc.record({
                binary_data_size: fc.oneof(fc.integer({ min: -4, max: 200 }), fc.string({ maxLength: 2 })),
              }),
              data: fc.option(row, { nil: undefined }),
            },
            { requiredKeys: ['name', 'shape', 'datatype'] },
          ),
          { maxLength: 2 },
        ),
        parameters: fc.option(
          fc.record(
            { mc_samples: fc.integer({ min: 0, max: 50 }), binary_data_output: fc.oneof(fc.boolean(), fc.integer()) },
            { requiredKeys: [] },
          ),
          { nil: undefined },
        ),
        outputs: fc.option(
          fc.array(
            fc.record({
              name: fc.constantFrom('prediction', 'mean', 'x'),
              parameters: fc.record({ binary_data: fc.oneof(fc.boolean(), fc.string()) }),
            }),
            { maxLength: 2 },
          ),
          { nil: undefined },
        ),
      },
      { requiredKeys: ['inputs'] },
    );
    const text = fc.oneof(
      header.map((h) => JSON.stringify(h)),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 30 }),
    );
    const length = (json: string, raw: Uint8Array) =>
      fc.oneof(
        fc.constant(String(Buffer.byteLength(json))),
        fc.integer({ min: 0, max: Buffer.byteLength(json) + raw.length + 2 }).map(String),
        fc.constantFrom('', '-1', 'abc', '1e3', ' 7 '),
      );
    await fc.assert(
      fc.asyncProperty(
        text.chain((json) =>
          fc
            .uint8Array({ maxLength: 160 })
            .chain((raw) =>
              fc.tuple(
                fc.constant(json),
                fc.constant(raw),
                length(json, raw),
                fc.constantFrom(undefined, 'application/octet-stream', 'application/json'),
              ),
            ),
        ),
        async ([json, raw, headerLength, contentType]) => {
          const r = await app.inject({
            method: 'POST',
            url: '/v2/models/diabetes/infer',
            payload: Buffer.concat([Buffer.from(json), raw]),
            headers: {
              'inference-header-content-length': headerLength,
              ...(contentType ? { 'content-type': contentType } : {}),
            },
          });
          expect(r.statusCode, `${json.slice(0, 200)} + ${raw.length} bytes, header ${headerLength}`).toBeLessThan(500);
          if (r.statusCode >= 400) expect(Object.keys(JSON.parse(r.body) as object)).toEqual(['error']);
        },
      ),
      { numRuns: 600, seed: 11 },
    );
  });
  it('valid rows of arbitrary finite numbers always get 200 with finite statistics', async () => {
    const finite = fc.double({ min: -1e6, max: 1e6, noNaN: true });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(finite, { minLength: 10, maxLength: 10 }), { minLength: 1, maxLength: 8 }),
        async (rows) => {
          const r = await app.inject({
            method: 'POST',
            url: '/v1/models/diabetes/uncertainty',
            payload: { instances: rows, samples: 20, seed: 1 },
          });
          expect(r.statusCode).toBe(200);
          for (const p of r.json().predictions) {
            for (const v of [p.mean, p.std, p.epistemic_std, p.interval.lower, p.interval.upper])
              expect(Number.isFinite(v)).toBe(true);
            expect(p.std).toBeGreaterThanOrEqual(p.epistemic_std);
          }
        },
      ),
      { numRuns: 200, seed: 3 },
    );
  });
});
