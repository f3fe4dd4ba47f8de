/**
 * Runtime model management over HTTP: the V2 repository extension behind ADMIN_API_KEY, versions on
 * /v1 and /v2, hot reload, and the mechanism under load (requests running while models are swapped,
 * corrupted and unloaded: none fails, answers switch at the swap, replaced versions are released).
 */
import { cpSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/server/app.js';
import { keyHash } from '../../src/server/plugins/admin.js';
import { DIABETES_ROW, WINE_ROW } from '../helpers/app.js';
import { shiftedDiabetes } from '../helpers/versions.js';

const ADMIN = 'admin-key-0123456789';
const API = 'api-key-0123456789ab';
const admin = { authorization: `Bearer ${ADMIN}` };

/** Write through a temporary name and a rename, as a deployment would (and as hot reload expects). */
function put(path: string, bytes: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, bytes);
  renameSync(`${path}.tmp`, path);
}

/** A models folder with diabetes (flat: version 1) and wine, copied from models/. */
function modelsDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ds-repo-'));
  cpSync('models/diabetes', join(dir, 'diabetes'), { recursive: true });
  cpSync('models/wine', join(dir, 'wine'), { recursive: true });
  return dir;
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

/** The app over `dir`, its log lines collected. */
async function start(
  dir: string,
  env: Record<string, string> = {},
): Promise<{ app: FastifyInstance; logs: Record<string, unknown>[] }> {
  const logs: Record<string, unknown>[] = [];
  const config = loadConfig({ MODELS_DIR: dir, MC_WORKERS: '0', ADMIN_API_KEY: ADMIN, ...env });
  const app = await buildApp({
    config,
    logger: {
      level: 'info',
      stream: { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) },
    },
  });
  apps.push(app);
  await app.loadModels();
  await app.ready();
  return { app, logs };
}

const predictV1 = async (app: FastifyInstance, query = ''): Promise<number> => {
  const r = await app.inject({
    method: 'POST',
    url: `/v1/models/diabetes/predict${query}`,
    payload: { instances: [DIABETES_ROW] },
  });
  expect(r.statusCode, r.body).toBe(200);
  return r.json().predictions[0] as number;
};

describe('management routes: ADMIN_API_KEY', () => {
  it('without ADMIN_API_KEY they answer 404 and the extension is not advertised', async () => {
    const { app } = await start(modelsDir(), { ADMIN_API_KEY: '' });
    expect((await app.inject('/v2')).json().extensions).toEqual([
      'mc_dropout',
      'binary_tensor_data',
      'statistics',
      'model_configuration',
    ]);
    for (const url of [
      '/v2/repository/index',
      '/v2/repository/models/diabetes/load',
      '/v2/repository/models/diabetes/unload',
    ]) {
      const r = await app.inject({ method: 'POST', url, headers: admin });
      expect([r.statusCode, r.json()], url).toEqual([
        404,
        { error: 'model management is off: the server was started without ADMIN_API_KEY' },
      ]);
    }
    expect(app.repository.names()).toEqual(['diabetes', 'wine']);
  });

  it('with it: the admin bearer and nothing else (not API_KEY); API_KEY still guards the other routes; an audit line per request', async () => {
    const { app, logs } = await start(modelsDir(), { API_KEY: API });
    expect((await app.inject({ url: '/v2', headers: { authorization: `Bearer ${API}` } })).json().extensions).toEqual([
      'mc_dropout',
      'binary_tensor_data',
      'statistics',
      'model_configuration',
      'model_repository',
    ]);
    for (const headers of [
      {},
      { authorization: `Bearer ${API}` },
      { authorization: `Bearer ${ADMIN}x` },
      { authorization: ADMIN },
    ]) {
      const r = await app.inject({ method: 'POST', url: '/v2/repository/models/wine/unload', headers });
      expect([r.statusCode, r.headers['www-authenticate'], r.json()]).toEqual([
        401,
        'Bearer',
        { error: 'missing or invalid admin bearer token (Authorization: Bearer <ADMIN_API_KEY>)' },
      ]);
    }
    expect((await app.inject({ url: '/v1/models', headers: admin })).statusCode).toBe(401); // the admin key is not an API key
    const ok = await app.inject({
      method: 'POST',
      url: '/v2/repository/models/wine/unload',
      headers: { ...admin, 'x-request-id': 'op-42' },
    });
    expect([ok.statusCode, ok.json()]).toEqual([200, { name: 'wine', unload: true }]);
    const audit = logs.filter((l) => l.msg === 'model management').map((l) => l.audit);
    expect(audit).toHaveLength(5);
    expect(audit[1]).toEqual({
      req_id: expect.any(String),
      remote: '127.0.0.1',
      key: keyHash(API),
      action: 'unload',
      model: 'wine',
      status: 401,
      outcome: 'missing or invalid admin bearer token (Authorization: Bearer <ADMIN_API_KEY>)',
    });
    expect(audit[4]).toEqual({
      req_id: 'op-42',
      remote: '127.0.0.1',
      key: keyHash(ADMIN),
      action: 'unload',
      model: 'wine',
      status: 200,
      outcome: 'unloaded',
    });
    expect(audit[0]).toMatchObject({ key: null, status: 401 });
    expect(JSON.stringify(logs)).not.toContain(ADMIN); // never the key itself
  });
});

