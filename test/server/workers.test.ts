import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { DIABETES_ROW, WINE_ROW, testApp } from '../helpers/app.js';

describe('MC worker pool and predict batching', () => {
  let app: FastifyInstance;
  let inline: FastifyInstance;
  beforeAll(async () => {
    ({ app } = await testApp({
      MC_WORKERS: '1',
      MC_WORKER_MIN_WORK: '1000',
      BATCH_MAX_ROWS: '64',
      MC_MAX_WORK: '100000000',
      MC_MAX_SAMPLES: '1000000',
    }));
    ({ app: inline } = await testApp());
  });
  afterAll(async () => {
    await app.close();
    await inline.close();
  });

  it('a worker gives exactly the inline answer for the same seed', async () => {
    const payload = { instances: [DIABETES_ROW, DIABETES_ROW], samples: 2000, seed: 5 };
    const a = await app.inject({ method: 'POST', url: '/v1/models/diabetes/uncertainty', payload });
    const b = await inline.inject({ method: 'POST', url: '/v1/models/diabetes/uncertainty', payload });
    expect(a.statusCode).toBe(200);
    expect(a.json()).toEqual(b.json());
  });

  it('concurrent small MC requests are coalesced on the worker, each with exactly its inline answer', async () => {
    const bodies = Array.from({ length: 12 }, (_, i) => ({
      instances: [DIABETES_ROW.map((v, j) => (j === 2 ? v + i : v))],
      samples: 100,
      seed: 100 + i,
      ...(i % 3 === 0 ? { interval: 0.5 } : {}),
    }));
    const before = /mc_batch_requests_count\{model="diabetes"\} (\d+)/.exec((await app.inject('/metrics')).body);
    const together = await Promise.all(
      bodies.map((payload) => app.inject({ method: 'POST', url: '/v1/models/diabetes/uncertainty', payload })),
    );
    const alone: unknown[] = [];
    for (const payload of bodies)
      alone.push((await inline.inject({ method: 'POST', url: '/v1/models/diabetes/uncertainty', payload })).json());
    expect(together.map((r) => r.statusCode)).toEqual(bodies.map(() => 200));
    expect(together.map((r) => r.json())).toEqual(alone);
    const after = /mc_batch_requests_count\{model="diabetes"\} (\d+)/.exec((await app.inject('/metrics')).body);
    // fewer runs than requests
    expect(Number(after![1]) - Number(before?.[1] ?? 0)).toBeLessThan(12);
  });

  it('health answers while a heavy MC request runs on the worker', async () => {
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    const order: string[] = [];
    const heavy = fetch(`${address}/v1/models/wine/uncertainty`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instances: Array(64).fill(WINE_ROW), samples: 20000 }),
    }).then((r) => {
      order.push('mc');
      return r.status;
    });
    await new Promise((r) => setTimeout(r, 30));
    const health = await fetch(`${address}/health/ready`);
    order.push('health');
    expect(health.status).toBe(200);
    expect(await heavy).toBe(200);
    // the event loop was free: health came back before the MC request finished
    expect(order).toEqual(['health', 'mc']);
  });

  it('concurrent predicts are coalesced and each gets its own rows back', async () => {
    const rows = Array.from({ length: 20 }, (_, i) => DIABETES_ROW.map((v, j) => (j === 2 ? v + i : v)));
    const single = await Promise.all(
      rows.map((r) =>
        inline.inject({ method: 'POST', url: '/v1/models/diabetes/predict', payload: { instances: [r] } }),
      ),
    );
    const batched = await Promise.all(
      rows.map((r) => app.inject({ method: 'POST', url: '/v1/models/diabetes/predict', payload: { instances: [r] } })),
    );
    expect(batched.map((r) => r.json().predictions[0])).toEqual(single.map((r) => r.json().predictions[0]));
    const metrics = (await app.inject('/metrics')).body;
    const count = Number(/predict_batch_rows_count\{model="diabetes"\} (\d+)/.exec(metrics)![1]);
    expect(count).toBeLessThan(20);
  });
});
