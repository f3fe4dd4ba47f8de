/**
 * Tensor models over V2 (issue 19): one tensor per input, checked against the model's datatypes and
 * shapes, JSON or binary; outputs in the output's own shape; metadata and Triton's configuration
 * describe every input and output. Against the fake tensor models (test/helpers/fake-tensor-model.ts).
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testApp } from '../helpers/app.js';
import { type FakeTensorModel, type TensorKind, fakeTensorModel } from '../helpers/fake-tensor-model.js';

let app: FastifyInstance;
const models = {} as Record<TensorKind | 'heavy', FakeTensorModel>;
beforeAll(async () => {
  ({ app } = await testApp({ MAX_BATCH_ROWS: '50', MC_MAX_WORK_BYTES: '1000000', MC_MAX_RUN_BYTES: '1048576' }));
  for (const kind of ['segmentation', 'text', 'regression', 'mixed'] as const) {
    models[kind] = fakeTensorModel(kind);
    await app.repository.swap(models[kind], { name: kind, file: `${kind}.onnx`, card: null });
  }
  models.heavy = fakeTensorModel('regression', { name: 'heavy', runBytesPerRow: 2 * 1048576 });
  await app.repository.swap(models.heavy, { name: 'heavy', file: 'heavy.onnx', card: null });
});
afterAll(() => app.close());

const infer = (model: string, payload: unknown) =>
  app.inject({ method: 'POST', url: `/v2/models/${model}/infer`, payload: payload as object });

/** A 4×4 image whose pixel (h, w) is (h − 1.5)·(w + 1) (negative in rows 0-1, positive in rows 2-3). */
const IMAGE = Array.from({ length: 4 }, (_, h) => Array.from({ length: 4 }, (_, w) => (h - 1.5) * (w + 1)));
const image = (n = 1) => ({ name: 'image', datatype: 'FP32', shape: [n, 1, 4, 4], data: Array(n).fill([IMAGE]) });
const ids = Array.from({ length: 16 }, (_, j) => j + 1);
const mask = Array.from({ length: 16 }, (_, j) => (j < 10 ? 1 : 0));
const text = (idsData: unknown = [ids, ids], maskData: unknown = [mask, mask], shape = [2, 16]) => ({
  inputs: [
    { name: 'input_ids', datatype: 'INT64', shape, data: idsData },
    { name: 'attention_mask', datatype: 'INT64', shape, data: maskData },
  ],
});

/** Softmax of (k − 1)·x over k = 0, 1, 2. */
const softmax3 = (x: number) => {
  const e = [0, 1, 2].map((k) => Math.exp((k - 1) * x));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

/** A request body with binary tensors: the JSON header, then each tensor's bytes. */
function binaryBody(header: object, tensors: ArrayBufferView[]) {
  const head = Buffer.from(JSON.stringify(header));
  const body = Buffer.concat([head, ...tensors.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength))]);
  return { body, headers: { 'inference-header-content-length': String(head.length) } };
}

/** The outputs of a binary answer, as typed arrays by name. */
function binaryOutputs(res: { rawPayload: Buffer; headers: Record<string, unknown> }) {
  const hlen = Number(res.headers['inference-header-content-length']);
  const head = JSON.parse(res.rawPayload.subarray(0, hlen).toString());
  let at = hlen;
  const out: Record<string, { shape: number[]; datatype: string; values: number[] }> = {};
  for (const o of head.outputs) {
    const size = o.parameters.binary_data_size;
    const bytes = res.rawPayload.subarray(at, at + size);
    const copy = new Uint8Array(bytes).buffer;
    const values = Array.from(o.datatype === 'INT32' ? new Int32Array(copy) : new Float32Array(copy));
    out[o.name] = { shape: o.shape, datatype: o.datatype, values };
    at += size;
  }
  return out;
}

