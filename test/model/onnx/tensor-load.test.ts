/**
 * Loading tensor models (issue 19 items 1, 2, 4) from small graphs: every datatype fed to onnxruntime in
 * its own type, the graphs the tabular loader used to refuse, what is still refused (with the reason),
 * the load-time check that refuses a graph mixing rows, and the check's inputs (a sample beside the
 * model, else bounded smooth values and small ids).
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError, ModelLoadError, NoDropoutError } from '../../../src/model/errors.js';
import { loadModel } from '../../../src/model/formats.js';
import { DEFAULT_RUNTIME_OPTIONS, type Model, type TensorSpec } from '../../../src/model/model.js';
import { AttributeType, DataType } from '../../../src/onnx-proto/proto.js';
import { syntheticInput } from '../../../src/model/onnx/tensor-check-input.js';
import { toHalfBits } from '../../../src/model/onnx/tensor-datatypes.js';
import { model, vi } from '../../helpers/onnx.js';

const dir = mkdtempSync(join(tmpdir(), 'tensor-load-'));
let fileNo = 0;

/** Write `bytes` as a model file of its own folder-less name and load it through formats.ts. */
async function load(bytes: Uint8Array, name = `m${fileNo++}`): Promise<Model> {
  const file = join(dir, `${name}.onnx`);
  writeFileSync(file, bytes);
  return loadModel({ name, file, card: null }, DEFAULT_RUNTIME_OPTIONS);
}

async function loadError(bytes: Uint8Array): Promise<string> {
  const err = await load(bytes).then(
    (m) => m.close().then(() => null),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelLoadError);
  return (err as Error).message.replace(/^.*?\.onnx: /, '');
}

const cast = (x: string, y: string) => ({
  op_type: 'Cast',
  input: [x],
  output: [y],
  attribute: [{ name: 'to', type: AttributeType.INT, i: DataType.FLOAT }],
});

/** One [batch, 3] input of each datatype, each cast to float32 and summed. */
function everyDatatype(): Uint8Array {
  const inputs = [
    ['h', 10],
    ['d', 11],
    ['i', 6],
    ['b', 9],
    ['u', 2],
    ['l', DataType.INT64],
    ['f', DataType.FLOAT],
  ] as const;
  return model({
    nodes: [
      ...inputs.map(([n]) => cast(n, `${n}_f`)),
      { op_type: 'Sum', input: inputs.map(([n]) => `${n}_f`), output: ['y'] },
    ],
    inits: [],
    inputs: inputs.map(([n, t]) => vi(n, t, ['batch', 3])),
    outputs: [vi('y', DataType.FLOAT, ['batch', 3])],
  });
}

