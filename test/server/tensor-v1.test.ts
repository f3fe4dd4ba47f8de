/**
 * Tensor models over /v1 (issue 19), in the TF Serving row format of KServe's v1 protocol: instances
 * nested to one row's shape, or keyed by input name; answers per row nested to the output's row shape.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIABETES_ROW, testApp } from '../helpers/app.js';
import { type FakeTensorModel, type TensorKind, fakeTensorModel } from '../helpers/fake-tensor-model.js';

let app: FastifyInstance;
const models = {} as Record<TensorKind, FakeTensorModel>;
beforeAll(async () => {
  ({ app } = await testApp({ MAX_BATCH_ROWS: '50' }));
  for (const kind of ['segmentation', 'text', 'regression'] as const) {
    models[kind] = fakeTensorModel(kind);
    await app.repository.swap(models[kind], { name: kind, file: `${kind}.onnx`, card: null });
  }
});
afterAll(() => app.close());

const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, payload: payload as object });

/** Pixel (h, w) = (h − 1.5)·(w + 1): negative in rows 0-1 (background), positive in rows 2-3 (nucleus). */
const IMAGE = [Array.from({ length: 4 }, (_, h) => Array.from({ length: 4 }, (_, w) => (h - 1.5) * (w + 1)))];
const ids = Array.from({ length: 16 }, (_, j) => j + 1);
const mask = Array.from({ length: 16 }, (_, j) => (j < 10 ? 1 : 0));
const MAP = [
  ['background', 'background', 'background', 'background'],
  ['background', 'background', 'background', 'background'],
  ['nucleus', 'nucleus', 'nucleus', 'nucleus'],
  ['nucleus', 'nucleus', 'nucleus', 'nucleus'],
];

describe('/v1 predict of tensor models', () => {
  it('segmentation: nested instances [1,4,4]; per-pixel label map and probabilities [3,4,4] per row', async () => {
    const res = await post('/v1/models/segmentation/predict', { instances: [IMAGE, IMAGE] });
    expect(res.statusCode).toBe(200);
    const { predictions } = res.json();
    expect(predictions).toHaveLength(2);
    expect(predictions[1].label).toEqual(MAP);
    const p = predictions[0].probabilities as number[][][];
    expect([p.length, p[0]!.length, p[0]![0]!.length]).toEqual([3, 4, 4]);
    // pixel (0, 0): x = −1.5, softmax of (k − 1)·x
    const e = [1.5, 0, -1.5].map(Math.exp);
    const s = e.reduce((a, b) => a + b, 0);
    for (let k = 0; k < 3; k++) expect(p[k]![0]![0]).toBeCloseTo(e[k]! / s, 6);
    expect(models.segmentation.calls.at(-1)!.inputs[0]!.dims).toEqual([2, 1, 4, 4]);
  });
  it('text: instances keyed by input name; INT64 ids as BigInt64Array', async () => {
    const res = await post('/v1/models/text/predict', {
      instances: [
        { input_ids: ids, attention_mask: mask },
        { attention_mask: mask.map(() => 0), input_ids: ids },
      ],
    });
    expect(res.statusCode).toBe(200);
    const call = models.text.calls.at(-1)!;
    expect(call.inputs.map((t) => [t.name, t.data.constructor.name, t.dims])).toEqual([
      ['input_ids', 'BigInt64Array', [2, 16]],
      ['attention_mask', 'BigInt64Array', [2, 16]],
    ]);
    const [a, b] = res.json().predictions;
    expect(a.label).toBe('positive');
    const p = 1 / (1 + Math.exp(-2 * 0.55));
    expect(a.probabilities[1]).toBeCloseTo(p, 6);
    expect(b.probabilities).toEqual([0.5, 0.5]);
  });
  it('regression [N,4,8] → [N,1]: each row [value]; a bare array of instances too', async () => {
    const row = Array.from({ length: 4 }, (_, c) => Array.from({ length: 8 }, (_, t) => c * 8 + t));
    const res = await post('/v1/models/regression/predict', [row]);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ model: 'regression', predictions: [[15.5]] });
  });
  it('tabular rows unchanged', async () => {
    const res = await post('/v1/models/diabetes/predict', { instances: [DIABETES_ROW] });
    expect(res.statusCode).toBe(200);
    expect(typeof res.json().predictions[0]).toBe('number');
  });
});

describe('/v1 uncertainty of tensor models', () => {
  it('segmentation: per-pixel maps of label, entropy, mutual information, variation ratio', async () => {
    const res = await post('/v1/models/segmentation/uncertainty', { instances: [IMAGE], samples: 4, seed: 5 });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ model: 'segmentation', samples: 4, seed: 5 });
    const row = body.predictions[0];
    expect(Object.keys(row)).toEqual(['label', 'probabilities', 'entropy', 'mutual_information', 'variation_ratio']);
    expect(row.label).toEqual(MAP);
    expect(row.entropy).toHaveLength(4);
    expect(row.entropy[0]).toHaveLength(4);
    expect(row.variation_ratio.flat()).toEqual(Array(16).fill(0));
    expect(row.probabilities).toHaveLength(3);
    // the per-pixel maps are the V2 answer's values
    const v2 = await post('/v2/models/segmentation/infer', {
      inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 4, 4], data: [IMAGE] }],
      parameters: { mc_samples: 4, seed: 5 },
    });
    const entropy = v2.json().outputs.find((o: { name: string }) => o.name === 'entropy').data;
    expect(row.entropy.flat()).toEqual(entropy);
  });
  it('regression: mean, stds and the interval per output element', async () => {
    const res = await post('/v1/models/regression/uncertainty', {
      instances: [Array.from({ length: 4 }, () => Array(8).fill(2))],
      samples: 4,
      interval: 0.9,
    });
    expect(res.statusCode).toBe(200);
    const row = res.json().predictions[0];
    expect(row.mean).toEqual([2]);
    expect(row.epistemic_std[0]).toBeCloseTo(Math.sqrt(4 / 3), 6);
    expect(row.interval).toMatchObject({ level: 0.9, method: 'gaussian' });
    expect(row.interval.upper[0] - row.interval.lower[0]).toBeCloseTo(2 * 1.6448536 * row.std[0], 4);
  });
});