describe('V2 infer of tensor models: predict', () => {
  it('segmentation: the raw logits [N,3,4,4], probabilities with the class axis in place, the label per pixel', async () => {
    const res = await infer('segmentation', { inputs: [image(2)] });
    expect(res.statusCode).toBe(200);
    const outs = res.json().outputs as { name: string; shape: number[]; datatype: string; data: number[] }[];
    expect(outs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ['logits', 'FP32', [2, 3, 4, 4]],
      ['probabilities', 'FP32', [2, 3, 4, 4]],
      ['label', 'INT32', [2, 4, 4]],
    ]);
    const [logits, probs, label] = outs;
    // pixel (h=3, w=2) of row 1: x = 1.5 · 3 = 4.5
    const x = 4.5;
    const at = (k: number) => 16 + k * 16 + 3 * 4 + 2;
    expect(logits!.data[48 + 16 * 2 + 14]).toBeCloseTo(x, 5); // row 1, class 2, pixel 14
    const p = softmax3(x);
    for (let k = 0; k < 3; k++) expect(probs!.data[32 + at(k)]).toBeCloseTo(p[k]!, 6);
    // classes: x < 0 → background (0), x > 0 → nucleus (2)
    expect(label!.data.slice(0, 16)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2]);
  });
  it('text: INT64 ids arrive as BigInt64Array, integers unchanged; logits [N,2]', async () => {
    const big = 2 ** 40 + 3;
    const res = await infer('text', text([[big, ...ids.slice(1)], ids]));
    expect(res.statusCode).toBe(200);
    const call = models.text.calls.at(-1)!;
    expect(call.inputs.map((t) => [t.name, t.data.constructor.name, t.dims])).toEqual([
      ['input_ids', 'BigInt64Array', [2, 16]],
      ['attention_mask', 'BigInt64Array', [2, 16]],
    ]);
    expect(call.inputs[0]!.data[0]).toBe(BigInt(big));
    const logits = res.json().outputs[0];
    const s = ids.slice(0, 10).reduce((a, b) => a + b, 0) / 100;
    expect(logits).toMatchObject({ name: 'logits', shape: [2, 2] });
    expect(logits.data[3]).toBeCloseTo(s, 5);
    expect(res.json().outputs.map((o: { name: string; shape: number[] }) => [o.name, o.shape])).toEqual([
      ['logits', [2, 2]],
      ['probabilities', [2, 2]],
      ['label', [2]],
    ]);
  });
  it('regression [N,4,8] → [N,1]: nested or flat data give the same answer', async () => {
    const row = Array.from({ length: 4 }, (_, c) => Array.from({ length: 8 }, (_, t) => c * 8 + t));
    const nested = await infer('regression', {
      inputs: [{ name: 'series', datatype: 'FP32', shape: [1, 4, 8], data: [row] }],
    });
    const flat = await infer('regression', {
      inputs: [{ name: 'series', datatype: 'FP32', shape: [1, 4, 8], data: row.flat() }],
    });
    expect(nested.json().outputs).toEqual([{ name: 'y', datatype: 'FP32', shape: [1, 1], data: [15.5] }]);
    expect(flat.json()).toEqual(nested.json());
  });
  it('binary inputs of every datatype the inputs declare, binary outputs', async () => {
    const x = new Float32Array(16 * 2).map((_, i) => (i % 16) - 7.5);
    const { body, headers } = binaryBody(
      {
        inputs: [
          { name: 'image', datatype: 'FP32', shape: [2, 1, 4, 4], parameters: { binary_data_size: x.byteLength } },
        ],
        parameters: { binary_data_output: true },
      },
      [x],
    );
    const res = await app.inject({ method: 'POST', url: '/v2/models/segmentation/infer', payload: body, headers });
    expect(res.statusCode).toBe(200);
    const outs = binaryOutputs(res);
    expect(outs.label).toEqual({ shape: [2, 4, 4], datatype: 'INT32', values: [...x].map((v) => (v > 0 ? 2 : 0)) });
    expect(outs.logits!.values[2 * 16 + 15]).toBeCloseTo(7.5, 6); // class 2 of pixel 15: (2 − 1)·7.5

    const idsBin = BigInt64Array.from([...ids, ...ids], BigInt);
    const maskBin = BigInt64Array.from([...mask, ...mask], BigInt);
    const t = binaryBody(
      {
        inputs: [
          { name: 'input_ids', datatype: 'INT64', shape: [2, 16], parameters: { binary_data_size: 256 } },
          { name: 'attention_mask', datatype: 'INT64', shape: [2, 16], parameters: { binary_data_size: 256 } },
        ],
      },
      [idsBin, maskBin],
    );
    const tr = await app.inject({ method: 'POST', url: '/v2/models/text/infer', payload: t.body, headers: t.headers });
    expect(tr.statusCode).toBe(200);
    expect(models.text.calls.at(-1)!.inputs[1]!.data).toEqual(maskBin);
    expect(tr.json().outputs[0].data[1]).toBeCloseTo(0.55, 6);
  });
});