describe('inputs of every datatype, fed in their own type', () => {
  it('FP16, FP64, INT32, BOOL, UINT8, INT64 and FP32 inputs: the sum of their values', async () => {
    const m = await load(everyDatatype());
    try {
      expect(m.inputs!.map((s) => `${s.name}:${s.datatype}`)).toEqual([
        'h:FP16',
        'd:FP64',
        'i:INT32',
        'b:BOOL',
        'u:UINT8',
        'l:INT64',
        'f:FP32',
      ]);
      const out = await m.predictTensors!(
        [
          { name: 'h', dims: [1, 3], data: Uint16Array.from([1.5, -2, 0.25], toHalfBits) },
          { name: 'd', dims: [1, 3], data: Float64Array.from([0.125, 1e3, 3]) },
          { name: 'i', dims: [1, 3], data: Int32Array.from([-7, 2, 40]) },
          { name: 'b', dims: [1, 3], data: Uint8Array.from([1, 0, 1]) },
          { name: 'u', dims: [1, 3], data: Uint8Array.from([200, 3, 0]) },
          { name: 'l', dims: [1, 3], data: BigInt64Array.from([10n, -20n, 30n]) },
          { name: 'f', dims: [1, 3], data: Float32Array.from([0.5, 0.5, 0.5]) },
        ],
        1,
      );
      expect(out.dims).toEqual([1, 3]);
      expect(Array.from(out.data)).toEqual([
        1.5 + 0.125 - 7 + 1 + 200 + 10 + 0.5,
        -2 + 1e3 + 2 + 3 - 20 + 0.5,
        0.25 + 3 + 40 + 1 + 30 + 0.5,
      ]);
    } finally {
      await m.close();
    }
  });

  it('half bits: exact values, rounding to nearest even, overflow and subnormals', () => {
    expect([1, -2, 0.5, 65504, 1e6, 2 ** -24, 0].map(toHalfBits)).toEqual([
      0x3c00, 0xc000, 0x3800, 0x7bff, 0x7c00, 0x0001, 0,
    ]);
    expect(toHalfBits(1 + 2 ** -11)).toBe(0x3c00); // halfway: to even
    expect(toHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });
});

describe('graphs the tabular loader refused now load as tensor models', () => {
  it('two float inputs: predict is their sum; no dropout, so no Monte Carlo', async () => {
    const m = await load(
      model({
        nodes: [{ op_type: 'Add', input: ['x', 'z'], output: ['y'] }],
        inits: [],
        inputs: [vi('x', DataType.FLOAT, ['batch', 2]), vi('z', DataType.FLOAT, ['batch', 2])],
        outputs: [vi('y', DataType.FLOAT, ['batch', 2])],
      }),
    );
    try {
      expect([m.layout, m.mcAvailable, m.task]).toEqual(['tensor', false, 'regression']);
      const x = { name: 'x', dims: [2, 2], data: Float32Array.from([1, 2, 3, 4]) };
      const z = { name: 'z', dims: [2, 2], data: Float32Array.from([10, 20, 30, 40]) };
      expect(Array.from((await m.predictTensors!([z, x], 2)).data)).toEqual([11, 22, 33, 44]);
      await expect(m.sampleTensors!([x, z], 2, { samples: 3, interval: 0.9 })).rejects.toThrow(NoDropoutError);
    } finally {
      await m.close();
    }
  });

  it('a rank-3 input exported at a fixed batch of 1 is relaxed as the tabular path does', async () => {
    const m = await load(
      model({
        nodes: [{ op_type: 'Relu', input: ['x'], output: ['y'] }],
        inits: [],
        inputs: [vi('x', DataType.FLOAT, [1, 2, 3])],
        outputs: [vi('y', DataType.FLOAT, [1, 2, 3])],
      }),
    );
    try {
      expect(m.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [-1, 2, 3] }]);
      expect(m.loadInfo().batch_relaxed).toMatch(/fixed batch of 1/);
      const out = await m.predictTensors!(
        [{ name: 'x', dims: [2, 2, 3], data: Float32Array.from([-1, 2, -3, 4, -5, 6, 7, -8, 9, -10, 11, -12]) }],
        2,
      );
      expect([out.dims, Array.from(out.data)]).toEqual([
        [2, 2, 3],
        [0, 2, 0, 4, 0, 6, 7, 0, 9, 0, 11, 0],
      ]);
    } finally {
      await m.close();
    }
  });
});

describe('without a card: the task from the output name', () => {
  it('an output named like probabilities is a classifier reading probabilities, its class axis the last of [N, L, K]', async () => {
    const m = await load(
      model({
        nodes: [
          {
            op_type: 'Softmax',
            input: ['x'],
            output: ['class_probabilities'],
            attribute: [{ name: 'axis', type: AttributeType.INT, i: -1 }],
          },
        ],
        inits: [],
        inputs: [vi('x', DataType.FLOAT, ['batch', 2, 4])],
        outputs: [vi('class_probabilities', DataType.FLOAT, ['batch', 2, 4])],
      }),
    );
    try {
      expect([m.task, m.outputKind, m.outputLayout, m.labels]).toEqual([
        'classification',
        'probabilities',
        { dims: [2, 4], classAxis: 2 },
        ['0', '1', '2', '3'],
      ]);
      expect(m.loadInfo()).toMatchObject({ class_axis: 2, class_axis_from: 'inferred' });
    } finally {
      await m.close();
    }
  });
});

