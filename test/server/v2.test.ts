import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIABETES_ROW, WINE_ROW, testApp } from '../helpers/app.js';

let app: FastifyInstance;
beforeAll(async () => {
  ({ app } = await testApp({ MAX_BATCH_ROWS: '50', MC_MAX_WORK: '20000' }));
});
afterAll(() => app.close());

const infer = (model: string, payload: unknown, version = '') =>
  app.inject({
    method: 'POST',
    url: `/v2/models/${model}${version ? `/versions/${version}` : ''}/infer`,
    payload: payload as object,
  });
const input = (data: unknown, shape: number[], datatype = 'FP32', name = 'input') => ({
  inputs: [{ name, shape, datatype, data }],
});

describe('KServe Open Inference Protocol (V2)', () => {
  it('server metadata, health', async () => {
    const meta = {
      name: 'dropout-serve',
      version: '0.1.0',
      extensions: ['mc_dropout', 'binary_tensor_data', 'statistics', 'model_configuration'],
    };
    expect((await app.inject('/v2')).json()).toEqual(meta);
    // the spec's path (open_inference_rest.yaml: /v2/)
    const slash = await app.inject('/v2/');
    expect(slash.statusCode).toBe(200);
    expect(slash.json()).toEqual(meta);
    expect((await app.inject('/v2/health/live')).json()).toEqual({ live: true });
    expect((await app.inject('/v2/health/ready')).json()).toEqual({ ready: true });
  });
  it('model metadata with -1 for the batch dimension, with or without a version', async () => {
    const meta = (await app.inject('/v2/models/diabetes')).json();
    expect(meta).toMatchObject({
      name: 'diabetes',
      versions: ['1'],
      platform: 'onnx_onnxv1',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 10] }],
      outputs: [{ name: 'prediction', datatype: 'FP32', shape: [-1, 1] }],
    });
    expect((await app.inject('/v2/models/diabetes/versions/1')).json()).toEqual(meta);
    expect((await app.inject('/v2/models/diabetes/ready')).json()).toEqual({ name: 'diabetes', ready: true });
    expect((await app.inject('/v2/models/diabetes/versions/1/ready')).json()).toEqual({
      name: 'diabetes',
      ready: true,
    });
    const v2 = await app.inject('/v2/models/diabetes/versions/2');
    expect(v2.statusCode).toBe(404);
    expect(v2.json()).toEqual({ error: 'model "diabetes" has no version "2" (versions: 1)' });
    const unknown = await app.inject('/v2/models/nope');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ error: 'unknown model "nope" (available: diabetes, nodrop, torchnet, wine)' });
  });
  it('infer: id echoed; flat and nested data give the same answer; FP64 accepted', async () => {
    const flat = await infer('diabetes', { id: 'req-1', ...input([...DIABETES_ROW, ...DIABETES_ROW], [2, 10]) });
    expect(flat.statusCode).toBe(200);
    const body = flat.json();
    expect(body).toMatchObject({ model_name: 'diabetes', model_version: '1', id: 'req-1' });
    expect(body.outputs).toHaveLength(1);
    expect(body.outputs[0]).toMatchObject({ name: 'prediction', shape: [2, 1], datatype: 'FP32' });
    const nested = (await infer('diabetes', input([DIABETES_ROW, DIABETES_ROW], [2, 10]), '1')).json();
    expect(nested.outputs).toEqual(body.outputs);
    const fp64 = (await infer('diabetes', input([DIABETES_ROW, DIABETES_ROW], [2, 10], 'FP64'))).json();
    expect(fp64.outputs).toEqual(body.outputs);
    // same number as /v1 predict
    const v1 = (
      await app.inject({ method: 'POST', url: '/v1/models/diabetes/predict', payload: { instances: [DIABETES_ROW] } })
    ).json();
    expect(body.outputs[0].data[0]).toBe(Math.fround(v1.predictions[0]));
  });
  it('infer on a classifier returns its logits and probabilities; outputs can be selected', async () => {
    const r = (await infer('wine', input(WINE_ROW, [1, 13]))).json();
    expect(r.outputs.map((o: { name: string }) => o.name)).toEqual(['logits', 'probabilities']);
    const only = (await infer('wine', { ...input(WINE_ROW, [1, 13]), outputs: [{ name: 'probabilities' }] })).json();
    expect(only.outputs.map((o: { name: string }) => o.name)).toEqual(['probabilities']);
    expect(only.outputs[0].data.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 5);
  });
  it('MC via parameters.mc_samples: mean/std for regression, probabilities/entropy/mutual_information for classification', async () => {
    const reg = (
      await infer('diabetes', {
        ...input([DIABETES_ROW, DIABETES_ROW, DIABETES_ROW], [3, 10]),
        parameters: { mc_samples: 200, seed: 7 },
      })
    ).json();
    const names = reg.outputs.map((o: { name: string }) => o.name);
    expect(names).toEqual(expect.arrayContaining(['mean', 'std']));
    for (const o of reg.outputs) expect(o).toMatchObject({ datatype: 'FP32', shape: [3, 1] });
    expect(reg.parameters).toMatchObject({ mc_samples: 200, seed: 7 });
    const again = (
      await infer('diabetes', {
        ...input([DIABETES_ROW, DIABETES_ROW, DIABETES_ROW], [3, 10]),
        parameters: { mc_samples: 200, seed: 7 },
      })
    ).json();
    expect(again.outputs).toEqual(reg.outputs);
    const cls = (
      await infer('wine', { ...input([WINE_ROW, WINE_ROW], [2, 13]), parameters: { mc_samples: 100 } })
    ).json();
    const byName = Object.fromEntries(cls.outputs.map((o: { name: string }) => [o.name, o]));
    expect(byName.probabilities.shape).toEqual([2, 3]);
    expect(byName.entropy.shape).toEqual([2]);
    expect(byName.mutual_information.shape).toEqual([2]);
  });
  it('errors are {"error": "..."} and name the problem', async () => {
    const cases: [string, unknown, number][] = [
      ['diabetes', input(DIABETES_ROW.slice(0, 9), [1, 10]), 400],
      ['diabetes', input([DIABETES_ROW], [1, 9]), 400],
      ['diabetes', input([DIABETES_ROW], [-1, 10]), 400],
      ['diabetes', input(DIABETES_ROW, [1, 10], 'BYTES'), 400],
      ['diabetes', input(DIABETES_ROW, [1, 10], 'FP8'), 400],
      ['diabetes', input(['a', ...DIABETES_ROW.slice(1)], [1, 10]), 400],
      ['diabetes', input(DIABETES_ROW, [1, 10], 'FP32', 'x'), 400],
      ['diabetes', { inputs: [] }, 400],
      ['diabetes', { inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32' }] }, 400],
      ['diabetes', { ...input(DIABETES_ROW, [1, 10]), parameters: { mc_samples: 'many' } }, 400],
      ['diabetes', { ...input(Array(30).fill(DIABETES_ROW), [30, 10]), parameters: { mc_samples: 1000 } }, 413],
      ['nodrop', { ...input([1, 2, 3, 4], [1, 4], 'FP32', 'x'), parameters: { mc_samples: 10 } }, 422],
      ['diabetes', { ...input(DIABETES_ROW, [1, 10]), outputs: [{ name: 'nope' }] }, 400],
    ];
    const errors = [];
    for (const [model, payload, status] of cases) {
      const r = await infer(model, payload);
      expect(r.statusCode, JSON.stringify(payload).slice(0, 80)).toBe(status);
      expect(Object.keys(r.json())).toEqual(['error']);
      errors.push(r.json().error);
    }
    expect(errors).toMatchInlineSnapshot(`
      [
        "inputs[0] ("input"): data has 9 elements but shape [1, 10] needs 10",
        "inputs[0] ("input").shape: expected [rows, 10], got [1, 9]",
        "body.inputs[0].shape[0]: Too small: expected number to be >=0",
        "inputs[0] ("input").datatype: BYTES is not supported; send FP32 (FP64 and integer types are converted)",
        "inputs[0] ("input").datatype: unknown datatype "FP8"",
        "inputs[0] ("input").data[0]: expected a finite number, got a string",
        "inputs[0].name: unknown input "x"; the model's input is "input"",
        "body.inputs: Too small: expected array to have >=1 items",
        "inputs[0] ("input").data: missing (send "data", or the values in binary with parameters.binary_data_size)",
        "body.parameters.mc_samples: Invalid input: expected number, received string",
        "rows × mc_samples = 30 × 1000 = 30000 exceeds MC_MAX_WORK=20000",
        "model "nodrop" has no Dropout node, so Monte Carlo dropout is not available; use predict",
        "outputs[0].name: unknown output "nope" (available: prediction)",
      ]
    `);
  });
});

