/**
 * What scripts/export_torch.py promises (issue 19 item 7), checked on the files it wrote: the tensor fixtures
 * (test/fixtures/tensor/make_tensor_fixtures.py exports each through it). No Python here: the ONNX files are
 * read with our own protobuf reader. Per fixture: its metadata record (`dropout_serve.export`: PRESERVE
 * export, state unchanged, dynamic batch, as many Dropout nodes as dropout modules, the feature dropouts it
 * rewrote); a symbolic batch axis on every input and output; every Dropout live (a constant
 * training_mode true) with its module's rate; BatchNorm exported in inference mode; nn.Dropout2d as
 * x * Dropout(ones[N, C, 1, 1]); the transformers' attention dropouts (their eval fast path would drop them).
 * That the BatchNorm statistics in the files are PyTorch's own is tensor-fixtures.test.ts: onnxruntime with
 * dropout off gives PyTorch's eval outputs, computed before the export.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeModel, type Model, type Node, tensorValues, toNumber } from '../../src/onnx-proto/proto.js';

const DIR = 'test/fixtures/tensor';

interface Reference {
  inputs: { name: string; shape: number[] }[];
  outputs: { name: string; shape: number[] }[];
  dropout_nodes: number;
}
const references = JSON.parse(readFileSync(`${DIR}/references.json`, 'utf8')).fixtures as Record<string, Reference>;

/** The dropout rates of each fixture's modules, in graph order, from make_tensor_fixtures.py's architectures. */
const TRANSFORMER = Array<number>(9).fill(0.1); // embedding dropout + 2 layers × (attention, dropout1, dropout, dropout2)
const RATES: Record<string, { rates: number[]; feature: number; batchNorm: boolean }> = {
  bayes_cnn: { rates: [0.25, 0.25, 0.5], feature: 0, batchNorm: false },
  mobilenet: { rates: [0.2], feature: 0, batchNorm: true }, // torchvision's classifier Dropout(p=0.2)
  unet: { rates: [0.5], feature: 1, batchNorm: true }, // nn.Dropout2d(0.5), rewritten
  text_classifier: { rates: TRANSFORMER, feature: 0, batchNorm: false },
  text_classifier_nomask: { rates: TRANSFORMER, feature: 0, batchNorm: false },
  token_tagger: { rates: TRANSFORMER, feature: 0, batchNorm: false },
  conv1d_regressor: { rates: [0.2, 0.2], feature: 0, batchNorm: false },
};

const load = (name: string): Model => decodeModel(readFileSync(`${DIR}/${name}.onnx`));

/** The value of a Constant node's output (null when `name` is not a Constant's output). */
function constantValue(model: Model, name: string): number[] | null {
  const node = model.graph!.node.find((n) => n.op_type === 'Constant' && n.output[0] === name);
  const tensor = node?.attribute?.find((a) => a.name === 'value')?.t;
  return tensor ? tensorValues(tensor) : null;
}

const producer = (model: Model, name: string): Node | undefined =>
  model.graph!.node.find((n) => n.output.includes(name));
const consumers = (model: Model, name: string): Node[] => model.graph!.node.filter((n) => n.input.includes(name));
const dropouts = (model: Model): Node[] => model.graph!.node.filter((n) => n.op_type === 'Dropout');

