/**
 * samples "auto" over HTTP (issue 22): /v1 `samples: "auto"` with `tolerance` and `max_samples`, V2
 * `parameters.mc_samples: "auto"` with `mc_tolerance` and `mc_max_samples`; the answer's samples_used,
 * the same seed → the same answer (and the fixed-T answer of the samples used), the limits on
 * max_samples, and 400s naming the field.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTO_DEFAULT_MAX_SAMPLES, AUTO_DEFAULT_TOLERANCE, AUTO_MIN_SAMPLES } from '../../src/uncertainty/stopping.js';
import { DIABETES_ROW, WINE_ROW, testApp } from '../helpers/app.js';

let app: FastifyInstance;
let pooled: FastifyInstance;

beforeAll(async () => {
  app = (await testApp({ MC_MAX_SAMPLES: '5000', MC_MAX_WORK: '20000' })).app;
  // workers and coalescing on: "auto" runs on the worker (MC_WORKER_MIN_WORK 1), never coalesced, same answer
  pooled = (await testApp({ MC_WORKERS: '1', MC_WORKER_MIN_WORK: '1', MC_COALESCE: 'true' })).app;
});
afterAll(async () => {
  await app?.close();
  await pooled?.close();
});

const v1 = (body: Record<string, unknown>, model = 'diabetes', a = app) =>
  a.inject({ method: 'POST', url: `/v1/models/${model}/uncertainty`, payload: body });

const v2 = (parameters: Record<string, unknown>, a = app) =>
  a.inject({
    method: 'POST',
    url: '/v2/models/diabetes/infer',
    payload: { inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', data: DIABETES_ROW }], parameters },
  });

/** The mc_samples histogram's sum for diabetes. */
const samplesSum = async (): Promise<number> => {
  const line = (await app.inject('/metrics')).body
    .split('\n')
    .find((l) => l.startsWith('mc_samples_sum{model="diabetes"}'));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
};

describe('/v1 samples "auto"', () => {
  it('the mc_samples metric records the samples used, not max_samples', async () => {
    const before = await samplesSum();
    const body = (await v1({ instances: [DIABETES_ROW], samples: 'auto', max_samples: 4000, seed: 5 })).json();
    expect(body.samples_used).toBeLessThan(4000);
    expect((await samplesSum()) - before).toBe(body.samples_used);
  });

  it('answers with samples_used, the tolerance and max_samples; the same seed gives the fixed-T answer', async () => {
    const res = await v1({ instances: [DIABETES_ROW], samples: 'auto', seed: 3 });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({
      samples: 'auto',
      tolerance: AUTO_DEFAULT_TOLERANCE,
      max_samples: AUTO_DEFAULT_MAX_SAMPLES,
      seed: 3,
    });
    expect(body.samples_used).toBeGreaterThanOrEqual(AUTO_MIN_SAMPLES);
    expect(body.samples_used).toBeLessThan(AUTO_DEFAULT_MAX_SAMPLES);
    const fixed = (await v1({ instances: [DIABETES_ROW], samples: body.samples_used, seed: 3 })).json();
    expect(body.predictions).toEqual(fixed.predictions);
    expect(fixed.samples_used).toBeUndefined();
    const again = (await v1({ instances: [DIABETES_ROW], samples: 'auto', seed: 3 }, 'diabetes', pooled)).json();
    expect(again.predictions).toEqual(body.predictions);
    expect(again.samples_used).toBe(body.samples_used);
  });

  it('a tighter tolerance uses more samples, max_samples caps them; a classifier too', async () => {
    const loose = (await v1({ instances: [DIABETES_ROW], samples: 'auto', tolerance: 0.2, seed: 1 })).json();
    const tight = (await v1({ instances: [DIABETES_ROW], samples: 'auto', tolerance: 0.02, seed: 1 })).json();
    expect(loose.samples_used).toBe(AUTO_MIN_SAMPLES);
    expect(tight.samples_used).toBeGreaterThan(loose.samples_used);
    const capped = (await v1({ instances: [DIABETES_ROW], samples: 'auto', tolerance: 0.001, max_samples: 77 })).json();
    expect(capped).toMatchObject({ samples_used: 77, max_samples: 77, tolerance: 0.001 });
    const wine = await v1({ instances: [WINE_ROW], samples: 'auto', seed: 2 }, 'wine');
    expect(wine.statusCode).toBe(200);
    expect(wine.json().samples_used).toBeGreaterThanOrEqual(AUTO_MIN_SAMPLES);
    expect(Object.keys(wine.json().predictions[0].probabilities)).toHaveLength(3);
  });

  it('400 naming the field: bad tolerance, bad max_samples, either without "auto", a bad samples', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ samples: 'auto', tolerance: 0 }, 'tolerance'],
      [{ samples: 'auto', tolerance: 1.5 }, 'tolerance'],
      [{ samples: 'auto', tolerance: 'x' }, 'tolerance'],
      [{ samples: 'auto', max_samples: 0 }, 'max_samples'],
      [{ samples: 'auto', max_samples: 5001 }, 'max_samples'],
      [{ samples: 'auto', max_samples: 2.5 }, 'max_samples'],
      [{ samples: 100, tolerance: 0.05 }, 'tolerance'],
      [{ max_samples: 100 }, 'max_samples'],
      [{ samples: 'many' }, 'samples'],
    ];
    for (const [extra, field] of cases) {
      const res = await v1({ instances: [DIABETES_ROW], ...extra });
      expect(res.statusCode, JSON.stringify(extra)).toBe(400);
      expect(res.json().message, JSON.stringify(extra)).toContain(field);
    }
  });

  it('the work limit applies to max_samples before any sampling (413 naming it)', async () => {
    const rows = Array.from({ length: 30 }, () => DIABETES_ROW);
    const res = await v1({ instances: rows, samples: 'auto', max_samples: 1000 });
    expect(res.statusCode).toBe(413);
    expect(res.json().message).toMatchInlineSnapshot(
      `"rows × max_samples = 30 × 1000 = 30000 exceeds MC_MAX_WORK=20000; send fewer rows or a lower max_samples"`,
    );
    // the default max_samples counts too: 30 × 1000 > 20000
    expect((await v1({ instances: rows, samples: 'auto' })).statusCode).toBe(413);
    expect((await v1({ instances: rows, samples: 'auto', max_samples: 600 })).statusCode).toBe(200);
  });
});

