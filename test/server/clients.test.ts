/**
 * The two Python clients end to end, on a real port, every call as they frame it:
 * - Triton's `tritonclient.http` (http/_client.py over geventhttpclient): GETs with no body; POSTs with
 *   no Content-Type, a Content-Length, the body `json.dumps(...)` gives (load_model: the 2 bytes `{}`;
 *   unload_model: `{"parameters": {"unload_dependents": false}}`; the index: an empty body), the admin
 *   bearer passed as `headers=`; infer as JSON, binary tensors (Inference-Header-Content-Length) or gzip
 *   (request_compression_algorithm); get_model_config reads /v2/models/{name}[/versions/{v}]/config.
 * - KServe's `InferenceRESTClient` (kserve inference_client.py over httpx): JSON with
 *   `content-type: application/json`, binary as application/octet-stream with the header length; it reads
 *   an answer's JSON only when the content type is exactly application/json.
 * A call passes when it answers 200 with the body the client parses (JSON, or the JSON header + binary).
 */
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/server/app.js';
import { DIABETES_ROW, WINE_ROW } from '../helpers/app.js';

const ADMIN = 'admin-key-0123456789';
// geventhttpclient's own headers (HTTPClient.DEFAULT_HEADERS); tritonclient adds none
const GEVENT = { 'user-agent': 'python/gevent-http-client-2.3.1' };
const KSERVE = { 'user-agent': 'python-httpx/0.28.1', accept: '*/*', 'accept-encoding': 'gzip, deflate' };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

let app: FastifyInstance;
let base: URL;
beforeAll(async () => {
  app = await buildApp({ config: loadConfig({ MODELS_DIR: 'models', MC_WORKERS: '0', ADMIN_API_KEY: ADMIN }) });
  await app.loadModels();
  base = new URL(await app.listen({ port: 0, host: '127.0.0.1' }));
});
afterAll(() => app.close());

