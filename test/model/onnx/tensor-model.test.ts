/**
 * Tensor models (issue 19 items 1, 2, 4) through the repository's entry (formats.ts loadModel): each
 * fixture loads as a TensorModel, shows its inputs and output with datatypes and shapes, predicts what
 * PyTorch's eval mode gives within 1e-4 of the output's scale at batch 8 and 1, chooses its class axis
 * (card or inferred), and refuses bad input tensors with InputErrors naming the input, the axis and the
 * extent. Tabular graphs keep OnnxModel.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../../src/model/errors.js';
import type { ClassificationStats, RegressionStats } from '../../../src/uncertainty/record.js';
import { loadModel } from '../../../src/model/formats.js';
import { DEFAULT_RUNTIME_OPTIONS, type InputTensor, type Model } from '../../../src/model/model.js';
import { graphLayout, inspectTensor } from '../../../src/model/onnx/inspect.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import { TensorModel } from '../../../src/model/onnx/tensor-model.js';
import { decodeModel, encodeModel } from '../../../src/onnx-proto/proto.js';
import { firstRows } from '../../../src/model/onnx/tensor-mc-shapes.js';
import { DIR, inputsOf, references } from './tensor-mc-fixtures.js';

const NAMES = Object.keys(references);

/** The reference inputs (rows 0 … rows − 1 of the stored batch of 8), each in its own datatype. */
const referenceInputs = (name: string, rows = 8): InputTensor[] => inputsOf(name).map((t) => firstRows(t, rows));

/** Load a fixture as the repository does (formats.ts), with an optional card. */
function loadFixture(name: string, card: object | null = null): Promise<Model> {
  const file = `${DIR}/${name}.onnx`;
  return loadModel(
    {
      name,
      file,
      card: card ? `${DIR}/${name}.json` : null,
      contents: { model: readFileSync(file), card: card ? JSON.stringify(card) : null },
    },
    DEFAULT_RUNTIME_OPTIONS,
  );
}

const models = new Map<string, Model>();

beforeAll(async () => {
  for (const name of NAMES) models.set(name, await loadFixture(name));
}, 120_000);

afterAll(async () => {
  for (const m of models.values()) await m.close();
});

const worst = (got: Float32Array, want: number[]): number => Math.max(...want.map((w, i) => Math.abs(got[i]! - w)));

describe('tensor fixtures load as tensor models and predict what PyTorch gives', () => {
  for (const name of NAMES) {
    it(`${name}: eval outputs within 1e-4 of their scale at batch 8 and batch 1`, async () => {
      const m = models.get(name)!;
      const ref = references[name]!;
      expect(m).toBeInstanceOf(TensorModel);
      expect(m.layout).toBe('tensor');
      expect(m.inputs!.map((i) => [i.name, i.datatype, i.shape])).toEqual(
        ref.inputs.map((i) => [i.name, i.datatype, [-1, ...i.shape.slice(1)]]),
      );
      expect(m.task).toBe(ref.task);
      expect(m.outputLayout!.classAxis).toBe(ref.class_axis);
      const scale = Math.max(...ref.eval.batch8.map(Math.abs));
      expect(scale).toBeGreaterThan(1); // a 1e-4 comparison of tiny outputs would prove nothing
      const out8 = await m.predictTensors!(referenceInputs(name, 8), 8);
      expect(out8.dims).toEqual(ref.outputs[0]!.shape);
      expect(out8.data.length).toBe(ref.eval.batch8.length);
      expect(worst(out8.data, ref.eval.batch8)).toBeLessThan(1e-4 * scale);
      const out1 = await m.predictTensors!(referenceInputs(name, 1), 1);
      expect(out1.dims).toEqual([1, ...ref.outputs[0]!.shape.slice(1)]);
      expect(worst(out1.data, ref.eval.batch1)).toBeLessThan(1e-4 * scale);
    });
  }

  it('a comparison that would catch a wrong output: rows 1 … 8 shifted by one row differ', async () => {
    const ref = references.conv1d_regressor!;
    const out = await models.get('conv1d_regressor')!.predictTensors!(referenceInputs('conv1d_regressor'), 8);
    expect(worst(out.data.subarray(1), ref.eval.batch8.slice(0, 7))).toBeGreaterThan(1);
  });
});

