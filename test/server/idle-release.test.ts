/**
 * Issue 20, no growth after load: at a quiet second after activity the idle collector asks the served
 * models to give back what their runs left (Model.releaseIdle: new onnxruntime sessions, no cached mask
 * buffers), at most once per IDLE_GC_MIN_INTERVAL_MS; requests that arrive meanwhile are served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { IDLE_GC_MIN_INTERVAL_MS, IdleGc } from '../../src/server/plugins/idle-gc.js';
import { DIABETES_ROW, WINE_ROW, testApp } from '../helpers/app.js';

describe('idle release of the models', () => {
  it('the release hook runs at the first quiet second after activity, at most once per interval', () => {
    let releases = 0;
    const idle = new IdleGc(
      () => undefined,
      () => 0,
      () => releases++,
    );
    idle.tick(1000); // quiet, nothing happened
    expect(releases).toBe(0);
    idle.activity();
    idle.tick(2000); // busy
    expect(releases).toBe(0);
    idle.tick(3000); // quiet after activity
    expect(releases).toBe(1);
    idle.tick(4000); // still quiet: nothing new to give back
    expect(releases).toBe(1);
    idle.activity();
    idle.tick(5000);
    idle.tick(6000); // quiet again, but within the interval of the last release
    expect(releases).toBe(1);
    idle.tick(3000 + IDLE_GC_MIN_INTERVAL_MS);
    expect([releases, idle.releases]).toEqual([2, 2]);
  });
});

describe('models released while requests arrive (MC_WORKERS=0)', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    ({ app } = await testApp());
  });
  afterAll(async () => {
    await app.close();
  });

  const request = (name: string, row: number[], samples: number) =>
    app.inject({
      method: 'POST',
      url: `/v1/models/${name}/uncertainty`,
      payload: { instances: [row, row], samples, seed: 5 },
    });

  it('every request is answered, the same as before the release', async () => {
    const cases: [string, number[], number][] = [
      ['diabetes', DIABETES_ROW, 5000],
      ['wine', WINE_ROW, 5000],
      ['diabetes', DIABETES_ROW, 100],
      ['wine', WINE_ROW, 100],
    ];
    const before = await Promise.all(cases.map((c) => request(...c)));
    expect(before.map((r) => r.statusCode)).toEqual([200, 200, 200, 200]);
    const release = app.repository.releaseIdle();
    const during = await Promise.all(cases.map((c) => request(...c)));
    await release;
    const after = await Promise.all(cases.map((c) => request(...c)));
    for (const answers of [during, after]) {
      expect(answers.map((r) => r.statusCode)).toEqual([200, 200, 200, 200]);
      expect(answers.map((r) => r.json())).toEqual(before.map((r) => r.json()));
    }
  });
});
