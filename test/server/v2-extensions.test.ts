/**
 * The V2 routes as KServe's and Triton's clients use them, over HTTP: the binary tensor data extension
 * (bodies framed as tritonclient and kserve frame them: test/fixtures/v2 and the same framing built
 * here), exact round trips (FP32, FP64, INT64 in; FP32 out), JSON without a Content-Type (tritonclient
 * sends none; also on a real port), gzip, and Triton's statistics extension.
 */
import { readFileSync, mkdirSync, mkdtempSync, cpSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, deflateSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/server/app.js';
import { tinyDropoutNet } from '../helpers/onnx.js';
import { DIABETES_ROW } from '../helpers/app.js';

const fx = 'test/fixtures/v2';
interface Case {
  header: string | null;
  inputs: { name: string; datatype: string; shape: number[]; binary: boolean; values: unknown[] }[];
}
const cases = JSON.parse(readFileSync(join(fx, 'bodies.json'), 'utf8')) as Record<string, Case>;

let app: FastifyInstance;
beforeAll(async () => {
  // "tiny": input "x" with 3 features, as the committed tritonclient bodies send
  const dir = mkdtempSync(join(tmpdir(), 'ds-v2ext-'));
  mkdirSync(join(dir, 'tiny'));
  writeFileSync(join(dir, 'tiny', 'model.onnx'), tinyDropoutNet(3, 4, 0.5));
  cpSync('models/diabetes', join(dir, 'diabetes'), { recursive: true });
  cpSync('models/wine', join(dir, 'wine'), { recursive: true });
  app = await buildApp({
    config: loadConfig({ MODELS_DIR: dir, MC_WORKERS: '0', BATCH_MAX_ROWS: '0', BODY_LIMIT_BYTES: '65536' }),
  });
  await app.loadModels();
  await app.ready();
});
afterAll(() => app.close());

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A request body framed as tritonclient frames it (http/_utils.py _get_inference_request): compact JSON, then the binary inputs in order. */
function tritonBody(
  header: Record<string, unknown>,
  raws: ArrayBufferView[],
): { body: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header));
  return {
    body: Buffer.concat([json, ...raws.map(bytesOf)]),
    headers: { 'inference-header-content-length': String(json.length) },
  };
}

/** tritonclient's InferResult (http/_infer_result.py): the JSON header, then each binary output at a running offset. */
function readLikeTritonclient(
  body: Buffer,
  headerLength: string | undefined,
): Record<string, { shape: number[]; data: number[] | Float32Array }> {
  const hlen = headerLength === undefined ? body.length : Number(headerLength);
  const result = JSON.parse(body.subarray(0, hlen).toString('utf8')) as {
    outputs: {
      name: string;
      datatype: string;
      shape: number[];
      parameters?: { binary_data_size?: number };
      data?: number[];
    }[];
  };
  const out: Record<string, { shape: number[]; data: number[] | Float32Array }> = {};
  let at = hlen;
  for (const o of result.outputs) {
    expect(o.datatype).toBe('FP32');
    const size = o.parameters?.binary_data_size;
    if (size === undefined) out[o.name] = { shape: o.shape, data: o.data! };
    else {
      out[o.name] = { shape: o.shape, data: new Float32Array(new Uint8Array(body.subarray(at, at + size)).buffer) };
      at += size;
    }
  }
  expect(at).toBe(body.length);
  return out;
}

const infer = (model: string, body: Buffer | string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: `/v2/models/${model}/infer`, payload: body, headers });
const predictDirect = (model: string, x: Float32Array, rows: number): Promise<Float32Array> =>
  app.repository.get(model).predict(x, rows);