describe('V2 repository extension', () => {
  it('index, load, unload: shapes and errors (Triton states, KServe answers)', async () => {
    const dir = modelsDir();
    const { app } = await start(dir);
    const post = (url: string, payload?: unknown) =>
      app.inject({
        method: 'POST',
        url: `/v2/repository${url}`,
        headers: admin,
        ...(payload !== undefined ? { payload: payload as object } : {}),
      });
    expect((await post('/index')).json()).toEqual([
      { name: 'diabetes', version: '1', state: 'READY', reason: '' },
      { name: 'wine', version: '1', state: 'READY', reason: '' },
    ]);
    expect((await post('/models/wine/unload', { parameters: { unload_dependents: true } })).json()).toEqual({
      name: 'wine',
      unload: true,
    });
    expect((await post('/index', {})).json()[1]).toEqual({
      name: 'wine',
      version: '1',
      state: 'UNAVAILABLE',
      reason: 'unloaded',
    });
    expect((await post('/index', { ready: true })).json()).toEqual([
      { name: 'diabetes', version: '1', state: 'READY', reason: '' },
    ]);
    expect(
      (await app.inject({ method: 'POST', url: '/v2/models/wine/infer', payload: { inputs: [] } })).statusCode,
    ).toBe(400); // validation first
    expect((await app.inject('/v2/models/wine')).json()).toEqual({
      error: 'unknown model "wine" (available: diabetes)',
    });
    expect((await post('/models/wine/load')).json()).toEqual({ name: 'wine', load: true, versions: ['1'] });
    expect((await app.inject('/v2/models/wine/ready')).json()).toEqual({ name: 'wine', ready: true });

    const errors = await Promise.all([
      post('/models/nope/load'),
      post('/models/nope/unload'),
      post('/models/..%2Fwine/load'),
      post('/models/wine/load', { parameters: { 'file:1/model.onnx': 'AAAA' } }),
      post('/index', { ready: 'yes' }),
      post('/models'),
    ]);
    expect(errors.map((r) => [r.statusCode, r.json().error])).toEqual([
      [404, 'no model "nope" in the repository (MODELS_DIR has: diabetes, wine)'],
      [404, 'unknown model "nope" (available: diabetes, wine)'],
      [400, `"../wine" is not a usable model name (letters, digits, '.', '_', '-'; at most 64)`],
      [
        400,
        'parameters.file:1/model.onnx: loading a model sent in the request is not supported; put its files in MODELS_DIR/<name>/ (or <name>/<version>/) and load it by name',
      ],
      [400, 'body.ready: Invalid input: expected boolean, received string'],
      [404, 'route POST /v2/repository/models not found'],
    ]);

    // a corrupted file: 400 naming the file and the problem, the old version keeps serving
    const before = await predictV1(app);
    put(join(dir, 'diabetes', 'model.onnx'), 'this is not a protobuf');
    const bad = await post('/models/diabetes/load');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatch(
      /^failed to load "diabetes" version 1: .*diabetes\/model\.onnx: .* \(served: version 1\)$/,
    );
    expect(await predictV1(app)).toBe(before);
    expect((await post('/index')).json()[0]).toMatchObject({
      name: 'diabetes',
      state: 'READY',
      reason: expect.stringContaining('loading changed files failed'),
    });
  });

  it('metrics: loads, unloads, failures and load durations per model', async () => {
    const dir = modelsDir();
    const { app } = await start(dir);
    await app.inject({ method: 'POST', url: '/v2/repository/models/diabetes/load', headers: admin });
    put(join(dir, 'wine', 'model.onnx'), 'garbage');
    await app.inject({ method: 'POST', url: '/v2/repository/models/wine/load', headers: admin });
    await app.inject({ method: 'POST', url: '/v2/repository/models/wine/unload', headers: admin });
    const text = (await app.inject('/metrics')).body;
    const value = (series: string): number =>
      Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(value('model_loads_total{model="diabetes"}')).toBe(2);
    expect(value('model_loads_total{model="wine"}')).toBe(1);
    expect(value('model_load_failures_total{model="wine"}')).toBe(1);
    expect(value('model_unloads_total{model="diabetes",reason="replaced"}')).toBe(1);
    expect(value('model_unloads_total{model="wine",reason="unloaded"}')).toBe(1);
    expect(value('model_load_duration_seconds_count{model="diabetes"}')).toBe(2);
    expect(value('model_load_duration_seconds_sum{model="diabetes"}')).toBeGreaterThan(0);
    expect(value('models_loaded')).toBe(1);
  });
});