describe('Triton model configuration extension', () => {
  it("Triton's model configuration: the same tensors without the batch, the server's settings; errors in the V2 shape", async () => {
    const config = (await app.inject('/v2/models/torchnet/config')).json();
    expect(config).toMatchObject({
      name: 'torchnet',
      platform: 'onnxruntime_onnx',
      backend: 'onnxruntime',
      max_batch_size: 50,
      output: [{ name: 'y', data_type: 'TYPE_FP32', dims: [2] }],
      version_policy: { latest: { num_versions: 1 } },
    });
    expect(config.dynamic_batching).toBeUndefined(); // BATCH_MAX_ROWS=0 in these tests
    expect(config.parameters.mc_available).toEqual({ string_value: 'true' });
    expect((await app.inject('/v2/models/nodrop/config')).json().parameters.mc_available).toEqual({
      string_value: 'false',
    });
    const v2 = await app.inject('/v2/models/diabetes/versions/2/config');
    expect([v2.statusCode, v2.json()]).toEqual([404, { error: 'model "diabetes" has no version "2" (versions: 1)' }]);
    const unknown = await app.inject('/v2/models/nope/config');
    expect([unknown.statusCode, unknown.json()]).toEqual([
      404,
      { error: 'unknown model "nope" (available: diabetes, nodrop, torchnet, wine)' },
    ]);
  });
});
