import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  modelParamsFastPath,
  predictFastPath,
  uncertaintyFastPath,
  v2InferFastPath,
  v2ParamsFastPath,
} from '../../src/server/schemas/fast-path.js';
import { ModelParams, PredictBody, uncertaintyBody } from '../../src/server/schemas/v1.js';
import { V2InferRequest, V2Params } from '../../src/server/schemas/v2.js';

// values as JSON.parse can give them, leaning towards the shapes the fast paths look at
const num = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.constantFrom(0, -0, 1, 1e308, -5e-324, 0.5, 2 ** 53, 2 ** 53 + 2),
);
const cell = fc.oneof(
  { weight: 8, arbitrary: num },
  fc.constant(null),
  fc.string({ maxLength: 2 }),
  fc.boolean(),
  fc.constant([]),
  fc.constant({}),
);
const row = fc.oneof(
  { weight: 6, arbitrary: fc.array(num, { maxLength: 12 }) },
  fc.array(cell, { maxLength: 5 }),
  fc.dictionary(fc.string({ maxLength: 3 }), num, { maxKeys: 3 }),
  num,
  fc.constant(null),
);
const rows = fc.oneof(
  { weight: 5, arbitrary: fc.array(row, { minLength: 1, maxLength: 4 }) },
  fc.constant([]),
  row,
  fc.string({ maxLength: 3 }),
);
const option = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 2 });
const body = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record(
      {
        instances: rows,
        samples: option(fc.oneof(fc.integer({ min: -2, max: 20000 }), num)),
        interval: option(fc.oneof(num, fc.constantFrom(0, 1, 0.9))),
        seed: option(fc.oneof(fc.integer({ min: -1 }), num, fc.constant(2 ** 53))),
        return_samples: option(fc.oneof(fc.boolean(), num)),
        other: option(fc.jsonValue()),
      },
      { requiredKeys: [] },
    ),
  },
  rows,
  fc.jsonValue(),
);
// a JSON round trip drops undefined keys and turns -0 into 0, exactly like a request body
const json = body.map((b) => JSON.parse(JSON.stringify(b ?? null)) as unknown);

// route params as Fastify gives them: an object of strings, sometimes odd
const params = fc.oneof(
  { weight: 4, arbitrary: fc.record({ name: fc.string({ maxLength: 210 }) }) },
  fc.record({ name: fc.oneof(fc.constant(''), fc.string({ minLength: 199, maxLength: 202 }), fc.integer()) }),
  fc.record({ name: fc.string(), other: fc.string() }),
  fc.jsonValue(),
);

// V2 infer bodies: tensors, parameters and outputs, valid or nearly so (odd fields are rare)
const rare = <T>(a: fc.Arbitrary<T>) => fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, a);
const shape = fc.oneof(
  { weight: 5, arbitrary: fc.array(fc.integer({ min: -1, max: 64 }), { maxLength: 9 }) },
  fc.constant([1.5]),
);
const tensor = fc.record(
  {
    name: fc.oneof({ weight: 8, arbitrary: fc.constant('input') }, fc.integer()),
    shape,
    datatype: fc.oneof({ weight: 8, arbitrary: fc.constantFrom('FP32', 'INT64', 'BYTES') }, fc.constant(3)),
    parameters: option(
      fc.oneof(
        fc.record({ binary_data_size: fc.oneof(fc.integer({ min: -1 }), num) }, { requiredKeys: [] }),
        fc.jsonValue(),
      ),
    ),
    data: option(fc.oneof({ weight: 4, arbitrary: fc.array(cell, { maxLength: 12 }) }, fc.array(num), fc.jsonValue())),
    other: rare(fc.jsonValue()),
  },
  { requiredKeys: ['name', 'shape', 'datatype'] },
);
const v2Parameters = fc.record(
  {
    mc_samples: option(fc.oneof(fc.integer({ min: -1, max: 2000 }), fc.constant('auto'), num)),
    mc_tolerance: rare(num),
    mc_max_samples: rare(fc.integer()),
    seed: option(fc.oneof(fc.integer({ min: -1 }), num, fc.constant(2 ** 53))),
    interval: option(fc.oneof(num, fc.constantFrom(0, 1, 0.9))),
    interval_method: option(fc.constantFrom('gaussian', 'conformal', 'other')),
    timeout: option(fc.oneof(fc.integer({ min: -1 }), num)),
    binary_data_output: option(fc.oneof(fc.boolean(), num)),
    other: rare(fc.jsonValue()),
  },
  { requiredKeys: [] },
);
const v2Body = fc
  .oneof(
    {
      weight: 6,
      arbitrary: fc.record(
        {
          id: option(fc.oneof(fc.string({ maxLength: 4 }), num)),
          parameters: option(fc.oneof({ weight: 4, arbitrary: v2Parameters }, fc.jsonValue())),
          inputs: fc.oneof({ weight: 5, arbitrary: fc.array(tensor, { maxLength: 3 }) }, fc.jsonValue()),
          outputs: option(
            fc.array(
              fc.record(
                {
                  name: fc.oneof(fc.constantFrom('mean', 'std'), num),
                  parameters: option(fc.record({ binary_data: fc.oneof(fc.boolean(), num) }, { requiredKeys: [] })),
                  other: rare(fc.jsonValue()),
                },
                { requiredKeys: ['name'] },
              ),
              { maxLength: 3 },
            ),
          ),
          other: rare(fc.jsonValue()),
        },
        { requiredKeys: ['inputs'] },
      ),
    },
    fc.jsonValue(),
  )
  .map((b) => JSON.parse(JSON.stringify(b ?? null)) as unknown);