describe('versions', () => {
  it('<name>/<version>/ folders: /v2/models/{name}/versions/{v}, ?version= on /v1, the highest by default, metadata lists them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-repo-'));
    cpSync('models/diabetes', join(dir, 'diabetes', '1'), { recursive: true });
    cpSync('models/diabetes/model.json', join(dir, 'diabetes', '2', 'model.json'));
    put(join(dir, 'diabetes', '2', 'model.onnx'), shiftedDiabetes(100));
    const { app } = await start(dir, { MODEL_VERSION_POLICY: 'all' });
    const v1 = await predictV1(app, '?version=1');
    expect(await predictV1(app, '?version=2')).toBeCloseTo(v1 + 100, 3);
    expect(await predictV1(app)).toBeCloseTo(v1 + 100, 3);
    const infer = async (path: string) => {
      const r = await app.inject({
        method: 'POST',
        url: `/v2/models/diabetes${path}/infer`,
        payload: {
          inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', data: DIABETES_ROW }],
          parameters: { mc_samples: 50, seed: 3 },
        },
      });
      return [r.json().model_version, r.json().outputs[0].data[0]] as [string, number];
    };
    const [one, two, latest] = [await infer('/versions/1'), await infer('/versions/2'), await infer('')];
    expect([one[0], two[0], latest[0]]).toEqual(['1', '2', '2']);
    expect(two[1]).toBeCloseTo(one[1] + 100, 2); // same seed, same masks: the MC mean moves by 100
    expect(latest[1]).toBe(two[1]);
    expect((await app.inject('/v2/models/diabetes/versions/1')).json().versions).toEqual(['1', '2']);
    expect((await app.inject('/v1/models/diabetes?version=1')).json()).toMatchObject({
      name: 'diabetes',
      version: '1',
      versions: ['1', '2'],
    });
    expect((await app.inject('/v1/models')).json().models[0]).toMatchObject({ version: '2', versions: ['1', '2'] });
    const missing = await app.inject({
      method: 'POST',
      url: '/v1/models/diabetes/uncertainty?version=3',
      payload: { instances: [DIABETES_ROW] },
    });
    expect([missing.statusCode, missing.json().message]).toEqual([
      404,
      'model "diabetes" has no version "3" (versions: 1, 2)',
    ]);
    expect(
      (
        await app.inject({
          method: 'POST',
          url: '/v1/models/diabetes/predict?version=',
          payload: { instances: [DIABETES_ROW] },
        })
      ).json().message,
    ).toBe('querystring.version: Too small: expected string to have >=1 characters');

    // latest:1 (the default) serves only version 2; loading after removing it brings version 1 back
    const { app: latest1 } = await start(dir);
    expect(latest1.repository.versions('diabetes')).toEqual(['2']);
    rmSync(join(dir, 'diabetes', '2'), { recursive: true });
    expect(
      (await latest1.inject({ method: 'POST', url: '/v2/repository/models/diabetes/load', headers: admin })).json(),
    ).toEqual({ name: 'diabetes', load: true, versions: ['1'] });
    expect(await predictV1(latest1)).toBeCloseTo(v1, 4);
  });
});

