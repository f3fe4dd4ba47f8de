import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/server/app.js';
import { DIABETES_ROW, WINE_ROW, testApp } from '../helpers/app.js';

let app: FastifyInstance;
beforeAll(async () => {
  ({ app } = await testApp({ MAX_BATCH_ROWS: '50', MC_MAX_WORK: '20000', MC_MAX_SAMPLES: '5000' }));
});
afterAll(() => app.close());

const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, payload: payload as object });

describe('health', () => {
  it('live and ready', async () => {
    expect((await app.inject('/health/live')).json()).toEqual({ status: 'ok' });
    const ready = await app.inject('/health/ready');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready', models: ['diabetes', 'nodrop', 'torchnet', 'wine'] });
  });
  it('ready is 503 and model routes answer 503 while loading', async () => {
    const { buildApp } = await import('../../src/server/app.js');
    const { loadConfig } = await import('../../src/config.js');
    const loading = await buildApp({ config: loadConfig({}) });
    expect((await loading.inject('/health/ready')).statusCode).toBe(503);
    expect((await loading.inject('/health/live')).statusCode).toBe(200);
    const r = await loading.inject('/v1/models');
    expect(r.statusCode).toBe(503);
    expect(r.json()).toMatchInlineSnapshot(`
      {
        "code": "DS_NOT_READY",
        "error": "Service Unavailable",
        "message": "models are loading; retry shortly",
        "statusCode": 503,
      }
    `);
    await loading.close();
  });
});

describe('/v1/models', () => {
  it('lists one short record per model: name, versions, task, inputs, outputs, mc_available, interval methods', async () => {
    const { models } = (await app.inject('/v1/models')).json();
    const byName = Object.fromEntries(models.map((m: { name: string }) => [m.name, m]));
    expect(byName.diabetes).toEqual({
      name: 'diabetes',
      version: '1',
      versions: ['1'],
      task: 'regression',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 10] }],
      outputs: [{ name: 'prediction', datatype: 'FP32', shape: [-1, 1] }],
      mc_available: true,
      interval_methods: ['gaussian', 'conformal'],
    });
    expect(byName.wine).toMatchObject({ task: 'classification', mc_available: true });
    expect(byName.wine.interval_methods).toBeUndefined();
    expect(byName.nodrop).toMatchObject({ mc_available: false, interval_methods: ['gaussian'] });
    expect(byName.torchnet).toMatchObject({ mc_available: true, outputs: [{ name: 'y', shape: [-1, 2] }] });
    for (const m of models) expect(Object.keys(m).sort()).not.toContain('conformal');
  });
  it('the two shipped models list in under 4 KB (issue 21: it was 51 KB with every calibration score), their V2 metadata each under 1 KB', async () => {
    const shipped = await buildApp({ config: loadConfig({ MODELS_DIR: 'models', MC_WORKERS: '0' }) });
    await shipped.loadModels();
    const r = await shipped.inject('/v1/models');
    expect(r.json().models.map((m: { name: string }) => m.name)).toEqual(['diabetes', 'wine']);
    expect(r.rawPayload.length).toBeLessThan(4096);
    // the V2 metadata's parameters are as light: the settings, no card data
    for (const name of ['diabetes', 'wine'])
      expect((await shipped.inject(`/v2/models/${name}`)).rawPayload.length).toBeLessThan(1024);
    await shipped.close();
  });
  it('one model: the card without raw arrays (conformal scores summarised, curves as their length and last value)', async () => {
    const d = (await app.inject('/v1/models/diabetes')).json();
    expect(d).toMatchObject({ task: 'regression', dropout: [0.2], mc_available: true, version: '1', versions: ['1'] });
    expect(d.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, 10] }]);
    expect(d.aleatoric_std).toBeGreaterThan(0);
    expect(d.metrics.test.coverage_90).toBeGreaterThan(0.8);
    expect(d.feature_stats.min).toHaveLength(10); // 10 features: short enough to keep
    const card = (await app.inject('/v1/models/diabetes/card')).json();
    const scores = card.conformal.scores as number[];
    expect(scores).toHaveLength(354);
    expect(d.conformal.scores).toBeUndefined();
    // the quantile a conformal interval at that level uses: the ⌈(n + 1)·level⌉-th smallest score
    expect(d.conformal.scores_summary).toEqual({
      count: 354,
      min: scores[0],
      max: scores[353],
      quantiles: { '0.5': scores[177], '0.8': scores[283], '0.9': scores[319], '0.95': scores[337] },
    });
    expect(d.history.train_loss).toEqual({
      points: card.history.train_loss.length,
      last: card.history.train_loss.at(-1),
    });
    expect(JSON.stringify(d).length).toBeLessThan(JSON.stringify(card).length / 3);
    const w = (await app.inject('/v1/models/wine')).json();
    expect(w).toMatchObject({ task: 'classification', labels: ['class_0', 'class_1', 'class_2'], dropout: [0.2, 0.2] });
    expect((await app.inject('/v1/models/nodrop')).json()).toMatchObject({
      mc_available: false,
      dropout: [],
      features: ['x0', 'x1', 'x2', 'x3'],
    });
    expect((await app.inject('/v1/models/torchnet')).json()).toMatchObject({
      mc_available: true,
      dropout: [0.25, 0.4],
    });
  });
  it('the card: every field of the card file, and what the server read from the graph', async () => {
    const file = JSON.parse(readFileSync('models/wine/model.json', 'utf8'));
    const card = (await app.inject('/v1/models/wine/card')).json();
    expect(card).toMatchObject(file);
    expect(card).toMatchObject({ mc_available: true, inputs: [{ name: 'input', shape: [-1, 13] }], version: '1' });
    expect((await app.inject('/v1/models/wine/card?version=2')).statusCode).toBe(404);
    expect((await app.inject('/v1/models/nope/card')).statusCode).toBe(404);
  });
  it('one model; 404 for an unknown name', async () => {
    expect((await app.inject('/v1/models/wine')).json().name).toBe('wine');
    const r = await app.inject('/v1/models/nope');
    expect(r.statusCode).toBe(404);
    expect(r.json()).toMatchInlineSnapshot(`
      {
        "code": "DS_MODEL_NOT_FOUND",
        "error": "Not Found",
        "message": "unknown model "nope" (available: diabetes, nodrop, torchnet, wine)",
        "statusCode": 404,
      }
    `);
  });
});