describe('V2 raw binary requests (Inference-Header-Content-Length: 0) to tensor models', () => {
  it('a single-input model: the body is the input, its batch deduced from the byte count', async () => {
    const x = new Float32Array(3 * 16).map((_, i) => (i % 16) - 7.5);
    const res = await app.inject({
      method: 'POST',
      url: '/v2/models/segmentation/infer',
      payload: Buffer.from(x.buffer),
      headers: { 'inference-header-content-length': '0' },
    });
    expect(res.statusCode).toBe(200);
    expect(binaryOutputs(res).label!.shape).toEqual([3, 4, 4]);
    expect(models.segmentation.calls.at(-1)!.inputs[0]!.dims).toEqual([3, 1, 4, 4]);
  });
  it('a model of two inputs cannot take one', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v2/models/text/infer',
      payload: Buffer.alloc(256),
      headers: { 'inference-header-content-length': '0' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(/only a model with a single input accepts/);
  });
});

describe('V2 inputs of every datatype', () => {
  // row 0 and row 1 of each input; FP16 0x3c00 = 1, 0xc000 = −2, 0x3800 = 0.5
  const rows = {
    half: [1, -2, 0.5, 0.5],
    double: [0.25, 1e30, 2, 3],
    int: [-3, 2_000_000_000, 4, 5],
    flag: [1, 0, 1, 1],
    byte: [255, 7, 8, 9],
  };
  const sums = [1 - 2 + 0.25 + 1e30 - 3 + 2_000_000_000 + 1 + 255 + 7, 0.5 + 0.5 + 2 + 3 + 4 + 5 + 1 + 1 + 8 + 9];
  const typed = {
    half: Uint16Array.from([0x3c00, 0xc000, 0x3800, 0x3800]),
    double: Float64Array.from(rows.double),
    int: Int32Array.from(rows.int),
    flag: Uint8Array.from(rows.flag),
    byte: Uint8Array.from(rows.byte),
  };
  const datatypes = { half: 'FP16', double: 'FP64', int: 'INT32', flag: 'BOOL', byte: 'UINT8' } as const;
  it('JSON: each in its declared datatype, read into its typed array (BOOL as true/false)', async () => {
    const inputs = Object.entries(rows).map(([name, v]) => ({
      name,
      datatype: datatypes[name as keyof typeof datatypes],
      shape: [2, 2],
      data: name === 'flag' ? v.map((b) => b === 1) : v,
    }));
    const res = await infer('mixed', { inputs });
    expect(res.statusCode).toBe(200);
    expect(res.json().outputs[0].data).toEqual(sums.map((v) => Math.fround(v)));
    const call = models.mixed.calls.at(-1)!;
    expect(call.inputs.map((t) => t.data.constructor.name)).toEqual([
      'Uint16Array',
      'Float64Array',
      'Int32Array',
      'Uint8Array',
      'Uint8Array',
    ]);
    expect(call.inputs[0]!.data).toEqual(typed.half);
    expect(call.inputs[1]!.data).toEqual(typed.double);
    expect(call.inputs[2]!.data).toEqual(typed.int);
  });
  it('binary: the same answer', async () => {
    const names = Object.keys(typed) as (keyof typeof typed)[];
    const { body, headers } = binaryBody(
      {
        inputs: names.map((name) => ({
          name,
          datatype: datatypes[name],
          shape: [2, 2],
          parameters: { binary_data_size: typed[name].byteLength },
        })),
      },
      names.map((n) => typed[n]),
    );
    const res = await app.inject({ method: 'POST', url: '/v2/models/mixed/infer', payload: body, headers });
    expect(res.statusCode).toBe(200);
    expect(res.json().outputs[0].data).toEqual(sums.map((v) => Math.fround(v)));
  });
  it.each([
    ['half', 70000, 'input "half": element 0: 70000 is outside the float16 range'],
    ['int', 2 ** 31, 'input "int": element 0: 2147483648 is outside the INT32 range [-2147483648, 2147483647]'],
    ['byte', -1, 'input "byte": element 0: -1 is outside the UINT8 range [0, 255]'],
    ['flag', 2, 'input "flag": element 0: expected true or false, got 2'],
  ])('JSON %s out of its range: %s → 400', async (name, value, error) => {
    const inputs = Object.entries(rows).map(([n, v]) => ({
      name: n,
      datatype: datatypes[n as keyof typeof datatypes],
      shape: [2, 2],
      data: n === name ? [value, ...v.slice(1)] : v,
    }));
    const res = await infer('mixed', { inputs });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error });
  });
});

