/**
 * Issue 11 over HTTP: interval_method per request (/v1 body, V2 parameters) and in the responses, the
 * 422s, a heteroscedastic model's per-row aleatoric std, and the settings in /v1/models and V2 metadata.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/server/app.js';
import { exportOnnx } from '../../src/train/export-onnx.js';
import { conformalQuantile } from '../../src/uncertainty/intervals.js';
import { normalQuantile } from '../../src/util/special-functions.js';
import { DIABETES_ROW, WINE_ROW } from '../helpers/app.js';
import { heteroNet } from '../helpers/hetero.js';

const SCORES = Array.from({ length: 40 }, (_, i) => 0.05 * (i + 1));
let dir: string;
let app: FastifyInstance;
let workers: FastifyInstance;

async function appOver(env: Record<string, string>): Promise<FastifyInstance> {
  const a = await buildApp({ config: loadConfig({ MODELS_DIR: dir, BATCH_MAX_ROWS: '0', ...env }) });
  await a.loadModels();
  await a.ready();
  return a;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ds-uncertainty-http-'));
  mkdirSync(join(dir, 'hetero'));
  writeFileSync(join(dir, 'hetero', 'model.onnx'), exportOnnx(heteroNet(), {}));
  writeFileSync(
    join(dir, 'hetero', 'model.json'),
    JSON.stringify({
      task: 'regression',
      features: ['a', 'b'],
      output: 'prediction',
      noise: 'heteroscedastic',
      output_roles: { mean: 'prediction', log_variance: 'log_variance' },
      aleatoric_std: 0.1,
      epistemic_scale: 1.3,
      interval_method: 'gaussian',
      conformal: { score: '|y − mean| / std', rows: SCORES.length, source: 'test', scores: SCORES },
    }),
  );
  cpSync('models/diabetes', join(dir, 'diabetes'), { recursive: true });
  cpSync('models/wine', join(dir, 'wine'), { recursive: true });
  mkdirSync(join(dir, 'torchnet'));
  cpSync('test/fixtures/torch/legacy_train_op13.onnx', join(dir, 'torchnet', 'model.onnx'));
  app = await appOver({ MC_WORKERS: '0' });
  workers = await appOver({ MC_WORKERS: '1', MC_WORKER_MIN_WORK: '1' });
});
afterAll(async () => {
  await app?.close();
  await workers?.close();
});

const ROWS = [
  [1.2, -0.3],
  [-2, 0.8],
];
const post = (a: FastifyInstance, url: string, payload: object) => a.inject({ method: 'POST', url, payload });

describe('/v1 uncertainty: interval_method', () => {
  it("gaussian (the card's default) and conformal: same mean and std, half-width z·std or q·std; the response says which", async () => {
    const base = { instances: ROWS, samples: 200, seed: 4, interval: 0.8 };
    const g = await post(app, '/v1/models/hetero/uncertainty', base);
    const c = await post(app, '/v1/models/hetero/uncertainty', { ...base, interval_method: 'conformal' });
    expect(g.statusCode).toBe(200);
    expect(c.statusCode).toBe(200);
    const gb = g.json();
    const cb = c.json();
    expect(gb.interval_method).toBe('gaussian');
    expect(cb.interval_method).toBe('conformal');
    const q = conformalQuantile(SCORES, 0.8);
    const z = normalQuantile(0.9);
    for (let i = 0; i < 2; i++) {
      const a = gb.predictions[i];
      const b = cb.predictions[i];
      expect(b.mean).toBe(a.mean);
      expect(b.std).toBe(a.std);
      expect(a.interval).toMatchObject({ level: 0.8, method: 'gaussian' });
      expect(b.interval).toMatchObject({ level: 0.8, method: 'conformal' });
      expect(a.interval.upper - a.mean).toBeCloseTo(z * a.std, 9);
      expect(b.interval.upper - b.mean).toBeCloseTo(q * b.std, 9);
      // heteroscedastic: epistemic and aleatoric apart, the aleatoric part per row
      expect(a.std).toBeCloseTo(Math.hypot(a.epistemic_std, a.aleatoric_std), 9);
      expect(a.aleatoric_std).toBeGreaterThan(0.1);
    }
    expect(gb.predictions[0].aleatoric_std).not.toBe(gb.predictions[1].aleatoric_std);
  });

  it('a worker thread gives exactly the inline answer, method included', async () => {
    const body = { instances: ROWS, samples: 300, seed: 6, interval: 0.9, interval_method: 'conformal' };
    const a = await post(app, '/v1/models/hetero/uncertainty', body);
    const b = await post(workers, '/v1/models/hetero/uncertainty', body);
    expect(b.statusCode).toBe(200);
    expect(b.json()).toEqual(a.json());
    // concurrent requests with different methods, coalesced on the worker
    const bodies = [0, 1, 2, 3].map((k) => ({
      instances: [ROWS[k % 2]],
      samples: 20,
      seed: k,
      interval: 0.9,
      ...(k % 2 ? { interval_method: 'conformal' } : {}),
    }));
    const together = await Promise.all(bodies.map((p) => post(workers, '/v1/models/hetero/uncertainty', p)));
    for (const [k, r] of together.entries()) {
      expect(r.json()).toEqual((await post(app, '/v1/models/hetero/uncertainty', bodies[k]!)).json());
      expect(r.json().interval_method).toBe(k % 2 ? 'conformal' : 'gaussian');
    }
  });

  it('422 DS_INTERVAL_UNAVAILABLE: a level the calibration rows cannot reach, or conformal on a model without scores', async () => {
    // 40 rows: level 0.98 needs 49
    const far = await post(app, '/v1/models/hetero/uncertainty', {
      instances: ROWS,
      interval: 0.98,
      interval_method: 'conformal',
    });
    expect(far.statusCode).toBe(422);
    expect(far.json()).toEqual({
      statusCode: 422,
      error: 'Unprocessable Entity',
      code: 'DS_INTERVAL_UNAVAILABLE',
      message:
        'interval 0.98 with interval_method "conformal": model "hetero" was calibrated on 40 rows, and a finite conformal quantile at level 0.98 needs at least 49; ask for a lower level or interval_method "gaussian"',
    });
    const none = await post(app, '/v1/models/torchnet/uncertainty', {
      instances: [[1, 2, 3, 4]],
      interval_method: 'conformal',
    });
    expect(none.statusCode).toBe(422);
    expect(none.json().message).toBe(
      'interval_method "conformal": model "torchnet" has no conformal calibration scores in its card; use interval_method "gaussian"',
    );
    const bad = await post(app, '/v1/models/hetero/uncertainty', { instances: ROWS, interval_method: 'bootstrap' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/interval_method/);
  });

  it("a classifier ignores interval_method; its probabilities use the card's temperature", async () => {
    const r = await post(app, '/v1/models/wine/uncertainty', {
      instances: [WINE_ROW],
      samples: 20,
      seed: 1,
      interval_method: 'conformal',
    });
    expect(r.statusCode).toBe(200);
    expect(r.json().interval_method).toBeUndefined();
  });
});

describe('model listings', () => {
  it('/v1/models shows noise, epistemic_scale, interval_method and the methods served; a classifier its temperature', async () => {
    const hetero = (await app.inject('/v1/models/hetero')).json();
    expect(hetero).toMatchObject({
      noise: 'heteroscedastic',
      epistemic_scale: 1.3,
      interval_method: 'gaussian',
      interval_methods: ['gaussian', 'conformal'],
      aleatoric_std: 0.1,
    });
    const diabetes = (await app.inject('/v1/models/diabetes')).json();
    expect(diabetes).toMatchObject({
      noise: 'homoscedastic',
      epistemic_scale: JSON.parse(readFileSync('models/diabetes/model.json', 'utf8')).epistemic_scale,
      interval_method: 'conformal',
    });
    const torchnet = (await app.inject('/v1/models/torchnet')).json();
    expect(torchnet).toMatchObject({
      noise: 'homoscedastic',
      epistemic_scale: 1,
      interval_method: 'gaussian',
      interval_methods: ['gaussian'],
    });
    const wine = (await app.inject('/v1/models/wine')).json();
    expect(wine.temperature).toBeGreaterThan(0);
    expect(wine.noise).toBeUndefined();
    const list = (await app.inject('/v1/models')).json().models as { name: string; interval_methods?: string[] }[];
    expect(list.find((m) => m.name === 'hetero')!.interval_methods).toEqual(['gaussian', 'conformal']);
    expect(list.find((m) => m.name === 'torchnet')!.interval_methods).toEqual(['gaussian']);
    expect((await app.inject('/v1/models/hetero/card')).json().noise).toBe('heteroscedastic');
  });

  it('V2 model metadata parameters carry the same settings', async () => {
    const h = (await app.inject('/v2/models/hetero')).json();
    expect(h.parameters).toMatchObject({
      noise: 'heteroscedastic',
      epistemic_scale: 1.3,
      interval_method: 'gaussian',
      interval_methods: ['gaussian', 'conformal'],
    });
    expect(h.parameters.mc_outputs).toContain('aleatoric_std');
    const w = (await app.inject('/v2/models/wine')).json();
    expect(w.parameters.temperature).toBeGreaterThan(0);
  });
});

describe('V2 infer: parameters.interval_method', () => {
  const body = (parameters: Record<string, unknown>) => ({
    inputs: [{ name: 'input', shape: [2, 2], datatype: 'FP32', data: ROWS.flat() }],
    parameters: { mc_samples: 100, seed: 3, interval: 0.9, ...parameters },
  });

  it('conformal on request: the response parameters say so, the interval tensors are mean ± q·std, aleatoric_std is an output', async () => {
    const r = await post(app, '/v2/models/hetero/infer', body({ interval_method: 'conformal' }));
    expect(r.statusCode).toBe(200);
    const res = r.json();
    expect(res.parameters).toMatchObject({ interval: 0.9, interval_method: 'conformal' });
    const out = (name: string) => res.outputs.find((o: { name: string }) => o.name === name).data as number[];
    const q = conformalQuantile(SCORES, 0.9);
    for (let i = 0; i < 2; i++) {
      expect(out('upper')[i]! - out('mean')[i]!).toBeCloseTo(q * out('std')[i]!, 4);
      expect(out('std')[i]).toBeCloseTo(Math.hypot(out('epistemic_std')[i]!, out('aleatoric_std')[i]!), 4);
    }
    const d = await post(app, '/v2/models/hetero/infer', body({}));
    expect(d.json().parameters.interval_method).toBe('gaussian');
  });

  it('errors in the V2 shape: 422 for an unreachable level, 400 for an unknown method', async () => {
    const far = await post(app, '/v2/models/hetero/infer', body({ interval: 0.99, interval_method: 'conformal' }));
    expect(far.statusCode).toBe(422);
    expect(far.json()).toEqual({ error: expect.stringContaining('needs at least 99') });
    const bad = await post(app, '/v2/models/hetero/infer', body({ interval_method: 'exact' }));
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatch(/interval_method/);
  });

  it('diabetes (card default conformal) serves 0.9 conformally and refuses by default a level its calibration rows cannot reach', async () => {
    const rows = JSON.parse(readFileSync('models/diabetes/model.json', 'utf8')).conformal.rows as number;
    // a finite conformal quantile at level L needs n ≥ L/(1 − L) rows: 0.998 needs 499
    expect(rows).toBeLessThan(499);
    const ok = await post(app, '/v1/models/diabetes/uncertainty', { instances: [DIABETES_ROW], seed: 1 });
    expect(ok.json().interval_method).toBe('conformal');
    const far = await post(app, '/v1/models/diabetes/uncertainty', { instances: [DIABETES_ROW], interval: 0.998 });
    expect(far.statusCode).toBe(422);
    expect(far.json().message).toMatch(new RegExp(`calibrated on ${rows} rows.*needs at least 499`));
    const gaussian = await post(app, '/v1/models/diabetes/uncertainty', {
      instances: [DIABETES_ROW],
      interval: 0.998,
      interval_method: 'gaussian',
    });
    expect(gaussian.statusCode).toBe(200);
  });
});