/** Two rows that stop apart: row 1's bmi doubled gives its std a larger epistemic share (more samples). */
const TWO_ROWS = [DIABETES_ROW, DIABETES_ROW.map((v, j) => (j === 2 ? v * 2 : v))];

describe('per-row samples_used (each row stops on its own)', () => {
  it('/v1: the request says the most, each row its own when they differ; the worker path says the same', async () => {
    const body = (await v1({ instances: TWO_ROWS, samples: 'auto', seed: 4 })).json();
    const [a, b] = body.predictions.map((p: { samples_used: number }) => p.samples_used);
    expect(a).toBe(AUTO_MIN_SAMPLES);
    expect(b).toBeGreaterThan(a);
    expect(body.samples_used).toBe(b);
    // each row is the one-row fixed-T answer of its samples (row 0 with the request's seed)
    const first = (await v1({ instances: [DIABETES_ROW], samples: a, seed: 4 })).json();
    expect({ ...body.predictions[0], samples_used: undefined }).toEqual({
      ...first.predictions[0],
      samples_used: undefined,
    });
    // the worker (MC_WORKER_MIN_WORK 1): the same answer, counts and all
    expect((await v1({ instances: TWO_ROWS, samples: 'auto', seed: 4 }, 'diabetes', pooled)).json()).toEqual(body);
    // one row: no per-row field
    const one = (await v1({ instances: [DIABETES_ROW], samples: 'auto', seed: 4 })).json();
    expect(one.predictions[0].samples_used).toBeUndefined();
  });

  it('V2: the output mc_samples_used (INT32 [rows]) when rows differ or when asked for, JSON and binary', async () => {
    const infer = (
      parameters: Record<string, unknown>,
      rows = TWO_ROWS,
      extra: Record<string, unknown> = {},
      a = app,
    ) =>
      a.inject({
        method: 'POST',
        url: '/v2/models/diabetes/infer',
        payload: {
          inputs: [{ name: 'input', shape: [rows.length, 10], datatype: 'FP32', data: rows.flat() }],
          parameters,
          ...extra,
        },
      });
    const params = { mc_samples: 'auto', seed: 4 };
    const body = (await infer(params)).json();
    const used = body.outputs.find((o: { name: string }) => o.name === 'mc_samples_used');
    const v1Body = (await v1({ instances: TWO_ROWS, samples: 'auto', seed: 4 })).json();
    expect(used).toEqual({
      name: 'mc_samples_used',
      datatype: 'INT32',
      shape: [2],
      data: v1Body.predictions.map((p: { samples_used: number }) => p.samples_used),
    });
    expect(body.parameters.mc_samples_used).toBe(v1Body.samples_used);
    expect((await infer(params, TWO_ROWS, {}, pooled)).json()).toEqual(body);
    // one row: not there unless asked for; asked for, it is there
    const one = (await infer(params, [DIABETES_ROW])).json();
    expect(one.outputs.map((o: { name: string }) => o.name)).not.toContain('mc_samples_used');
    const asked = (
      await infer(params, [DIABETES_ROW], { outputs: [{ name: 'mean' }, { name: 'mc_samples_used' }] })
    ).json();
    expect(asked.outputs[1]).toEqual({
      name: 'mc_samples_used',
      datatype: 'INT32',
      shape: [1],
      data: [asked.parameters.mc_samples_used],
    });
    // a fixed T has no such output: naming it is a 400 listing the outputs
    const fixed = await infer({ mc_samples: 10 }, [DIABETES_ROW], { outputs: [{ name: 'mc_samples_used' }] });
    expect(fixed.statusCode).toBe(400);
    // binary: the INT32 values after the JSON header, at the offset of the outputs before it
    const bin = await infer({ ...params, binary_data_output: true });
    expect(bin.statusCode).toBe(200);
    const headerLength = Number(bin.headers['inference-header-content-length']);
    const head = JSON.parse(bin.rawPayload.subarray(0, headerLength).toString()) as {
      outputs: { name: string; datatype: string; parameters: { binary_data_size: number } }[];
    };
    let at = headerLength;
    for (const o of head.outputs) {
      if (o.name === 'mc_samples_used') {
        expect(o.datatype).toBe('INT32');
        const bytes = bin.rawPayload.subarray(at, at + o.parameters.binary_data_size);
        expect(Array.from(new Int32Array(Uint8Array.from(bytes).buffer))).toEqual(used.data);
      }
      at += o.parameters.binary_data_size;
    }
    expect(head.outputs.some((o) => o.name === 'mc_samples_used')).toBe(true);
  });
});