const sameBits = (a: ArrayLike<number>, b: Float32Array): void =>
  expect(Buffer.from(Float32Array.from(a).buffer).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(true);

describe('binary tensor data over HTTP, framed as the clients frame it', () => {
  it('the committed tritonclient FP32 body (no Content-Type): binary output equal bit for bit to the model run on the same float32 rows', async () => {
    const c = cases.triton_fp32!;
    const r = await infer('tiny', readFileSync(join(fx, 'triton_fp32.bin')), {
      'inference-header-content-length': c.header!,
    });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('application/octet-stream');
    const out = readLikeTritonclient(r.rawPayload, r.headers['inference-header-content-length'] as string);
    expect(out.y!.shape).toEqual([4, 1]);
    expect(out.y!.data).toBeInstanceOf(Float32Array);
    sameBits(out.y!.data, await predictDirect('tiny', Float32Array.from(c.inputs[0]!.values as number[]), 4));
  });

  it('the committed tritonclient JSON-only body (no Content-Type, binary_data_output): the same values, in binary', async () => {
    const r = await infer('tiny', readFileSync(join(fx, 'triton_json_only.bin')));
    expect(r.statusCode).toBe(200);
    const out = readLikeTritonclient(r.rawPayload, r.headers['inference-header-content-length'] as string);
    sameBits(
      out.y!.data,
      await predictDirect('tiny', Float32Array.from(cases.triton_json_only!.inputs[0]!.values as number[]), 4),
    );
  });

  it('a committed body with several inputs gets a 400 naming the one input the model takes', async () => {
    const r = await infer('tiny', readFileSync(join(fx, 'kserve_fp32_int32.bin')), {
      'inference-header-content-length': cases.kserve_fp32_int32!.header!,
      'content-type': 'application/octet-stream',
    });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({ error: 'inputs: the model takes exactly 1 input tensor ("x"), got 2' });
  });

  it('FP32, FP64 and INT64 in, FP32 out: exact, with kserve framing (application/octet-stream, an id) and tritonclient framing (no type)', async () => {
    const rows = 5;
    const f64 = Float64Array.from({ length: rows * 3 }, (_, i) => Math.sin(i + 1) * 3 + 1e-9 * i);
    const f32 = Float32Array.from(f64);
    const i64 = BigInt64Array.from({ length: rows * 3 }, (_, i) => BigInt(i * 7 - 40));
    const want = await predictDirect('tiny', f32, rows);
    const wantInt = await predictDirect(
      'tiny',
      Float32Array.from(i64, (v) => Number(v)),
      rows,
    );
    const send = async (datatype: string, data: ArrayBufferView, kserve: boolean) => {
      const header = {
        ...(kserve ? { id: 'k-1', model_name: 'tiny' } : {}),
        inputs: [{ name: 'x', shape: [rows, 3], datatype, parameters: { binary_data_size: data.byteLength } }],
        parameters: { binary_data_output: true },
      };
      const { body, headers } = tritonBody(header, [data]);
      const r = await infer(
        'tiny',
        body,
        kserve ? { ...headers, 'content-type': 'application/octet-stream' } : headers,
      );
      expect(r.statusCode, r.body.slice(0, 200)).toBe(200);
      const head = JSON.parse(
        r.rawPayload.subarray(0, Number(r.headers['inference-header-content-length'])).toString(),
      ) as { id?: string };
      expect(head.id).toBe(kserve ? 'k-1' : undefined);
      return readLikeTritonclient(r.rawPayload, r.headers['inference-header-content-length'] as string).y!.data;
    };
    for (const kserve of [false, true]) {
      sameBits(await send('FP32', f32, kserve), want);
      sameBits(await send('FP64', f64, kserve), want);
      sameBits(await send('INT64', i64, kserve), wantInt);
    }
    // the same rows as JSON (float32 values printed as doubles parse back exactly): the same answer
    const json = await infer(
      'tiny',
      JSON.stringify({ inputs: [{ name: 'x', shape: [rows, 3], datatype: 'FP32', data: Array.from(f32) }] }),
      { 'content-type': 'application/json' },
    );
    sameBits(json.json().outputs[0].data, want);
  });

  it('a raw binary request (Inference-Header-Content-Length: 0): the body is the rows, the answer binary', async () => {
    const x = Float32Array.from([...DIABETES_ROW, ...DIABETES_ROW.map((v) => v * 1.1)]);
    const r = await infer('diabetes', bytesOf(x), {
      'inference-header-content-length': '0',
      'content-type': 'application/octet-stream',
    });
    expect(r.statusCode).toBe(200);
    const out = readLikeTritonclient(r.rawPayload, r.headers['inference-header-content-length'] as string);
    sameBits(out.prediction!.data, await predictDirect('diabetes', x, 2));
  });

  it('Monte Carlo with binary inputs and outputs: per-output binary_data, the same numbers as a JSON request with the same seed', async () => {
    const x = Float32Array.from([
      ...DIABETES_ROW,
      ...DIABETES_ROW.map((v) => v * 0.9),
      ...DIABETES_ROW.map((v) => v * 1.2),
    ]);
    const parameters = { mc_samples: 300, seed: 17 };
    const { body, headers } = tritonBody(
      {
        inputs: [{ name: 'input', shape: [3, 10], datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }],
        outputs: [
          { name: 'mean', parameters: { binary_data: true } },
          { name: 'std', parameters: { binary_data: false } },
          { name: 'upper', parameters: { binary_data: true } },
        ],
        parameters,
      },
      [x],
    );
    const r = await infer('diabetes', body, headers);
    expect(r.statusCode).toBe(200);
    const out = readLikeTritonclient(r.rawPayload, r.headers['inference-header-content-length'] as string);
    expect(Object.keys(out)).toEqual(['mean', 'std', 'upper']);
    expect(out.mean!.data).toBeInstanceOf(Float32Array);
    expect(Array.isArray(out.std!.data)).toBe(true);
    const json = (
      await infer(
        'diabetes',
        JSON.stringify({
          inputs: [{ name: 'input', shape: [3, 10], datatype: 'FP32', data: Array.from(x) }],
          parameters,
        }),
        { 'content-type': 'application/json' },
      )
    ).json();
    const byName = Object.fromEntries(
      (json.outputs as { name: string; data: number[] }[]).map((o) => [o.name, o.data]),
    );
    sameBits(byName.mean!, out.mean!.data as Float32Array);
    sameBits(byName.upper!, out.upper!.data as Float32Array);
    expect(out.std!.data).toEqual(byName.std);
  });

  it('gzip and deflate bodies (tritonclient request_compression_algorithm) decode to the same request', async () => {
    const c = cases.triton_fp32!;
    const raw = readFileSync(join(fx, 'triton_fp32.bin'));
    const plain = await infer('tiny', raw, { 'inference-header-content-length': c.header! });
    for (const [enc, body] of [
      ['gzip', gzipSync(raw)],
      ['deflate', deflateSync(raw)],
    ] as const) {
      const r = await infer('tiny', body, { 'inference-header-content-length': c.header!, 'content-encoding': enc });
      expect(r.statusCode, enc).toBe(200);
      expect(r.rawPayload.equals(plain.rawPayload)).toBe(true);
    }
    const json = await infer('tiny', gzipSync(readFileSync(join(fx, 'triton_json_only.bin'))), {
      'content-encoding': 'gzip',
    });
    expect(json.rawPayload.equals(plain.rawPayload)).toBe(true);
    // a small bomb: 70 kB of zeros after inflating, over BODY_LIMIT_BYTES=65536
    const bomb = await infer('tiny', gzipSync(Buffer.alloc(70000, 0x20)), {
      'content-encoding': 'gzip',
      'content-type': 'application/json',
    });
    expect(bomb.statusCode).toBe(413);
    expect(bomb.json()).toEqual({ error: 'the gzip-decoded body exceeds BODY_LIMIT_BYTES=65536' });
  });
});

describe('JSON on the V2 routes', () => {
  it('is accepted without a Content-Type; a declared non-JSON type stays a 415', async () => {
    const body = JSON.stringify({
      id: 'no-type',
      inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', data: DIABETES_ROW }],
    });
    const none = await infer('diabetes', Buffer.from(body));
    expect(none.statusCode).toBe(200);
    expect(none.headers['content-type']).toBe('application/json');
    expect(none.json()).toMatchObject({ model_name: 'diabetes', id: 'no-type' });
    const text = await infer('diabetes', body, { 'content-type': 'text/plain' });
    expect(text.statusCode).toBe(415);
    // exactly application/json, errors too: kserve's client reads an error's message only then
    expect(text.headers['content-type']).toBe('application/json');
    expect((await app.inject('/v2/models/diabetes')).headers['content-type']).toBe('application/json');
    expect(text.json()).toEqual({
      error:
        'content-type "text/plain" is not supported; send application/json (or no content-type), or binary tensors with Inference-Header-Content-Length',
    });
    // /v1 keeps JSON with a JSON content type only
    const v1 = await app.inject({
      method: 'POST',
      url: '/v1/models/diabetes/predict',
      payload: Buffer.from(JSON.stringify({ instances: [DIABETES_ROW] })),
    });
    expect(v1.statusCode).toBe(415);
  });

  it('an id of any length is echoed (the spec sets no limit; the body limit does)', async () => {
    const id = 'x'.repeat(5000);
    const r = await infer(
      'diabetes',
      JSON.stringify({ id, inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', data: DIABETES_ROW }] }),
      { 'content-type': 'application/json' },
    );
    expect(r.statusCode).toBe(200);
    expect(r.json().id).toBe(id);
  });

  it('on a real port: a JSON request and a binary one with no Content-Type header at all', async () => {
    const server = await buildApp({ config: loadConfig({ MODELS_DIR: 'models', MC_WORKERS: '0' }) });
    await server.loadModels();
    const address = new URL(await server.listen({ port: 0, host: '127.0.0.1' }));
    const post = (body: Buffer, headers: Record<string, string | number>) =>
      new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
        const req = request(
          {
            host: address.hostname,
            port: address.port,
            method: 'POST',
            path: '/v2/models/diabetes/infer',
            headers: { 'content-length': body.length, ...headers },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () =>
              resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
            );
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    try {
      const json = await post(
        Buffer.from(
          JSON.stringify({ inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', data: DIABETES_ROW }] }),
        ),
        {},
      );
      expect(json.status).toBe(200);
      const x = Float32Array.from(DIABETES_ROW);
      const { body, headers } = tritonBody(
        {
          inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', parameters: { binary_data_size: 40 } }],
          parameters: { binary_data_output: true },
        },
        [x],
      );
      const bin = await post(body, headers);
      expect(bin.status).toBe(200);
      const out = readLikeTritonclient(bin.body, bin.headers['inference-header-content-length'] as string);
      expect((out.prediction!.data as Float32Array)[0]).toBe(
        Math.fround((JSON.parse(json.body.toString()) as { outputs: { data: number[] }[] }).outputs[0]!.data[0]!),
      );
    } finally {
      await server.close();
    }
  });
});

describe('Triton statistics extension', () => {
  it('counts requests, rows, executions and samples per model version and mode; fails apart; times in ns', async () => {
    const stats = async (url: string) => {
      const r = await app.inject(url);
      expect(r.statusCode, url).toBe(200);
      return r.json() as { model_stats: Record<string, unknown>[] };
    };
    const before = (await stats('/v2/models/wine/stats')).model_stats[0]!;
    expect(before).toMatchObject({
      name: 'wine',
      version: '1',
      last_inference: 0,
      inference_count: 0,
      execution_count: 0,
      batch_stats: [],
      memory_usage: [],
    });
    const row = [13, 2, 2.4, 19, 100, 2, 2, 0.3, 1.5, 5, 1, 2.5, 700];
    const v2 = (rows: number, parameters?: object) =>
      JSON.stringify({
        inputs: [{ name: 'input', shape: [rows, 13], datatype: 'FP32', data: Array(rows).fill(row).flat() }],
        ...(parameters ? { parameters } : {}),
      });
    const ok = (r: { statusCode: number }) => expect(r.statusCode).toBe(200);
    ok(await infer('wine', v2(1)));
    ok(await infer('wine', v2(3)));
    ok(await app.inject({ method: 'POST', url: '/v1/models/wine/predict', payload: { instances: [row, row] } }));
    expect(
      (
        await infer(
          'wine',
          JSON.stringify({ inputs: [{ name: 'input', shape: [1, 13], datatype: 'FP32', data: row.slice(1) }] }),
        )
      ).statusCode,
    ).toBe(400);
    ok(await infer('wine', v2(2, { mc_samples: 50, seed: 1 })));
    ok(
      await app.inject({
        method: 'POST',
        url: '/v1/models/wine/uncertainty',
        payload: { instances: [row], samples: 20 },
      }),
    );
    expect((await infer('wine', v2(1, { mc_samples: 1e9 }))).statusCode).toBe(400);

    // biome-ignore lint/suspicious/noExplicitAny: the test reads fields of Triton's statistics JSON
    const s = (await stats('/v2/models/wine/stats')).model_stats[0]! as Record<string, any>;
    expect(s.name).toBe('wine');
    expect(s.version).toBe('1');
    expect(s.last_inference).toBeGreaterThan(Date.now() - 60_000);
    const predict = s.mode_stats.predict;
    const mc = s.mode_stats.mc;
    expect(predict).toMatchObject({ inference_count: 6, execution_count: 3 });
    expect(predict.inference_stats.success.count).toBe(3);
    expect(predict.inference_stats.fail.count).toBe(1);
    expect(
      predict.batch_stats.map((b: { batch_size: number; compute_infer: { count: number } }) => [
        b.batch_size,
        b.compute_infer.count,
      ]),
    ).toEqual([
      [1, 1],
      [2, 1],
      [3, 1],
    ]);
    expect(mc).toMatchObject({ inference_count: 3, execution_count: 2, sample_count: 2 * 50 + 20 });
    expect(mc.inference_stats.success.count).toBe(2);
    expect(mc.inference_stats.fail.count).toBe(1);
    for (const m of [predict, mc]) {
      const st = m.inference_stats;
      for (const k of ['queue', 'compute_input', 'compute_infer', 'compute_output'])
        expect(st[k].count, k).toBe(st.success.count);
      expect(st.success.ns).toBeGreaterThan(0);
      expect(st.compute_infer.ns).toBeGreaterThan(0);
      expect(st.fail.ns).toBeGreaterThan(0);
      // the parts of a successful request add up to at most its whole
      expect(st.queue.ns + st.compute_input.ns + st.compute_infer.ns).toBeLessThanOrEqual(st.success.ns + 3);
      expect(st.compute_output.ns).toBe(0);
      expect(st.cache_hit).toEqual({ count: 0, ns: 0 });
      expect(Number.isInteger(st.success.ns)).toBe(true);
    }
    // top level: both modes together
    expect(s).toMatchObject({ inference_count: 9, execution_count: 5 });
    expect(s.inference_stats.success).toEqual({
      count: 5,
      ns: predict.inference_stats.success.ns + mc.inference_stats.success.ns,
    });
    expect(s.sample_count).toBeUndefined();

    // the version route gives the same entry; the list has every model; unknown names and versions are 404
    expect((await stats('/v2/models/wine/versions/1/stats')).model_stats).toEqual([s]);
    const all = await stats('/v2/models/stats');
    expect(all.model_stats.map((m) => m.name)).toEqual(['diabetes', 'tiny', 'wine']);
    expect(all.model_stats[2]).toEqual(s);
    const unknown = await app.inject('/v2/models/nope/stats');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ error: 'unknown model "nope" (available: diabetes, tiny, wine)' });
    expect((await app.inject('/v2/models/wine/versions/3/stats')).json()).toEqual({
      error: 'model "wine" has no version "3" (versions: 1)',
    });
  });
});