describe('scripts/export_torch.py on the tensor fixtures', () => {
  it('covers every fixture the references list', () => {
    expect(Object.keys(RATES).sort()).toEqual(Object.keys(references).sort());
  });

  for (const [name, want] of Object.entries(RATES)) {
    describe(name, () => {
      const model = load(name);
      const ref = references[name]!;

      it('records the export in its metadata: PRESERVE, state unchanged, one Dropout node per dropout module', () => {
        const entry = model.metadata_props?.find((p) => p.key === 'dropout_serve.export');
        const record = JSON.parse(entry?.value ?? '{}') as Record<string, unknown>;
        expect(record).toMatchObject({
          tool: 'scripts/export_torch.py',
          training: 'PRESERVE',
          state_unchanged: true,
          dynamic_batch: true,
          dropout_modules: want.rates.length,
          dropout_nodes: want.rates.length,
          feature_dropouts: want.feature,
        });
        expect(dropouts(model)).toHaveLength(want.rates.length);
        expect(ref.dropout_nodes).toBe(want.rates.length);
      });

      it('has a symbolic batch axis on every input and output, the other axes as the references', () => {
        const graph = model.graph!;
        const initializers = new Set((graph.initializer ?? []).map((t) => t.name));
        const declared = [...graph.input.filter((i) => !initializers.has(i.name)), ...graph.output];
        const expected = [...ref.inputs, ...ref.outputs];
        expect(declared.map((v) => v.name)).toEqual(expected.map((v) => v.name));
        for (const [k, value] of declared.entries()) {
          const dims = value.type?.tensor_type?.shape?.dim ?? [];
          expect(dims[0]?.dim_param, value.name).toBe('batch');
          expect(dims.slice(1).map((d) => toNumber(d.dim_value))).toEqual(expected[k]!.shape.slice(1));
        }
      });

      it("keeps every Dropout live (constant training_mode true) at its module's rate", () => {
        const nodes = dropouts(model);
        expect(nodes.map((n) => constantValue(model, n.input[2] ?? ''))).toEqual(nodes.map(() => [1]));
        const rates = nodes.map((n) => constantValue(model, n.input[1] ?? '')?.[0]);
        expect(rates.map((r) => Math.fround(r ?? Number.NaN))).toEqual(want.rates.map(Math.fround));
      });

      it('exports BatchNorm in inference mode (its running statistics are read, never updated)', () => {
        const norms = model.graph!.node.filter((n) => n.op_type === 'BatchNormalization');
        expect(norms.length > 0).toBe(want.batchNorm);
        for (const n of norms) {
          expect(n.output).toHaveLength(1);
          expect(toNumber(n.attribute?.find((a) => a.name === 'training_mode')?.i ?? 0)).toBe(0);
        }
      });
    });
  }

  it('unet: nn.Dropout2d is exported as x * Dropout(ones[N, C, 1, 1]): one mask value per row and channel', () => {
    const model = load('unet');
    const [drop] = dropouts(model);
    const ones = producer(model, drop!.input[0]!);
    expect(ones?.op_type).toBe('ConstantOfShape');
    expect(tensorValues(ones!.attribute!.find((a) => a.name === 'value')!.t!)).toEqual([1]);
    // its shape: Concat of Unsqueeze(Gather(Shape(x), 0)), Unsqueeze(Gather(Shape(x), 1)) and two constant 1s
    const shape = producer(model, ones!.input[0]!);
    expect(shape?.op_type).toBe('Concat');
    const parts = shape!.input.map((i) => {
      const inner = producer(model, producer(model, i)!.input[0]!)!;
      if (inner.op_type === 'Constant') return constantValue(model, inner.output[0]!)![0];
      const shapeOf = producer(model, inner.input[0]!)!;
      return `${inner.op_type}(${shapeOf.op_type}(${shapeOf.input[0]}), ${constantValue(model, inner.input[1]!)})`;
    });
    const mul = consumers(model, drop!.output[0]!);
    expect(mul.map((n) => n.op_type)).toEqual(['Mul']);
    // the mask multiplies the activations whose [N, C] it has
    const x = mul[0]!.input.find((i) => i !== drop!.output[0]);
    expect(parts).toEqual([`Gather(Shape(${x}), 0)`, `Gather(Shape(${x}), 1)`, 1, 1]);
  });

  it('transformers: the attention dropouts are exported (the eval fast path applies none)', () => {
    for (const name of ['text_classifier', 'text_classifier_nomask', 'token_tagger']) {
      const model = load(name);
      const attention = dropouts(model).filter((n) => producer(model, n.input[0]!)?.op_type === 'Softmax');
      expect(attention, name).toHaveLength(2);
    }
  });
});
