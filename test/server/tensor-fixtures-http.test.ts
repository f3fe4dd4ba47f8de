/**
 * The six PyTorch models of issue 19 (test/fixtures/tensor), as a user serves them: their ONNX files copied
 * into a models folder with no card, loaded by the real server (loader, repository, data plane with a
 * worker thread, both protocols). Every one loads and describes its inputs; predict reproduces PyTorch's
 * eval within 1e-4 of the output's scale; Monte Carlo runs on the worker and its per-pixel and
 * per-token probabilities agree with PyTorch's Monte Carlo within sampling error; /v1 takes nested and
 * keyed instances; the same seed gives the same answer over /v1 and V2.
 */
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/server/app.js';
import { DIR, type Reference, inputsOf, references } from '../model/onnx/tensor-mc-fixtures.js';

let app: FastifyInstance;
beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ds-tensor-http-'));
  for (const name of Object.keys(references)) {
    mkdirSync(join(dir, name));
    copyFileSync(join(DIR, `${name}.onnx`), join(dir, name, 'model.onnx'));
  }
  const config = loadConfig({ MODELS_DIR: dir, MC_WORKERS: '1', BATCH_MAX_ROWS: '0' });
  app = await buildApp({ config, logger: false });
  await app.loadModels();
  await app.ready();
}, 120_000);
afterAll(() => app?.close());

const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });

/** The reference inputs' first `rows` rows as V2 JSON tensors, each in its datatype. */
function v2Inputs(name: string, rows: number) {
  return inputsOf(name).map((t) => {
    const per = t.data.length / t.dims[0]!;
    const values = Array.from(t.data.subarray(0, rows * per) as ArrayLike<number | bigint>, Number);
    return {
      name: t.name,
      datatype: references[name]!.inputs.find((i) => i.name === t.name)!.datatype,
      shape: [rows, ...t.dims.slice(1)],
      data: values,
    };
  });
}

/** The reference inputs (8 rows) as a binary V2 request (the binary tensor data extension, as tritonclient frames it). */
function binaryInfer(name: string) {
  const tensors = inputsOf(name);
  const header = {
    inputs: tensors.map((t) => ({
      name: t.name,
      datatype: references[name]!.inputs.find((i) => i.name === t.name)!.datatype,
      shape: t.dims,
      parameters: { binary_data_size: t.data.byteLength },
    })),
  };
  const head = Buffer.from(JSON.stringify(header));
  const body = Buffer.concat([
    head,
    ...tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  ]);
  return app.inject({
    method: 'POST',
    url: `/v2/models/${name}/infer`,
    body,
    headers: { 'inference-header-content-length': String(head.length), 'content-type': 'application/octet-stream' },
  });
}

const outputOf = (body: { outputs: { name: string; shape: number[]; data: number[] }[] }, name: string) =>
  body.outputs.find((o) => o.name === name)!;

const scaleOf = (v: readonly number[]) => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

describe('the six PyTorch models load and describe their inputs', () => {
  for (const [name, ref] of Object.entries(references)) {
    it(`${name}: V2 metadata lists every input with its datatype and a free batch`, async () => {
      const res = await app.inject({ method: 'GET', url: `/v2/models/${name}` });
      expect(res.statusCode).toBe(200);
      const inputs = res.json().inputs as { name: string; datatype: string; shape: number[] }[];
      expect(inputs.map((i) => [i.name, i.datatype, i.shape])).toEqual(
        ref.inputs.map((i) => [i.name, i.datatype, [-1, ...i.shape.slice(1)]]),
      );
    });
  }
});

describe('predict reproduces PyTorch eval within 1e-4 of the output scale (V2 binary tensors, batch 8)', () => {
  for (const [name, ref] of Object.entries(references)) {
    it(name, async () => {
      const res = await binaryInfer(name);
      expect(res.statusCode).toBe(200);
      const out = outputOf(res.json(), ref.outputs[0]!.name);
      expect(out.shape).toEqual(ref.outputs[0]!.shape);
      const want = ref.eval.batch8;
      const tol = 1e-4 * Math.max(1, scaleOf(want));
      const worst = out.data.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!)), 0);
      expect(worst).toBeLessThan(tol);
    });
  }
});

/** Our mean probabilities over T samples against PyTorch's over its passes: 5 standard errors of the difference. */
function expectProbabilitiesAgree(got: readonly number[], ref: Reference, T: number) {
  const mc = ref.mc;
  let outside = 0;
  got.forEach((p, i) => {
    const sd = mc.probabilities_std![i]!;
    if (Math.abs(p - mc.probabilities![i]!) > 5 * sd * Math.sqrt(1 / T + 1 / mc.passes) + 1e-6) outside++;
  });
  expect(outside).toBe(0);
}