describe('hot reload (MODELS_WATCH)', () => {
  it('a changed file is loaded after two polls; a corrupted one leaves the served version; a removed folder unloads', async () => {
    const dir = modelsDir();
    const { app, logs } = await start(dir, { MODELS_WATCH: 'true', MODELS_POLL_MS: '3600000' }); // polls driven by the test
    const watcher = app.modelWatcher!;
    const base = await predictV1(app);
    await watcher.poll();
    put(join(dir, 'diabetes', 'model.onnx'), shiftedDiabetes(100));
    expect(await watcher.poll()).toEqual([]); // seen once: wait for it to settle
    expect(await predictV1(app)).toBe(base);
    expect(await watcher.poll()).toEqual([{ name: 'diabetes', loaded: ['1'], failed: [], unloaded: [] }]);
    expect(await predictV1(app)).toBeCloseTo(base + 100, 3);

    put(join(dir, 'diabetes', 'model.onnx'), new Uint8Array(1000).fill(7));
    await watcher.poll();
    const [report] = await watcher.poll();
    expect(report!.failed[0]!.error).toMatch(/diabetes\/model\.onnx: /);
    expect(await predictV1(app)).toBeCloseTo(base + 100, 3);
    const failure = logs.find((l) => l.msg === 'model load failed; the served version keeps serving');
    expect(failure).toMatchObject({
      level: 50,
      model: 'diabetes',
      version: '1',
      served_versions: ['1'],
      error: report!.failed[0]!.error,
    });
    expect(await watcher.poll()).toEqual([]); // not loaded again until it changes

    rmSync(join(dir, 'wine'), { recursive: true });
    await watcher.poll();
    expect(await watcher.poll()).toEqual([{ name: 'wine', loaded: [], failed: [], unloaded: ['1'] }]);
    expect((await app.inject('/health/ready')).json()).toEqual({ status: 'ready', models: ['diabetes'] });
  });
});