/** One HTTP request as written: exactly these headers (+ Host and Content-Length when there is a body). */
function send(method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<Answer> {
  const bytes = body === undefined ? undefined : Buffer.from(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path,
        headers: { ...headers, ...(bytes ? { 'content-length': bytes.length } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end(bytes);
  });
}

/** tritonclient's _raise_if_error + json.loads, or InferResult's header split for binary answers. */
// biome-ignore lint/suspicious/noExplicitAny: the answers are read by field name, as the clients do
function parsed(a: Answer): Record<string, any> {
  expect(a.status, a.body.toString('utf8', 0, 300)).toBe(200);
  const hlen = a.headers['inference-header-content-length'];
  return JSON.parse(a.body.subarray(0, hlen === undefined ? a.body.length : Number(hlen)).toString('utf8'));
}

const f32 = (values: number[]): Buffer => Buffer.from(Float32Array.from(values).buffer);

describe('tritonclient.http: every call, framed as it frames them', () => {
  const auth = { ...GEVENT, authorization: `Bearer ${ADMIN}` };
  const get = async (path: string) => parsed(await send('GET', path, GEVENT));
  const post = async (path: string, body: Buffer | string, headers: Record<string, string> = GEVENT) =>
    parsed(await send('POST', path, headers, body));

  it('health, server and model metadata, readiness', async () => {
    expect(await get('/v2/health/live')).toEqual({ live: true });
    expect(await get('/v2/health/ready')).toEqual({ ready: true });
    expect((await get('/v2')).extensions).toContain('model_configuration');
    expect(await get('/v2/models/diabetes/ready')).toEqual({ name: 'diabetes', ready: true });
    expect(await get('/v2/models/diabetes/versions/1/ready')).toEqual({ name: 'diabetes', ready: true });
    expect((await get('/v2/models/diabetes')).inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, 10] }]);
    expect((await get('/v2/models/wine/versions/1')).versions).toEqual(['1']);
  });

  it('get_model_config, with and without a version: max_batch_size, dims without the batch, TYPE_FP32', async () => {
    for (const path of ['/v2/models/diabetes/config', '/v2/models/diabetes/versions/1/config']) {
      expect(await get(path)).toMatchObject({
        name: 'diabetes',
        platform: 'onnxruntime_onnx',
        backend: 'onnxruntime',
        max_batch_size: 1024,
        input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [10] }],
        output: [{ name: 'prediction', data_type: 'TYPE_FP32', dims: [1] }],
      });
    }
    expect((await get('/v2/models/wine/config')).output).toEqual([
      { name: 'logits', data_type: 'TYPE_FP32', dims: [3] },
      { name: 'probabilities', data_type: 'TYPE_FP32', dims: [3] },
    ]);
  });

  it('the repository: index (empty body), unload_model and load_model (no Content-Type, admin bearer)', async () => {
    const index = await post('/v2/repository/index', '', auth);
    expect(index.map((e: { name: string }) => e.name)).toEqual(['diabetes', 'wine']);
    expect(
      await post(
        '/v2/repository/models/wine/unload',
        JSON.stringify({ parameters: { unload_dependents: false } }),
        auth,
      ),
    ).toEqual({
      name: 'wine',
      unload: true,
    });
    expect((await send('GET', '/v2/models/wine/ready', GEVENT)).status).toBe(404);
    const body = JSON.stringify({});
    expect(body).toHaveLength(2);
    expect(await post('/v2/repository/models/wine/load', body, auth)).toEqual({
      name: 'wine',
      load: true,
      versions: ['1'],
    });
    expect(await get('/v2/models/wine/ready')).toEqual({ name: 'wine', ready: true });
    // request_compression_algorithm applies to every POST the client makes
    const gz = await post('/v2/repository/models/wine/load', gzipSync('{}'), { ...auth, 'content-encoding': 'gzip' });
    expect(gz).toEqual({ name: 'wine', load: true, versions: ['1'] });
  });

  it('infer: JSON, binary in and out, gzip, Monte Carlo parameters; statistics', async () => {
    const json = { inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', data: DIABETES_ROW }] };
    const eval1 = await post('/v2/models/diabetes/infer', JSON.stringify(json));
    expect(eval1.outputs[0]).toMatchObject({ name: 'prediction', shape: [1, 1] });
    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'input', shape: [1, 13], datatype: 'FP32', parameters: { binary_data_size: 52 } }],
        outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
      }),
    );
    const binary = await send(
      'POST',
      '/v2/models/wine/infer',
      {
        ...GEVENT,
        'inference-header-content-length': String(header.length),
      },
      Buffer.concat([header, f32(WINE_ROW)]),
    );
    expect(parsed(binary).outputs[0]).toMatchObject({ name: 'probabilities', parameters: { binary_data_size: 12 } });
    const gz = await post('/v2/models/diabetes/infer', gzipSync(JSON.stringify(json)), {
      ...GEVENT,
      'content-encoding': 'gzip',
    });
    expect(gz.outputs[0].data).toEqual(eval1.outputs[0].data);
    const mc = await post(
      '/v2/models/diabetes/infer',
      JSON.stringify({ ...json, parameters: { mc_samples: 20, seed: 1 } }),
    );
    expect(mc.outputs.map((o: { name: string }) => o.name)).toContain('std');
    expect((await get('/v2/models/stats')).model_stats.length).toBe(2);
    expect((await get('/v2/models/diabetes/stats')).model_stats[0].inference_count).toBeGreaterThan(0);
  });
});

describe("KServe's InferenceRESTClient: every call, framed as it frames them", () => {
  it('live, ready, model ready, infer as JSON and as binary; answers say exactly application/json', async () => {
    for (const path of ['/v2/health/live', '/v2/health/ready', '/v2/models/diabetes/ready']) {
      const a = await send('GET', path, KSERVE);
      expect([a.status, a.headers['content-type']]).toEqual([200, 'application/json']);
    }
    const json = {
      id: 'k-1',
      inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', data: DIABETES_ROW }],
      parameters: { mc_samples: 10, seed: 3 },
    };
    const a = await send(
      'POST',
      '/v2/models/diabetes/infer',
      { ...KSERVE, 'content-type': 'application/json' },
      JSON.stringify(json),
    );
    expect(a.headers['content-type']).toBe('application/json');
    expect(parsed(a)).toMatchObject({ id: 'k-1', model_name: 'diabetes' });
    const header = Buffer.from(
      JSON.stringify({
        id: 'k-2',
        inputs: [{ name: 'input', shape: [1, 13], datatype: 'FP32', parameters: { binary_data_size: 52 } }],
      }),
    );
    const b = await send(
      'POST',
      '/v2/models/wine/infer',
      {
        ...KSERVE,
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(header.length),
      },
      Buffer.concat([header, f32(WINE_ROW)]),
    );
    expect(parsed(b)).toMatchObject({ id: 'k-2', model_name: 'wine' });
    const bad = await send('GET', '/v2/models/nope/ready', KSERVE);
    expect([bad.status, bad.headers['content-type']]).toEqual([404, 'application/json']);
    expect(JSON.parse(bad.body.toString()).error).toMatch(/nope/);
  });
});