const v2Params = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ name: fc.string({ maxLength: 210 }), version: option(fc.string({ maxLength: 102 })) }),
  },
  fc.record({ name: fc.string(), other: fc.string() }),
  fc.jsonValue(),
);

const config = { MC_MAX_SAMPLES: 10000, MC_DEFAULT_SAMPLES: 100 };

describe('validation fast paths accept only what zod accepts, and return what zod returns', () => {
  for (const [name, fast, schema, arbitrary] of [
    ['predict', predictFastPath, PredictBody, undefined],
    ['uncertainty', uncertaintyFastPath(config.MC_MAX_SAMPLES), uncertaintyBody(config), undefined],
    ['model params', modelParamsFastPath, ModelParams, params],
    ['V2 infer', v2InferFastPath, V2InferRequest, v2Body],
    ['V2 params', v2ParamsFastPath, V2Params, v2Params],
  ] as const) {
    it(`${name}: 4000 random inputs`, () => {
      let taken = 0;
      fc.assert(
        fc.property(arbitrary ?? json, (data) => {
          const value = fast(data);
          if (value === undefined) return;
          taken++;
          const parsed = schema.safeParse(data);
          expect(parsed.success).toBe(true);
          expect(value).toEqual(parsed.data);
        }),
        { numRuns: 4000, seed: 42 },
      );
      // and it is taken often enough to matter (the common body shapes)
      expect(taken).toBeGreaterThan(50);
    });
  }

  it('takes the bodies the benchmarks and clients send', () => {
    const rowsOf = [[59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87]];
    expect(predictFastPath({ instances: rowsOf })).toEqual({ instances: rowsOf });
    expect(predictFastPath(rowsOf)).toBe(rowsOf);
    expect(
      uncertaintyFastPath(10000)({ instances: rowsOf, samples: 100, seed: 3, interval: 0.8, return_samples: false }),
    ).toBeDefined();
    const v2 = {
      inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', data: rowsOf[0] }],
      parameters: { mc_samples: 100, seed: 1, interval: 0.8, binary_data_output: true, content_type: 'x' },
      outputs: [{ name: 'mean', parameters: { binary_data: false } }],
    };
    expect(v2InferFastPath(v2)).toBe(v2);
    expect(v2ParamsFastPath({ name: 'diabetes', version: '2' })).toEqual({ name: 'diabetes', version: '2' });
    // everything else goes to zod
    expect(v2InferFastPath({ ...v2, parameters: { mc_samples: 'auto', mc_tolerance: 0.1 } })).toBeUndefined();
    expect(v2InferFastPath({ ...v2, extra: 1 })).toBeUndefined();
    expect(v2InferFastPath({ inputs: [{ ...v2.inputs[0], shape: [1, 2, 3, 4, 5, 6, 7, 8, 9] }] })).toBeUndefined();
    expect(predictFastPath({ instances: [{ age: 1 }] })).toBeUndefined();
    expect(uncertaintyFastPath(10000)({ instances: rowsOf, samples: 10001 })).toBeUndefined();
    expect(uncertaintyFastPath(10000)({ instances: rowsOf, extra: 1 })).toBeUndefined();
  });
});