describe('predict', () => {
  it('regression: a number per row, from arrays, objects or a bare array', async () => {
    const features = (await app.inject('/v1/models/diabetes')).json().features as string[];
    const obj = Object.fromEntries(features.map((f, j) => [f, DIABETES_ROW[j]]));
    const a = (await post('/v1/models/diabetes/predict', { instances: [DIABETES_ROW, obj] })).json();
    expect(a.model).toBe('diabetes');
    expect(a.predictions).toHaveLength(2);
    expect(typeof a.predictions[0]).toBe('number');
    expect(a.predictions[0]).toBe(a.predictions[1]);
    const b = (await post('/v1/models/diabetes/predict', [DIABETES_ROW])).json();
    expect(b.predictions[0]).toBe(a.predictions[0]);
    // dropout is off: the same answer every time
    expect((await post('/v1/models/diabetes/predict', [DIABETES_ROW])).json().predictions[0]).toBe(a.predictions[0]);
  });
  it('classification: label and probabilities per row', async () => {
    const r = (await post('/v1/models/wine/predict', { instances: [WINE_ROW] })).json();
    expect(Object.keys(r.predictions[0].probabilities)).toEqual(['class_0', 'class_1', 'class_2']);
    const ps = Object.values(r.predictions[0].probabilities) as number[];
    expect(ps.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 6);
    expect(r.predictions[0].label).toBe(['class_0', 'class_1', 'class_2'][ps.indexOf(Math.max(...ps))]);
  });
  it('several outputs: an array per row', async () => {
    const r = (await post('/v1/models/torchnet/predict', { instances: [[1, 2, 3, 4]] })).json();
    expect(r.predictions[0]).toHaveLength(2);
  });
  it('errors name the field, row and expectation', async () => {
    const cases: [unknown, number][] = [
      [{ instances: [[1, 2, 3]] }, 400],
      [{ instances: [[...DIABETES_ROW.slice(0, 9), 'x']] }, 400],
      [{ instances: [{ age: 1 }] }, 400],
      [{ rows: [DIABETES_ROW] }, 400],
      [{ instances: Array(51).fill(DIABETES_ROW) }, 413],
    ];
    const bodies = [];
    for (const [payload, status] of cases) {
      const r = await post('/v1/models/diabetes/predict', payload);
      expect(r.statusCode).toBe(status);
      bodies.push(r.json().message);
    }
    expect(bodies).toMatchInlineSnapshot(`
      [
        "instances[0]: expected 10 values (age, sex, bmi, bp, s1, s2, s3, s4, s5, s6), got 3",
        "body.instances[0][9]: Invalid input: expected number, received string",
        "instances[0]: missing feature(s) "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"",
        "body.instances: Invalid input: expected array, received undefined",
        "instances: 51 rows exceed MAX_BATCH_ROWS=50",
      ]
    `);
  });
});