/** The fixture's bytes with its inputs' and outputs' batch fixed at 1 (torch.onnx.export without dynamic_axes). */
function fixedBatch(name: string): Uint8Array {
  const m = decodeModel(readFileSync(`${DIR}/${name}.onnx`));
  for (const v of [...m.graph!.input, ...m.graph!.output]) v.type!.tensor_type!.shape!.dim![0] = { dim_value: 1 };
  return encodeModel(m);
}

describe('a fixed batch of 1', () => {
  it('a CNN exported at batch 1 is relaxed (relax-batch.ts) and predicts PyTorch at batch 8', async () => {
    const file = `${DIR}/bayes_cnn.onnx`;
    const m = await loadModel(
      { name: 'fixed', file, card: null, contents: { model: fixedBatch('bayes_cnn'), card: null } },
      DEFAULT_RUNTIME_OPTIONS,
    );
    try {
      expect(m.loadInfo().batch_relaxed).toMatch(/fixed batch of 1 \(\[1, 1, 28, 28\]\); serving any batch size/);
      const ref = references.bayes_cnn!;
      const out = await m.predictTensors!(referenceInputs('bayes_cnn', 8), 8);
      expect(worst(out.data, ref.eval.batch8)).toBeLessThan(1e-4 * Math.max(...ref.eval.batch8.map(Math.abs)));
    } finally {
      await m.close();
    }
  });

  it('a transformer exported at batch 1 is refused, naming the node and the re-export', async () => {
    const file = `${DIR}/text_classifier_nomask.onnx`;
    await expect(
      loadModel(
        { name: 'fixed', file, card: null, contents: { model: fixedBatch('text_classifier_nomask'), card: null } },
        DEFAULT_RUNTIME_OPTIONS,
      ),
    ).rejects.toThrow(
      /Transpose\) moves the batch axis, so the graph cannot serve another batch size. Re-export with a dynamic batch/,
    );
  });
});

describe('what a tensor model shows', () => {
  it('describe(): inputs and outputs with datatypes and shapes, the class axis', () => {
    const d = models.get('text_classifier')!.describe();
    expect({
      inputs: d.inputs,
      outputs: d.outputs,
      class_axis: d.class_axis,
      task: d.task,
      labels: d.labels,
    }).toMatchInlineSnapshot(`
        {
          "class_axis": 1,
          "inputs": [
            {
              "datatype": "INT64",
              "name": "input_ids",
              "shape": [
                -1,
                16,
              ],
            },
            {
              "datatype": "INT64",
              "name": "attention_mask",
              "shape": [
                -1,
                16,
              ],
            },
          ],
          "labels": [
            "0",
            "1",
            "2",
          ],
          "outputs": [
            {
              "datatype": "FP32",
              "name": "logits",
              "shape": [
                -1,
                3,
              ],
            },
          ],
          "task": "classification",
        }
      `);
    expect(models.get('unet')!.describe().outputs).toEqual([
      { name: 'logits', datatype: 'FP32', shape: [-1, 3, 32, 32] },
    ]);
    expect(models.get('token_tagger')!.outputLayout).toEqual({ dims: [16, 5], classAxis: 2 });
    expect(models.get('conv1d_regressor')!.outputLayout).toEqual({ dims: [1], classAxis: null });
  });

  it('the model loaded line: the layout, the inputs, the class axis and why', () => {
    const { ms, path, ...info } = models.get('unet')!.loadInfo();
    expect(typeof ms).toBe('number');
    expect(path).toBe(`${DIR}/unet.onnx`);
    expect(info).toMatchObject({
      layout: 'tensor',
      inputs: 'input FP32 [-1, 1, 32, 32]',
      output: 'logits FP32 [-1, 3, 32, 32]',
      task: 'classification',
      class_axis: 1,
      class_axis_from: 'inferred',
      dropout_nodes: 1,
    });
  });

  it('a worker copy skips the self-check (no sample read, no check runs) and predicts the same', async () => {
    const main = models.get('bayes_cnn')!;
    expect(main.copyOptions!()).toMatchObject({ selfCheck: false, intraOpThreads: 1 });
    expect(main.loadInfo().checked_on).toMatch(/synthetic/);
    const file = `${DIR}/bayes_cnn.onnx`;
    const copy = await loadModel(
      { name: 'bayes_cnn', file, card: null },
      { ...DEFAULT_RUNTIME_OPTIONS, ...main.copyOptions!() },
    );
    try {
      expect(copy.loadInfo().checked_on).toBeUndefined();
      const x = referenceInputs('bayes_cnn', 3);
      expect((await copy.predictTensors!(x, 3)).data).toEqual((await main.predictTensors!(x, 3)).data);
    } finally {
      await copy.close();
    }
  });
});