describe('V2 infer of tensor models: Monte Carlo', () => {
  it('segmentation: probabilities [N,3,4,4], entropy, mutual information, variation ratio and label [N,4,4]', async () => {
    const res = await infer('segmentation', { inputs: [image(1)], parameters: { mc_samples: 10, seed: 3 } });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.parameters).toEqual({ mc_samples: 10, seed: 3 });
    const outs = Object.fromEntries(body.outputs.map((o: { name: string }) => [o.name, o]));
    expect(body.outputs.map((o: { name: string; shape: number[] }) => [o.name, o.shape])).toEqual([
      ['probabilities', [1, 3, 4, 4]],
      ['entropy', [1, 4, 4]],
      ['mutual_information', [1, 4, 4]],
      ['variation_ratio', [1, 4, 4]],
      ['label', [1, 4, 4]],
    ]);
    // pixel (h=3, w=2): x = 4.5; samples 0.5·x and 1.5·x alternate, so the mean probability is their average
    const x = 4.5;
    const p = softmax3(0.5 * x).map((v, k) => (v + softmax3(1.5 * x)[k]!) / 2);
    for (let k = 0; k < 3; k++) expect(outs.probabilities.data[k * 16 + 14]).toBeCloseTo(p[k]!, 6);
    const H = (q: number[]) => -q.reduce((a, v) => a + v * Math.log(v), 0);
    expect(outs.entropy.data[14]).toBeCloseTo(H(p), 5);
    expect(outs.mutual_information.data[14]).toBeCloseTo(H(p) - (H(softmax3(0.5 * x)) + H(softmax3(1.5 * x))) / 2, 5);
    expect(outs.variation_ratio.data[14]).toBe(0);
    expect(outs.label.data[14]).toBe(2);
  });
  it('regression: mean and stds per element, in the output shape; mean equals predict for an even T', async () => {
    const series = { name: 'series', datatype: 'FP32', shape: [1, 4, 8], data: Array(32).fill(2) };
    const res = await infer('regression', { inputs: [series], parameters: { mc_samples: 4 } });
    expect(res.statusCode).toBe(200);
    const outs = Object.fromEntries(res.json().outputs.map((o: { name: string }) => [o.name, o]));
    expect(Object.keys(outs)).toEqual(['mean', 'std', 'epistemic_std', 'aleatoric_std', 'lower', 'upper']);
    expect(outs.mean).toEqual({ name: 'mean', datatype: 'FP32', shape: [1, 1], data: [2] });
    // samples 1, 3, 1, 3: std √(4/3)
    expect(outs.epistemic_std.data[0]).toBeCloseTo(Math.sqrt(4 / 3), 6);
  });
  it('output selection and binary_data for a tensor output', async () => {
    const res = await infer('segmentation', {
      inputs: [image(1)],
      parameters: { mc_samples: 4 },
      outputs: [{ name: 'entropy', parameters: { binary_data: true } }, { name: 'label' }],
    });
    expect(res.statusCode).toBe(200);
    const hlen = Number(res.headers['inference-header-content-length']);
    const head = JSON.parse(res.rawPayload.subarray(0, hlen).toString());
    expect(head.outputs.map((o: { name: string }) => o.name)).toEqual(['entropy', 'label']);
    expect(head.outputs[0].parameters).toEqual({ binary_data_size: 64 });
    expect(res.rawPayload.length).toBe(hlen + 64);
  });
  it('an output the model does not have: 400 listing those it has', async () => {
    const res = await infer('segmentation', { inputs: [image(1)], outputs: [{ name: 'mean' }] });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: 'outputs[0].name: unknown output "mean" (available: logits, probabilities, label)',
    });
  });
  it('mc_samples "auto" passes through', async () => {
    const res = await infer('regression', {
      inputs: [{ name: 'series', datatype: 'FP32', shape: [1, 4, 8], data: Array(32).fill(1) }],
      parameters: { mc_samples: 'auto', mc_max_samples: 40 },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().parameters).toMatchObject({ mc_samples: 'auto', mc_max_samples: 40 });
  });
});

describe('V2 metadata and configuration of tensor models', () => {
  it('every input and output with its datatype and shape', async () => {
    const meta = (await app.inject('/v2/models/text')).json();
    expect(meta).toMatchObject({
      name: 'text',
      inputs: [
        { name: 'input_ids', datatype: 'INT64', shape: [-1, 16] },
        { name: 'attention_mask', datatype: 'INT64', shape: [-1, 16] },
      ],
      outputs: [
        { name: 'logits', datatype: 'FP32', shape: [-1, 2] },
        { name: 'probabilities', datatype: 'FP32', shape: [-1, 2] },
        { name: 'label', datatype: 'INT32', shape: [-1] },
      ],
    });
    expect(meta.parameters).toMatchObject({
      layout: 'tensor',
      class_axis: 1,
      mc_outputs: ['probabilities', 'entropy', 'mutual_information', 'variation_ratio', 'label'],
    });
    const seg = (await app.inject('/v2/models/segmentation')).json();
    expect(seg.outputs.at(-1)).toEqual({ name: 'label', datatype: 'INT32', shape: [-1, 4, 4] });
    const config = (await app.inject('/v2/models/text/config')).json();
    expect(config.input).toEqual([
      { name: 'input_ids', data_type: 'TYPE_INT64', dims: [16] },
      { name: 'attention_mask', data_type: 'TYPE_INT64', dims: [16] },
    ]);
    expect(config.output[0]).toEqual({ name: 'logits', data_type: 'TYPE_FP32', dims: [2] });
  });
});