describe("/v1 columnar inputs (TF Serving's `inputs`)", () => {
  it('one input: its batch; several: keyed by input name; the same answers as instances', async () => {
    const cols = await post('/v1/models/segmentation/predict', { inputs: [IMAGE, IMAGE] });
    const rows = await post('/v1/models/segmentation/predict', { instances: [IMAGE, IMAGE] });
    expect(cols.statusCode).toBe(200);
    expect(cols.json()).toEqual(rows.json());
    const keyed = await post('/v1/models/text/uncertainty', {
      inputs: { attention_mask: [mask], input_ids: [ids] },
      samples: 4,
      seed: 1,
    });
    const byRow = await post('/v1/models/text/uncertainty', {
      instances: [{ input_ids: ids, attention_mask: mask }],
      samples: 4,
      seed: 1,
    });
    expect(keyed.statusCode).toBe(200);
    expect(keyed.json()).toEqual(byRow.json());
    expect(models.text.calls.at(-1)!.inputs.map((t) => t.dims)).toEqual([
      [1, 16],
      [1, 16],
    ]);
  });
  it.each([
    [
      'batches disagree',
      '/v1/models/text/predict',
      { inputs: { input_ids: [ids, ids], attention_mask: [mask] } },
      400,
      'input "attention_mask": axis 0 (the batch) has 1 rows, but input "input_ids" has 2; every input needs the same batch',
    ],
    [
      'one batch for two inputs',
      '/v1/models/text/predict',
      { inputs: [ids] },
      400,
      'inputs: the model takes 2 inputs ("input_ids", "attention_mask"); send an object keyed by input name',
    ],
    [
      'a tabular model',
      '/v1/models/diabetes/predict',
      { inputs: [DIABETES_ROW] },
      400,
      'inputs: model "diabetes" takes rows of features; send them as "instances" (the columnar "inputs" is for tensor models)',
    ],
    [
      'instances and inputs',
      '/v1/models/regression/uncertainty',
      { instances: [[[1]]], inputs: [[[1]]] },
      400,
      'body.inputs: send either instances or inputs, not both',
    ],
    [
      'neither',
      '/v1/models/regression/uncertainty',
      { samples: 3 },
      400,
      'body.instances: Invalid input: expected array, received undefined',
    ],
    [
      'too many rows',
      '/v1/models/regression/predict',
      { inputs: Array(51).fill(Array(4).fill(Array(8).fill(0))) },
      413,
      'inputs: 51 rows exceed MAX_BATCH_ROWS=50',
    ],
  ])('%s → %i', async (_what, url, body, status, message) => {
    const res = await post(url, body);
    expect(res.statusCode).toBe(status);
    expect(res.json().message).toBe(message);
  });
});

describe('/v1 errors of tensor models', () => {
  it.each([
    [
      'a row of the wrong extent',
      'segmentation',
      { instances: [[IMAGE[0]!.slice(1)]] },
      400,
      'input "image": axis 2 has 3 values, expected 4',
    ],
    [
      'ragged rows',
      'segmentation',
      { instances: [IMAGE, [IMAGE[0]!.map((r) => r.slice(1))]] },
      400,
      'input "image": instances[1][0][0] has 3 values on axis 3, expected 4',
    ],
    [
      'a bare row for a model of two inputs',
      'text',
      { instances: [ids] },
      400,
      'instances[0]: the model takes 2 inputs ("input_ids", "attention_mask"); send each instance as an object keyed by input name',
    ],
    [
      'a missing input',
      'text',
      { instances: [{ input_ids: ids }] },
      400,
      'instances[0]: missing input "attention_mask"; the model\'s inputs are "input_ids", "attention_mask"',
    ],
    [
      'an unknown input',
      'text',
      { instances: [{ input_ids: ids, attention_mask: mask, extra: [1] }] },
      400,
      'instances[0][2]: unknown input "extra"; the model\'s inputs are "input_ids", "attention_mask"',
    ],
    [
      'a fractional id',
      'text',
      { instances: [{ input_ids: [0.5, ...ids.slice(1)], attention_mask: mask }] },
      400,
      'input "input_ids": element 0: expected an integer (INT64 as a JSON number), got 0.5',
    ],
    [
      'too many rows',
      'regression',
      { instances: Array(51).fill([[1]]) },
      413,
      'instances: 51 rows exceed MAX_BATCH_ROWS=50',
    ],
    [
      'return_samples',
      'regression',
      { instances: [Array(4).fill(Array(8).fill(0))], return_samples: true },
      400,
      'return_samples: the raw samples of a tensor model are not served',
    ],
  ])('%s → %i naming it', async (_what, model, body, status, message) => {
    const route = 'return_samples' in body ? 'uncertainty' : 'predict';
    const res = await post(`/v1/models/${model}/${route}`, body);
    expect(res.statusCode).toBe(status);
    expect(res.json().message).toBe(message);
  });
});