describe('the class axis: from the card, else inferred', () => {
  it('the card chooses, and says so; labels from the card', async () => {
    const m = await loadFixture('unet', { class_axis: 1, labels: ['sky', 'road', 'car'] });
    try {
      expect(m.outputLayout).toEqual({ dims: [3, 32, 32], classAxis: 1 });
      expect(m.labels).toEqual(['sky', 'road', 'car']);
      expect(m.loadInfo()).toMatchObject({ class_axis: 1, class_axis_from: 'card' });
    } finally {
      await m.close();
    }
  });

  it('a card saying regression makes a per-element regression', async () => {
    const m = await loadFixture('unet', { task: 'regression' });
    try {
      expect([m.task, m.outputLayout, m.outputSize, m.outputKind]).toEqual([
        'regression',
        { dims: [3, 32, 32], classAxis: null },
        3072,
        'regression',
      ]);
    } finally {
      await m.close();
    }
  });

  it('a class axis outside the output, or labels that do not fit, are refused naming both', async () => {
    await expect(loadFixture('unet', { class_axis: 4 })).rejects.toThrow(
      'the card\'s class_axis 4 is outside output "logits" of shape [N, 3, 32, 32] (axes 1 … 3)',
    );
    await expect(loadFixture('token_tagger', { labels: ['a', 'b'] })).rejects.toThrow(
      'the card lists 2 labels but output "logits" has 5 classes',
    );
    await expect(loadFixture('conv1d_regressor', { task: 'regression', class_axis: 1 })).rejects.toThrow(
      'card field "class_axis": applies to classifiers; this card is for regression',
    );
  });
});

describe('bad input tensors are InputErrors naming the input, the axis and the extent', () => {
  const message = async (name: string, inputs: InputTensor[], rows: number): Promise<string> => {
    const err = await models.get(name)!.predictTensors!(inputs, rows).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InputError);
    return (err as Error).message;
  };
  const [ids, mask] = referenceInputs('text_classifier', 2);

  it('name, datatype, rank, extent, rows, values', async () => {
    expect(await message('text_classifier', [ids!, { ...mask!, name: 'mask' }], 2)).toMatchInlineSnapshot(
      `"unknown input "mask"; the model's inputs are input_ids, attention_mask"`,
    );
    expect(await message('text_classifier', [ids!], 2)).toMatchInlineSnapshot(
      `"input "attention_mask" is missing; the model's inputs are input_ids, attention_mask"`,
    );
    expect(await message('text_classifier', [{ ...ids!, data: new Float32Array(32) }, mask!], 2)).toMatchInlineSnapshot(
      `"input "input_ids" must be INT64 (BigInt64Array); its values are a Float32Array"`,
    );
    expect(await message('text_classifier', [{ ...ids!, dims: [2, 4, 4] }, mask!], 2)).toMatchInlineSnapshot(
      `"input "input_ids" has rank 3; rank 2 [-1, 16] expected"`,
    );
    const image = referenceInputs('bayes_cnn', 1)[0]!;
    expect(
      await message('bayes_cnn', [{ ...image, dims: [1, 1, 27, 28], data: image.data.slice(0, 27 * 28) }], 1),
    ).toMatchInlineSnapshot(`"input "input" axis 2 has extent 27; 28 expected (shape [-1, 1, 28, 28])"`);
    const [ids3, mask1] = [referenceInputs('text_classifier', 3)[0]!, referenceInputs('text_classifier', 1)[1]!];
    expect(await message('text_classifier', [ids3, mask1], 3)).toMatchInlineSnapshot(
      `"input "attention_mask" axis 0 (the batch) has 1 rows; 3 expected (every input carries the request's rows)"`,
    );
    expect(
      await message('text_classifier', [{ ...ids!, data: ids!.data.slice(0, 31) }, mask!], 2),
    ).toMatchInlineSnapshot(`"input "input_ids" holds 31 values; its dims [2, 16] need 32"`);
  });

  it('the tabular call on a tensor model: rows of a one-input image model, else named tensors', async () => {
    const image = referenceInputs('bayes_cnn', 2)[0]!;
    const viaRows = await models.get('bayes_cnn')!.predict(image.data as Float32Array, 2);
    expect(viaRows).toEqual((await models.get('bayes_cnn')!.predictTensors!([image], 2)).data);
    await expect(models.get('text_classifier')!.predict(new Float32Array(32), 2)).rejects.toThrow(
      'model "text_classifier" takes named tensors (input_ids INT64 [-1, 16]; attention_mask INT64 [-1, 16]), not rows of features',
    );
  });
});