describe('the mechanism under load (a real port)', () => {
  it('ten reloads and an unload/load cycle during predict and MC traffic: no failed request, answers switch at the swap, a corrupted file changes nothing, replaced versions are released', async () => {
    const dir = modelsDir();
    const { app, logs } = await start(dir, { MC_WORKERS: '1', MC_WORKER_MIN_WORK: '1000' });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const json = { 'content-type': 'application/json' };
    const base = await predictV1(app);
    const versions = [shiftedDiabetes(0), shiftedDiabetes(100)];

    // traffic on diabetes: predict (v1), MC inline (v1), MC on the worker (v2, 2 rows × 1000), tagged by start time
    interface Answer {
      kind: string;
      started: number;
      finished: number;
      status: number;
      shift: number | null;
    }
    const answers: Answer[] = [];
    let running = true;
    const classify = (value: number, ref: number): number | null =>
      Math.abs(value - ref) < 0.05 ? 0 : Math.abs(value - ref - 100) < 0.05 ? 100 : null;
    const kinds = {
      predict: async () => {
        const r = await fetch(`${url}/v1/models/diabetes/predict`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ instances: [DIABETES_ROW] }),
        });
        return [
          r.status,
          r.ok ? classify(((await r.json()) as { predictions: number[] }).predictions[0]!, base) : null,
        ] as const;
      },
      mc: async () => {
        const r = await fetch(`${url}/v1/models/diabetes/uncertainty`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ instances: [DIABETES_ROW], samples: 200, seed: 1 }),
        });
        return [
          r.status,
          r.ok
            ? classify(((await r.json()) as { predictions: { mean: number }[] }).predictions[0]!.mean, mcBase)
            : null,
        ] as const;
      },
      worker: async () => {
        const r = await fetch(`${url}/v2/models/diabetes/infer`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({
            inputs: [{ name: 'input', shape: [2, 10], datatype: 'FP32', data: [...DIABETES_ROW, ...DIABETES_ROW] }],
            parameters: { mc_samples: 1000, seed: 2 },
          }),
        });
        return [
          r.status,
          r.ok
            ? classify(((await r.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data[0]!, workerBase)
            : null,
        ] as const;
      },
    };
    const mcBase = (
      await app.inject({
        method: 'POST',
        url: '/v1/models/diabetes/uncertainty',
        payload: { instances: [DIABETES_ROW], samples: 200, seed: 1 },
      })
    ).json().predictions[0].mean as number;
    const workerBase = (
      await app.inject({
        method: 'POST',
        url: '/v2/models/diabetes/infer',
        payload: {
          inputs: [{ name: 'input', shape: [2, 10], datatype: 'FP32', data: [...DIABETES_ROW, ...DIABETES_ROW] }],
          parameters: { mc_samples: 1000, seed: 2 },
        },
      })
    ).json().outputs[0].data[0] as number;
    const loop = async (kind: keyof typeof kinds): Promise<void> => {
      while (running) {
        const started = performance.now();
        const [status, shift] = await kinds[kind]();
        answers.push({ kind, started, finished: performance.now(), status, shift });
      }
    };
    const clients = (['predict', 'predict', 'mc', 'mc', 'worker'] as const).map(loop);

    const load = async (name: string) => {
      const r = await fetch(`${url}/v2/repository/models/${name}/load`, { method: 'POST', headers: admin });
      return { status: r.status, body: (await r.json()) as { error?: string }, at: performance.now() };
    };
    // ten reloads, alternating the two versions; when a load answers, the new version serves
    const swaps: { asked: number; at: number; shift: number }[] = [];
    for (let i = 1; i <= 10; i++) {
      const asked = performance.now();
      put(join(dir, 'diabetes', 'model.onnx'), versions[i % 2]!);
      const r = await load('diabetes');
      expect(r.status, r.body.error).toBe(200);
      swaps.push({ asked, at: r.at, shift: (i % 2) * 100 });
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    // a corrupted file: the load fails, version "0 shift" (the tenth) keeps serving
    put(join(dir, 'diabetes', 'model.onnx'), 'not an onnx file at all');
    const corrupt = await load('diabetes');
    expect(corrupt.status).toBe(400);
    await new Promise((resolve) => setTimeout(resolve, 60));

    // unload wine while a long MC request runs on it: the request finishes, later ones get 404, load brings it back
    // (the unload is sent once the request holds its lease on wine, however slow this machine is)
    const acquire = app.repository.acquire.bind(app.repository);
    let wineHeld!: () => void;
    const held = new Promise<void>((resolve) => (wineHeld = resolve));
    app.repository.acquire = (name, version) => {
      const lease = acquire(name, version);
      if (name === 'wine') wineHeld();
      return lease;
    };
    const slow = fetch(`${url}/v1/models/wine/uncertainty`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ instances: Array(50).fill(WINE_ROW), samples: 2000, seed: 4 }),
    });
    await held;
    app.repository.acquire = acquire;
    const unloaded = await fetch(`${url}/v2/repository/models/wine/unload`, { method: 'POST', headers: admin });
    expect(unloaded.status).toBe(200);
    expect((await slow).status).toBe(200);
    expect(
      (
        await fetch(`${url}/v1/models/wine/predict`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ instances: [WINE_ROW] }),
        })
      ).status,
    ).toBe(404);
    expect((await load('wine')).status).toBe(200);
    expect(
      (
        await fetch(`${url}/v1/models/wine/predict`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ instances: [WINE_ROW] }),
        })
      ).status,
    ).toBe(200);

    running = false;
    await Promise.all(clients);
    expect(answers.length).toBeGreaterThan(50);
    const failed = answers.filter((a) => a.status !== 200 || a.shift === null);
    expect(failed).toEqual([]);
    // a request that started after a load answered and finished before the next load was asked for got that load's version
    let checked = 0;
    for (const a of answers) {
      const i = swaps.findLastIndex((s) => s.at <= a.started);
      if (i < 0 || (swaps[i + 1] && a.finished >= swaps[i + 1]!.asked)) continue;
      expect(a.shift, `${a.kind} started ${(a.started - swaps[i]!.at).toFixed(1)} ms after load ${i + 1}`).toBe(
        swaps[i]!.shift,
      );
      checked++;
    }
    expect(checked).toBeGreaterThan(20);
    const afterLast = answers.filter((a) => a.started > swaps.at(-1)!.at);
    expect(afterLast.length).toBeGreaterThan(0);
    expect(afterLast.every((a) => a.shift === 0)).toBe(true);

    // released: every replaced diabetes and the unloaded wine closed, the worker holds one copy per served model
    // (closing follows the last request asynchronously: wait for the log lines, bounded, instead of a fixed pause)
    const closedModels = () =>
      logs.filter((l) => l.msg === 'model closed (sessions and worker copies released)').map((l) => l.model);
    for (const until = performance.now() + 20_000; performance.now() < until; ) {
      const c = closedModels();
      if (c.filter((m) => m === 'diabetes').length >= 10 && c.includes('wine')) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const closed = closedModels();
    expect(closed.filter((m) => m === 'diabetes')).toHaveLength(10);
    expect(closed.filter((m) => m === 'wine')).toHaveLength(1);
    expect(app.dataPlane.workerModels).toBe(2);
  }, 60_000);
});