describe('V2 mc_samples "auto"', () => {
  it('answers with mc_samples_used; the same seed gives the fixed-T answer', async () => {
    const res = await v2({ mc_samples: 'auto', mc_tolerance: 0.1, seed: 9 });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.parameters).toMatchObject({ mc_samples: 'auto', mc_tolerance: 0.1, mc_max_samples: 1000, seed: 9 });
    const used = body.parameters.mc_samples_used;
    expect(used).toBeGreaterThanOrEqual(AUTO_MIN_SAMPLES);
    const fixed = (await v2({ mc_samples: used, seed: 9 })).json();
    expect(body.outputs).toEqual(fixed.outputs);
    expect(fixed.parameters.mc_samples_used).toBeUndefined();
  });

  it('errors name the field: bad mc_tolerance, mc_max_samples over MC_MAX_SAMPLES, either without "auto"', async () => {
    const bad = async (parameters: Record<string, unknown>): Promise<string> => {
      const res = await v2(parameters);
      expect(res.statusCode, JSON.stringify(parameters)).toBe(400);
      return res.json().error;
    };
    expect(await bad({ mc_samples: 'auto', mc_tolerance: -1 })).toContain('mc_tolerance');
    expect(await bad({ mc_samples: 'auto', mc_max_samples: 0 })).toContain('mc_max_samples');
    expect(await bad({ mc_samples: 'auto', mc_max_samples: 5001 })).toMatchInlineSnapshot(
      `"parameters.mc_max_samples: 5001 exceeds MC_MAX_SAMPLES=5000"`,
    );
    expect(await bad({ mc_samples: 10, mc_tolerance: 0.1 })).toContain('mc_tolerance');
    expect(await bad({ mc_samples: 'some' })).toContain('mc_samples');
  });
});