describe('dispatch: one decision, tabular graphs unchanged', () => {
  it('mobilenet_flat ([N, 27648] → [N, 10]) is tabular; the image mobilenet is a tensor graph', () => {
    expect(graphLayout(inspectTensor(readFileSync(`${DIR}/mobilenet_flat.onnx`)).info)).toBe('tabular');
    expect(graphLayout(inspectTensor(readFileSync(`${DIR}/mobilenet.onnx`)).info)).toBe('tensor');
  });

  it('a tabular model loads as OnnxModel through the same entry', async () => {
    const file = 'models/diabetes/model.onnx';
    const m = await loadModel({ name: 'diabetes', file, card: 'models/diabetes/model.json' }, DEFAULT_RUNTIME_OPTIONS);
    try {
      expect(m).toBeInstanceOf(OnnxModel);
      expect(m.layout ?? 'tabular').toBe('tabular');
      // the same model as the tabular loader alone makes
      const direct = await OnnxModel.load('diabetes', file, 'models/diabetes/model.json');
      try {
        expect(m.describe()).toEqual(direct.describe());
        const x = Float32Array.from({ length: 20 }, (_, i) => Math.sin(i) / 10);
        expect(await m.predict(x, 2)).toEqual(await direct.predict(x, 2));
      } finally {
        await direct.close();
      }
    } finally {
      await m.close();
    }
  });
});

/** The model's Monte Carlo (tensor-mc.ts, through tensor-sampler.ts createSampler). */
describe('Monte Carlo through the model (tensor-mc.ts, wired by tensor-sampler.ts)', () => {
  it('conv1d_regressor: mean and std per row agree with PyTorch MC within sampling error; same seed, same answer', async () => {
    const m = models.get('conv1d_regressor')!;
    expect(m.mcAvailable).toBe(true);
    const mc = (references.conv1d_regressor as unknown as { mc: { passes: number; mean: number[]; std: number[] } }).mc;
    const T = 2000;
    const opts = { samples: T, interval: 0.9, seed: 7 };
    const r = await m.sampleTensors!(referenceInputs('conv1d_regressor'), 8, opts);
    expect(r.outputDims).toEqual([8, 1]);
    const stats = r.stats as RegressionStats;
    for (let i = 0; i < 8; i++) {
      const sd = mc.std[i]!;
      expect(Math.abs(stats.mean[i]! - mc.mean[i]!)).toBeLessThan(5 * sd * Math.sqrt(1 / T + 1 / mc.passes));
      expect(Math.abs(stats.epistemicStd[i]! - sd)).toBeLessThan(5 * sd * Math.sqrt(1 / (2 * T) + 1 / (2 * mc.passes)));
    }
    const again = await m.sampleTensors!(referenceInputs('conv1d_regressor'), 8, opts);
    expect((again.stats as RegressionStats).mean).toEqual(stats.mean);
  });

  it('token_tagger: per-token probabilities (8 rows × 16 tokens records of 5 classes)', async () => {
    const r = await models.get('token_tagger')!.sampleTensors!(referenceInputs('token_tagger', 2), 2, {
      samples: 20,
      interval: 0.9,
      seed: 1,
    });
    const stats = r.stats as ClassificationStats;
    expect([r.outputDims, stats.rows, stats.classes]).toEqual([[2, 16, 5], 32, 5]);
    for (let p = 0; p < 32; p++) {
      const sum = stats.probabilities.slice(p * 5, p * 5 + 5).reduce((a, b) => a + b, 0);
      expect(sum).toBeCloseTo(1, 6);
    }
  });

  it('bad tensors are refused before any sampling, as in predict', async () => {
    const [ids] = referenceInputs('text_classifier', 1);
    await expect(
      models.get('text_classifier')!.sampleTensors!([ids!], 1, { samples: 4, interval: 0.9 }),
    ).rejects.toThrow('input "attention_mask" is missing; the model\'s inputs are input_ids, attention_mask');
  });
});