describe('V2 errors of tensor models: a 400 naming the input, the axis and the extent', () => {
  const cases: [string, string, unknown, number, string][] = [
    [
      'unknown input',
      'regression',
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4, 8], data: Array(32).fill(0) }] },
      400,
      'inputs[0]: unknown input "x"; the model\'s inputs are "series"',
    ],
    [
      'missing input',
      'text',
      { inputs: [text().inputs[0]] },
      400,
      'inputs: missing input "attention_mask"; the model\'s inputs are "input_ids", "attention_mask"',
    ],
    [
      'an input twice',
      'text',
      { inputs: [text().inputs[0], text().inputs[0]] },
      400,
      'inputs[1]: input "input_ids" is given twice',
    ],
    [
      'datatype',
      'text',
      { inputs: [{ ...text().inputs[0], datatype: 'FP32' }, text().inputs[1]] },
      400,
      'input "input_ids": datatype FP32, expected INT64 (as the model declares it)',
    ],
    [
      'rank',
      'segmentation',
      { inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 4, 4], data: [IMAGE] }] },
      400,
      'input "image": shape [1, 4, 4] has rank 3, expected rank 4 [-1, 1, 4, 4] (the batch first)',
    ],
    [
      'extent',
      'text',
      text([ids.slice(1), ids.slice(1)], [mask.slice(1), mask.slice(1)], [2, 15]),
      400,
      'input "input_ids": axis 1 has 15 values, expected 16',
    ],
    [
      'nested data against the shape',
      'text',
      text([ids, ids.slice(1)]),
      400,
      'input "input_ids": data[1] has 15 values on axis 1, expected 16',
    ],
    [
      'batches disagree',
      'text',
      { inputs: [text().inputs[0], { ...text().inputs[1], shape: [1, 16], data: [mask] }] },
      400,
      'input "attention_mask": axis 0 (the batch) has 1 rows, but input "input_ids" has 2; every input needs the same batch',
    ],
    [
      'an id that is not an integer',
      'text',
      text([[1.5, ...ids.slice(1)], ids]),
      400,
      'input "input_ids": element 0: expected an integer (INT64 as a JSON number), got 1.5',
    ],
    [
      'a value of the wrong kind',
      'segmentation',
      { inputs: [{ ...image(1), data: [[[['a', 1, 2, 3], ...IMAGE.slice(1)]]] }] },
      400,
      'input "image": element 0: expected a finite number, got a string',
    ],
    [
      'too many rows',
      'regression',
      { inputs: [{ name: 'series', datatype: 'FP32', shape: [51, 4, 8], data: [] }] },
      413,
      'inputs: 51 rows exceed MAX_BATCH_ROWS=50',
    ],
  ];
  it.each(cases)('%s', async (_what, model, payload, status, error) => {
    const res = await infer(model, payload);
    expect(res.statusCode).toBe(status);
    expect(res.json()).toEqual({ error });
  });
  it('too many bytes of Monte Carlo work: 413 naming the budget and its variable', async () => {
    const series = { name: 'series', datatype: 'FP32', shape: [3, 4, 8], data: Array(96).fill(0) };
    const res = await infer('regression', { inputs: [series], parameters: { mc_samples: 100 } });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({
      error:
        'rows × mc_samples × bytes per row and pass = 3 × 100 × 4096 = 1228800 bytes of Monte Carlo work exceeds the work budget MC_MAX_WORK_BYTES=1000000',
    });
    const heavy = await infer('heavy', {
      inputs: [{ ...series, shape: [1, 4, 8], data: Array(32).fill(0) }],
      parameters: { mc_samples: 1 },
    });
    expect(heavy.statusCode).toBe(413);
    expect(heavy.json()).toEqual({
      error:
        'one row of model "heavy" needs about 2097152 bytes of activations per Monte Carlo pass, over the run budget MC_MAX_RUN_BYTES=1048576',
    });
  });
});
