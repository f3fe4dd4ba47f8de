/**
 * Statistics served on request (quantile_25, quantile_75) over HTTP: absent from default answers, present
 * when asked (/v1 `statistics`, V2 `outputs`), equal to the type-7 quartiles of the scaled samples, a 400
 * for a name that is none of the model's, and the same answers inline, on a worker, coalesced and with
 * samples "auto".
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packBatch, unpackBatch } from '../../src/serving/wire.js';
import { quantileInPlace } from '../../src/uncertainty/quantiles.js';
import { DIABETES_ROW, WINE_ROW, testApp } from '../helpers/app.js';

const URL = '/v1/models/diabetes/uncertainty';
const V2 = '/v2/models/diabetes/infer';
const ROWS = [DIABETES_ROW, DIABETES_ROW.map((v, j) => (j === 2 ? v + 5 : v))];
const QUARTILES = ['quantile_25', 'quantile_75'];
const SCALE = (JSON.parse(readFileSync('models/diabetes/model.json', 'utf8')) as { epistemic_scale: number })
  .epistemic_scale;

type Row = Record<string, unknown> & { mean: number; samples?: number[] };

let inline: FastifyInstance;
let workers: FastifyInstance;
beforeAll(async () => {
  ({ app: inline } = await testApp());
  ({ app: workers } = await testApp({ MC_WORKERS: '1', MC_WORKER_MIN_WORK: '1', BATCH_MAX_ROWS: '64' }));
});
afterAll(async () => {
  await inline?.close();
  await workers?.close();
});

const post = async (app: FastifyInstance, payload: unknown, url = URL) => {
  const r = await app.inject({ method: 'POST', url, payload: payload as object });
  return { status: r.statusCode, body: r.json() as Record<string, unknown> };
};
const predictions = (b: Record<string, unknown>) => b.predictions as Row[];
const without = (row: Row, keys: string[]) =>
  Object.fromEntries(Object.entries(row).filter(([k]) => !keys.includes(k)));

describe('/v1 statistics', () => {
  it('a default answer has no quartiles; asked for, they are the quartiles of the scaled samples and nothing else changes', async () => {
    const base = { instances: ROWS, samples: 50, seed: 3 };
    const plain = await post(inline, base);
    expect(plain.status).toBe(200);
    for (const row of predictions(plain.body))
      expect(Object.keys(row).filter((k) => k.startsWith('quantile'))).toEqual([]);
    const asked = await post(inline, { ...base, statistics: QUARTILES, return_samples: true });
    expect(asked.status).toBe(200);
    predictions(asked.body).forEach((row, i) => {
      // the statistics served always are the same as without the quartiles
      expect(without(row, [...QUARTILES, 'samples'])).toEqual(predictions(plain.body)[i]);
      const scaled = Float64Array.from(row.samples!, (y) => row.mean + SCALE * (y - row.mean));
      expect(row.quantile_25).toBeCloseTo(quantileInPlace(scaled.slice(), 0.25), 9);
      expect(row.quantile_75).toBeCloseTo(quantileInPlace(scaled.slice(), 0.75), 9);
      expect(row.quantile_25 as number).toBeLessThan(row.quantile_75 as number);
    });
    // one of them: that one only
    const one = await post(inline, { ...base, statistics: ['quantile_75'] });
    expect(predictions(one.body).map((r) => [r.quantile_25, r.quantile_75])).toEqual(
      predictions(asked.body).map((r) => [undefined, r.quantile_75]),
    );
  });

  it('a name that is not a statistic served on request by the model is a 400 naming it', async () => {
    const mean = await post(inline, { instances: ROWS, statistics: ['quantile_25', 'mean'] });
    expect(mean.status).toBe(400);
    expect(mean.body.message).toContain('statistics: "mean" is not a statistic served on request by regression models');
    const wine = await post(
      inline,
      { instances: [WINE_ROW], statistics: ['quantile_25'] },
      '/v1/models/wine/uncertainty',
    );
    expect(wine.status).toBe(400);
    expect(wine.body.message).toContain('"quantile_25" is not a statistic served on request by classification models');
    expect((await post(inline, { instances: ROWS, statistics: 'quantile_25' })).status).toBe(400);
  });

  it('samples "auto" serves them when asked and not otherwise', async () => {
    const base = { instances: ROWS, samples: 'auto', tolerance: 0.2, seed: 4 };
    const plain = await post(inline, base);
    const asked = await post(inline, { ...base, statistics: QUARTILES });
    expect([plain.status, asked.status]).toEqual([200, 200]);
    expect(asked.body.samples_used).toBe(plain.body.samples_used);
    expect('quantile_25' in predictions(plain.body)[0]!).toBe(false);
    predictions(asked.body).forEach((row, i) => {
      expect(without(row, QUARTILES)).toEqual(predictions(plain.body)[i]);
      expect(typeof row.quantile_25).toBe('number');
    });
  });
});

describe('V2: naming them in outputs', () => {
  const infer = (outputs?: string[]) => ({
    inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 10], data: ROWS.flat() }],
    parameters: { mc_samples: 50, seed: 3 },
    ...(outputs ? { outputs: outputs.map((name) => ({ name })) } : {}),
  });
  const outputs = (b: Record<string, unknown>) => b.outputs as { name: string; data: number[] }[];

  it('the default outputs have no quartiles; named, they are served, equal to /v1', async () => {
    const plain = await post(inline, infer(), V2);
    expect(plain.status).toBe(200);
    expect(outputs(plain.body).map((o) => o.name)).toEqual([
      'mean',
      'std',
      'epistemic_std',
      'aleatoric_std',
      'lower',
      'upper',
    ]);
    const asked = await post(inline, infer(['quantile_75', 'mean', 'quantile_25']), V2);
    expect(asked.status).toBe(200);
    expect(outputs(asked.body).map((o) => o.name)).toEqual(['quantile_75', 'mean', 'quantile_25']);
    const v1 = predictions((await post(inline, { instances: ROWS, samples: 50, seed: 3, statistics: QUARTILES })).body);
    expect(outputs(asked.body)[2]!.data).toEqual(v1.map((r) => Math.fround(r.quantile_25 as number)));
    expect(outputs(asked.body)[0]!.data).toEqual(v1.map((r) => Math.fround(r.quantile_75 as number)));
    // mc_outputs still lists them (what may be asked for)
    const meta = await inline.inject('/v2/models/diabetes');
    expect(meta.json().parameters.mc_outputs).toContain('quantile_25');
  });

  it('a classifier asked for a quartile is a 400 naming it', async () => {
    const r = await post(
      inline,
      {
        inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 13], data: WINE_ROW }],
        parameters: { mc_samples: 10 },
        outputs: [{ name: 'entropy' }, { name: 'quantile_25' }],
      },
      '/v2/models/wine/infer',
    );
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body)).toContain('outputs: \\"quantile_25\\" is not a statistic served on request');
  });
});

describe('worker and coalesced paths', () => {
  it('a worker gives the inline answers, with and without the quartiles', async () => {
    for (const extra of [
      {},
      { statistics: QUARTILES },
      { statistics: ['quantile_25'], return_samples: true },
      { samples: 'auto', tolerance: 0.2, max_samples: 200, statistics: QUARTILES },
    ]) {
      const payload = { instances: ROWS, samples: 200, seed: 8, ...extra };
      const [a, b] = [await post(workers, payload), await post(inline, payload)];
      expect(a.status).toBe(200);
      expect(a.body).toEqual(b.body);
    }
  });

  it('coalesced requests each get their own statistics, as alone', async () => {
    const bodies = Array.from({ length: 12 }, (_, i) => ({
      instances: [DIABETES_ROW.map((v, j) => (j === 2 ? v + i : v))],
      samples: 100,
      seed: 200 + i,
      ...(i % 3 === 0 ? { statistics: QUARTILES } : i % 3 === 1 ? { statistics: ['quantile_75'] } : {}),
    }));
    const count = async () =>
      Number(
        /mc_batch_requests_count\{model="diabetes"\} (\d+)/.exec((await workers.inject('/metrics')).body)?.[1] ?? 0,
      );
    const before = await count();
    const together = await Promise.all(bodies.map((payload) => post(workers, payload)));
    const alone = [];
    for (const payload of bodies) alone.push((await post(inline, payload)).body);
    expect(together.map((r) => r.body)).toEqual(alone);
    expect(together.map((r) => 'quantile_25' in predictions(r.body)[0]!)).toEqual(bodies.map((_, i) => i % 3 === 0));
    expect(together.map((r) => 'quantile_75' in predictions(r.body)[0]!)).toEqual(bodies.map((_, i) => i % 3 !== 2));
    expect((await count()) - before).toBeLessThan(12); // fewer runs than requests
  });

  it('the batch wire carries each job its own statistics', () => {
    const job = (statistics?: string[]) => ({
      x: new Float32Array(2),
      rows: 1,
      opts: { samples: 10, interval: 0.9, ...(statistics ? { statistics } : {}) },
    });
    const { task } = packBatch('m', [job(['quantile25', 'quantile75']), job(), job(['quantile75'])], 2);
    expect(unpackBatch(task, 2).map((j) => j.opts.statistics)).toEqual([
      ['quantile25', 'quantile75'],
      undefined,
      ['quantile75'],
    ]);
  });
});