describe('uncertainty', () => {
  it('regression: mean, std, epistemic_std, aleatoric_std and an interval that contains the mean', async () => {
    const r = await post('/v1/models/diabetes/uncertainty', {
      instances: [DIABETES_ROW, DIABETES_ROW],
      samples: 300,
      interval: 0.8,
      seed: 42,
    });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body).toMatchObject({ model: 'diabetes', samples: 300, interval: 0.8, seed: 42 });
    const p = body.predictions[0];
    expect(p.std).toBeCloseTo(Math.sqrt(p.epistemic_std ** 2 + p.aleatoric_std ** 2), 9);
    expect(p.interval.level).toBe(0.8);
    expect(p.interval.lower).toBeLessThan(p.mean);
    expect(p.interval.upper).toBeGreaterThan(p.mean);
    expect(p.epistemic_std).toBeGreaterThan(0);
    // the same seed reproduces the answer exactly
    const again = (
      await post('/v1/models/diabetes/uncertainty', {
        instances: [DIABETES_ROW, DIABETES_ROW],
        samples: 300,
        interval: 0.8,
        seed: 42,
      })
    ).json();
    expect(again.predictions).toEqual(body.predictions);
    const other = (
      await post('/v1/models/diabetes/uncertainty', { instances: [DIABETES_ROW], samples: 300, seed: 43 })
    ).json();
    expect(other.predictions[0].mean).not.toBe(p.mean);
  });
  it('classification: probabilities, entropy, mutual_information, variation_ratio and samples on request', async () => {
    const r = (
      await post('/v1/models/wine/uncertainty', { instances: [WINE_ROW], samples: 50, seed: 1, return_samples: true })
    ).json();
    const p = r.predictions[0];
    expect(Object.keys(p)).toEqual([
      'label',
      'probabilities',
      'entropy',
      'mutual_information',
      'variation_ratio',
      'samples',
    ]);
    expect(p.samples).toHaveLength(50);
    expect(p.samples[0]).toHaveLength(3);
    expect(p.mutual_information).toBeGreaterThanOrEqual(0);
    expect(p.mutual_information).toBeLessThanOrEqual(p.entropy);
  });
  it('uses MC_DEFAULT_SAMPLES when samples is absent; unseeded answers differ', async () => {
    const r = (await post('/v1/models/diabetes/uncertainty', { instances: [DIABETES_ROW] })).json();
    expect(r.samples).toBe(100);
    expect(Number.isInteger(r.seed)).toBe(true);
    const again = (await post('/v1/models/diabetes/uncertainty', { instances: [DIABETES_ROW] })).json();
    expect(again.predictions[0].mean).not.toBe(r.predictions[0].mean);
    expect(again.predictions[0].epistemic_std).toBeGreaterThan(0);
  });
  it('limits and bad parameters', async () => {
    const cases: [unknown, string, number][] = [
      [{ instances: [DIABETES_ROW], samples: 0 }, 'diabetes', 400],
      [{ instances: [DIABETES_ROW], samples: 5001 }, 'diabetes', 400],
      [{ instances: [DIABETES_ROW], samples: 2.5 }, 'diabetes', 400],
      [{ instances: [DIABETES_ROW], interval: 1 }, 'diabetes', 400],
      [{ instances: [DIABETES_ROW], seed: -1 }, 'diabetes', 400],
      [{ instances: Array(10).fill(DIABETES_ROW), samples: 2001 }, 'diabetes', 413],
      [{ instances: [[1, 2, 3, 4]] }, 'nodrop', 422],
    ];
    const messages = [];
    for (const [payload, model, status] of cases) {
      const r = await post(`/v1/models/${model}/uncertainty`, payload);
      expect(r.statusCode).toBe(status);
      messages.push(r.json().message);
    }
    expect(messages).toMatchInlineSnapshot(`
      [
        "body.samples: Too small: expected number to be >=1",
        "body.samples: Too big: expected number to be <=5000",
        "body.samples: Invalid input: expected int, received number",
        "body.interval: Too big: expected number to be <1",
        "body.seed: Too small: expected number to be >=0",
        "rows × samples = 10 × 2001 = 20010 exceeds MC_MAX_WORK=20000; send fewer rows or samples",
        "model "nodrop" has no Dropout node, so Monte Carlo dropout is not available; use predict",
      ]
    `);
  });
});