describe('free dims', () => {
  it('any extent; inputs sharing a free dim by name must agree on it (InputError naming both)', async () => {
    const m = await load(
      model({
        nodes: [{ op_type: 'Add', input: ['a', 'b'], output: ['y'] }],
        inits: [],
        inputs: [vi('a', DataType.FLOAT, ['batch', 'seq']), vi('b', DataType.FLOAT, ['batch', 'seq'])],
        outputs: [vi('y', DataType.FLOAT, ['batch', 'seq'])],
      }),
    );
    try {
      expect([m.inputs![1]!.shape, m.outputLayout!.dims]).toEqual([[-1, -1], [-1]]);
      const t = (name: string, n: number) => ({ name, dims: [1, n], data: new Float32Array(n).fill(n) });
      const out = await m.predictTensors!([t('a', 5), t('b', 5)], 1);
      expect([out.dims, Array.from(out.data)]).toEqual([
        [1, 5],
        [10, 10, 10, 10, 10],
      ]);
      await expect(m.predictTensors!([t('a', 3), t('b', 4)], 1)).rejects.toThrow(
        'input "b" axis 1 has extent 4; 3 expected (the free dim "seq" of input "a" axis 1)',
      );
    } finally {
      await m.close();
    }
  });
});

describe('free dims the file does not tie together', () => {
  it('a run onnxruntime refuses on shapes that passed the checks is a 400 (InputError), not a 500', async () => {
    const m = await load(
      model({
        nodes: [{ op_type: 'Add', input: ['a', 'b'], output: ['y'] }],
        inits: [],
        inputs: [vi('a', DataType.FLOAT, ['batch', 's1']), vi('b', DataType.FLOAT, ['batch', 's2'])],
        outputs: [vi('y', DataType.FLOAT, ['batch', 's1'])],
      }),
    );
    try {
      const t = (name: string, n: number) => ({ name, dims: [1, n], data: new Float32Array(n) });
      const err = await m.predictTensors!([t('a', 3), t('b', 4)], 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toMatch(/^the model cannot run these input shapes: /);
    } finally {
      await m.close();
    }
  });
});

describe('what a tensor model still refuses, and why', () => {
  it('a non-float output, a fixed batch on several inputs, a string input', async () => {
    expect(
      await loadError(
        model({
          nodes: [{ op_type: 'Identity', input: ['x'], output: ['y'] }],
          inits: [],
          inputs: [vi('x', DataType.INT64, ['batch', 2])],
          outputs: [vi('y', DataType.INT64, ['batch', 2])],
        }),
      ),
    ).toMatchInlineSnapshot(`"output "y" is not float32; a tensor model's output must be float32"`);
    expect(
      await loadError(
        model({
          nodes: [{ op_type: 'Add', input: ['x', 'z'], output: ['y'] }],
          inits: [],
          inputs: [vi('x', DataType.FLOAT, [1, 2]), vi('z', DataType.FLOAT, [1, 2])],
          outputs: [vi('y', DataType.FLOAT, [1, 2])],
        }),
      ),
    ).toMatchInlineSnapshot(
      `"input "x" has a fixed batch of 1; export it with a dynamic batch axis (torch.onnx.export dynamic_axes={"x": {0: "batch"}})"`,
    );
    expect(
      await loadError(
        model({
          nodes: [{ op_type: 'Identity', input: ['x'], output: ['y'] }],
          inits: [],
          inputs: [vi('x', 8, ['batch', 2]), vi('z', DataType.FLOAT, ['batch', 2])],
          outputs: [vi('y', 8, ['batch', 2])],
        }),
      ),
    ).toMatchInlineSnapshot(
      `"input "x" is string; a tensor input must be one of FP32, FP16, FP64, INT64, INT32, BOOL, UINT8"`,
    );
  });

  it('the load-time check refuses a graph whose eval rows depend on each other (a batch mean)', async () => {
    const mixes = model({
      nodes: [
        {
          op_type: 'ReduceMean',
          input: ['x'],
          output: ['m'],
          attribute: [
            { name: 'axes', type: AttributeType.INTS, ints: [0] },
            { name: 'keepdims', type: AttributeType.INT, i: 1 },
          ],
        },
        { op_type: 'Sub', input: ['x', 'm'], output: ['y'] },
      ],
      inits: [],
      inputs: [vi('x', DataType.FLOAT, ['batch', 2, 2])],
      outputs: [vi('y', DataType.FLOAT, ['batch', 2, 2])],
    });
    expect(await loadError(mixes)).toMatch(
      /^self-check: the eval graph gives -?[\d.e-]+ for element 0 of row 0 in a batch of 2 but 0 for that row alone: the graph mixes rows, so it cannot serve batches$/,
    );
  });
});

describe("the check's inputs", () => {
  const specs: TensorSpec[] = [
    { name: 'image', datatype: 'FP32', shape: [-1, 3, 16, 16] },
    { name: 'ids', datatype: 'INT64', shape: [-1, -1] },
    { name: 'flags', datatype: 'BOOL', shape: [-1, 4] },
  ];

  it('synthetic: bounded smooth floats, ids 0 and 1, free dims of 8, row i the same for any row count', () => {
    const [image, ids, flags] = syntheticInput(specs)(5);
    expect([image!.dims, ids!.dims, flags!.dims]).toEqual([
      [5, 3, 16, 16],
      [5, 8],
      [5, 4],
    ]);
    const px = image!.data as Float32Array;
    expect(px.every((v) => v >= -1 && v <= 1)).toBe(true);
    // neighbouring elements are close (white noise in [−1, 1] would differ by 2/3 on average)
    let step = 0;
    for (let j = 1; j < 768; j++) step += Math.abs(px[j]! - px[j - 1]!);
    expect(step / 767).toBeLessThan(0.05);
    expect(new Set(Array.from(ids!.data as BigInt64Array, Number))).toEqual(new Set([0, 1]));
    expect(flags!.data).toBeInstanceOf(Uint8Array);
    const [image2] = syntheticInput(specs)(2);
    expect(image2!.data).toEqual(px.slice(0, 2 * 768));
  });

  it('a sample beside the model: .json by input name, or .bin in input order; a wrong one is refused', async () => {
    const src = 'test/fixtures/tensor/conv1d_regressor.onnx';
    const row = (k: number) =>
      Array.from({ length: 4 }, (_, c) => Array.from({ length: 32 }, (_, t) => Math.sin(t / 5 + c + k)));
    copyFileSync(src, join(dir, 'conv.onnx'));
    writeFileSync(join(dir, 'conv.sample_input.json'), JSON.stringify({ input: [row(0), row(1)] }));
    const m = await loadModel({ name: 'conv', file: join(dir, 'conv.onnx'), card: null }, DEFAULT_RUNTIME_OPTIONS);
    expect(m.loadInfo().checked_on).toBe(join(dir, 'conv.sample_input.json'));
    await m.close();
    copyFileSync(src, join(dir, 'conv2.onnx'));
    writeFileSync(join(dir, 'conv2.sample_input.json'), JSON.stringify({ input: [row(0).slice(0, 3)] }));
    await expect(
      loadModel({ name: 'conv2', file: join(dir, 'conv2.onnx'), card: null }, DEFAULT_RUNTIME_OPTIONS),
    ).rejects.toThrow(
      'conv2.sample_input.json: input "input" must be a non-empty nested array of rows of shape [-1, 4, 32]',
    );
    copyFileSync('test/fixtures/tensor/text_classifier.onnx', join(dir, 'text.onnx'));
    copyFileSync('test/fixtures/tensor/text_classifier.input.bin', join(dir, 'text.sample_input.bin'));
    const t = await loadModel({ name: 'text', file: join(dir, 'text.onnx'), card: null }, DEFAULT_RUNTIME_OPTIONS);
    expect(t.loadInfo().checked_on).toBe(join(dir, 'text.sample_input.bin'));
    await t.close();
    writeFileSync(
      join(dir, 'text.sample_input.bin'),
      readFileSync('test/fixtures/tensor/text_classifier.input.bin').subarray(0, 100),
    );
    await expect(
      loadModel({ name: 'text', file: join(dir, 'text.onnx'), card: null }, DEFAULT_RUNTIME_OPTIONS),
    ).rejects.toThrow('text.sample_input.bin: 100 bytes is not a whole number of rows of 256 bytes');
  });
});