describe('Monte Carlo on the worker, per element, against PyTorch MC', () => {
  it('unet (V2): per-pixel probabilities [N,3,32,32] and entropy, mutual information maps [N,32,32]', async () => {
    const ref = references.unet!;
    const T = 400;
    const res = await post('/v2/models/unet/infer', {
      inputs: v2Inputs('unet', ref.mc.rows),
      parameters: { mc_samples: T, seed: 11 },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    const p = outputOf(body, 'probabilities');
    expect(p.shape).toEqual([ref.mc.rows, 3, 32, 32]);
    expectProbabilitiesAgree(p.data, ref, T);
    for (const stat of ['entropy', 'mutual_information'] as const)
      expect(outputOf(body, stat).shape).toEqual([ref.mc.rows, 32, 32]);
  });

  it('token_tagger (V2): per-token probabilities [N,16,5], entropy [N,16]', async () => {
    const ref = references.token_tagger!;
    const T = 400;
    const res = await post('/v2/models/token_tagger/infer', {
      inputs: v2Inputs('token_tagger', ref.mc.rows),
      parameters: { mc_samples: T, seed: 5 },
    });
    expect(res.statusCode).toBe(200);
    const p = outputOf(res.json(), 'probabilities');
    expect(p.shape).toEqual([ref.mc.rows, 16, 5]);
    expectProbabilitiesAgree(p.data, ref, T);
    expect(outputOf(res.json(), 'entropy').shape).toEqual([ref.mc.rows, 16]);
  });

  it('text_classifier (/v1 keyed instances): the same answer as V2 with the same seed, and PyTorch MC', async () => {
    const ref = references.text_classifier!;
    const [ids, mask] = v2Inputs('text_classifier', ref.mc.rows);
    const row = (t: { data: number[] }, i: number) => t.data.slice(i * 16, (i + 1) * 16);
    const instances = Array.from({ length: ref.mc.rows }, (_, i) => ({
      input_ids: row(ids!, i),
      attention_mask: row(mask!, i),
    }));
    const T = 400;
    const v1 = await post('/v1/models/text_classifier/uncertainty', { instances, samples: T, seed: 9 });
    expect(v1.statusCode).toBe(200);
    const v1Probabilities = (v1.json().predictions as { probabilities: number[] }[]).flatMap((r) => r.probabilities);
    expectProbabilitiesAgree(v1Probabilities, ref, T);
    const v2 = await post('/v2/models/text_classifier/infer', {
      inputs: [ids, mask],
      parameters: { mc_samples: T, seed: 9 },
    });
    expect(v2.statusCode).toBe(200);
    const v2Probabilities = outputOf(v2.json(), 'probabilities').data;
    for (const [i, p] of v2Probabilities.entries()) expect(p).toBeCloseTo(v1Probabilities[i]!, 6);
  });

  it('conv1d_regressor (/v1 nested instances): mean per row within sampling error of PyTorch MC', async () => {
    const ref = references.conv1d_regressor!;
    const [x] = v2Inputs('conv1d_regressor', ref.mc.rows);
    const instances = Array.from({ length: ref.mc.rows }, (_, i) =>
      Array.from({ length: 4 }, (_, c) => x!.data.slice(i * 128 + c * 32, i * 128 + (c + 1) * 32)),
    );
    const T = 1000;
    const res = await post('/v1/models/conv1d_regressor/uncertainty', { instances, samples: T, seed: 2 });
    expect(res.statusCode).toBe(200);
    const rows = res.json().predictions as { mean: number[] }[];
    rows.forEach((r, i) => {
      const sd = ref.mc.std![i]!;
      expect(Math.abs(r.mean[0]! - ref.mc.mean![i]!)).toBeLessThan(5 * sd * Math.sqrt(1 / T + 1 / ref.mc.passes));
    });
  });

  it('8 mobilenet images as JSON are over the body limit: the 413 points to binary tensors', async () => {
    const res = await post('/v2/models/mobilenet/infer', { inputs: v2Inputs('mobilenet', 8) });
    expect(res.statusCode).toBe(413);
    expect(res.json().error).toMatch(/binary/);
  });

  it('an image of the wrong size is a 400 naming the input, the axis and the extent', async () => {
    const [x] = v2Inputs('bayes_cnn', 1);
    const res = await post('/v2/models/bayes_cnn/infer', {
      inputs: [{ ...x!, shape: [1, 1, 28, 27], data: x!.data.slice(0, 28 * 27) }],
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(/input.*axis 3.*28/);
  });

  it('the example of docs/serving.md (Tensor models): its answer and its 400', async () => {
    const ids = [12, 7, 33, 5, 9, 41, 2, 8, 19, 27, 3, 6, 0, 0, 0, 0];
    const mask = ids.map((v) => (v ? 1 : 0));
    const url = '/v1/models/text_classifier/uncertainty';
    const res = await post(url, { instances: [{ input_ids: ids, attention_mask: mask }], samples: 200, seed: 1 });
    expect(res.statusCode).toBe(200);
    const row = res.json().predictions[0];
    expect(row.label).toBe('0');
    expect(row.probabilities.map((p: number) => p.toFixed(4))).toEqual(['0.4936', '0.4838', '0.0226']);
    expect([row.entropy.toFixed(4), row.mutual_information.toFixed(4), row.variation_ratio]).toEqual([
      '0.7854',
      '0.1769',
      expect.closeTo(0.49, 6),
    ]);
    const short = await post(url, { instances: [{ input_ids: ids.slice(1), attention_mask: mask }] });
    expect(short.statusCode).toBe(400);
    expect(short.json().message).toBe('input "input_ids": axis 1 has 15 values, expected 16');
  });
});