describe('transport errors', () => {
  it('invalid JSON, empty body, wrong content type, oversized body', async () => {
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/models/diabetes/predict',
      headers: { 'content-type': 'application/json' },
      payload: '{"instances": [',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/JSON/);
    const empty = await app.inject({
      method: 'POST',
      url: '/v1/models/diabetes/predict',
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expect(empty.statusCode).toBe(400);
    const text = await app.inject({
      method: 'POST',
      url: '/v1/models/diabetes/predict',
      headers: { 'content-type': 'text/plain' },
      payload: 'hello',
    });
    expect(text.statusCode).toBe(415);
    const big = await app.inject({
      method: 'POST',
      url: '/v1/models/diabetes/predict',
      headers: { 'content-type': 'application/json' },
      payload: `[${'1,'.repeat(600_000)}1]`,
    });
    expect(big.statusCode).toBe(413);
    for (const r of [bad, empty, text, big])
      expect(Object.keys(r.json()).sort()).toEqual(['code', 'error', 'message', 'statusCode']);
  });
  it('unknown routes are 404 in Fastify shape; request ids are echoed', async () => {
    const r = await app.inject({ url: '/nope', headers: { 'x-request-id': 'abc-123' } });
    expect(r.statusCode).toBe(404);
    expect(r.headers['x-request-id']).toBe('abc-123');
    const g = await app.inject('/health/live');
    expect(g.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
  });
});

describe('metrics', () => {
  it('exposes HTTP, inference and MC metrics in Prometheus text', async () => {
    await post('/v1/models/diabetes/uncertainty', { instances: [DIABETES_ROW], samples: 10 });
    const r = await app.inject('/metrics');
    expect(r.headers['content-type']).toContain('text/plain');
    for (const name of [
      'http_request_duration_seconds_bucket',
      'inference_duration_seconds_bucket{le="0.0001",model="diabetes",mode="mc"}',
      'mc_samples_bucket',
      'models_loaded 4',
      'process_cpu_user_seconds_total',
    ]) {
      expect(r.body).toContain(name);
    }
  });

  it('HTTP durations are labelled by the route matched (prefix included), unmatched requests as such', async () => {
    const count = async (labels: string): Promise<number> => {
      const line = (await app.inject('/metrics')).body
        .split('\n')
        .find((l) => l.startsWith(`http_request_duration_seconds_count{${labels}}`));
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    };
    const predict = 'method="POST",route="/v1/models/:name/predict",status_code="200"';
    const v2 = 'method="GET",route="/v2/models/:name/ready",status_code="200"';
    const nope = 'method="GET",route="unmatched",status_code="404"';
    const before = [await count(predict), await count(v2), await count(nope)];
    await post('/v1/models/diabetes/predict', { instances: [DIABETES_ROW] });
    await app.inject('/v2/models/diabetes/ready');
    await app.inject('/nope');
    await app.inject('/nope');
    expect([await count(predict), await count(v2), await count(nope)]).toEqual([
      before[0]! + 1,
      before[1]! + 1,
      before[2]! + 2,
    ]);
  });
});
