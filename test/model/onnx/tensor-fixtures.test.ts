/**
 * The tensor fixtures of issue 19 (test/fixtures/tensor/make_tensor_fixtures.py: six PyTorch models exported
 * by scripts/export_torch.py with their dropouts live) are what the references say: with every Dropout
 * switched off (made an Identity), onnxruntime gives PyTorch's eval outputs for the stored inputs within
 * 1e-4 of the output's scale, and each file keeps as many Dropout nodes as the references count (the
 * attention dropouts of the transformers included). The loader's own tests (tensor-model, tensor-load,
 * tensor-mc*) are measured against these fixtures.
 */
import { readFileSync } from 'node:fs';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { decodeModel, encodeModel } from '../../../src/onnx-proto/proto.js';

const DIR = 'test/fixtures/tensor';

interface Reference {
  inputs: { name: string; datatype: 'FP32' | 'INT64'; shape: number[]; offset: number }[];
  outputs: { name: string; shape: number[] }[];
  dropout_nodes: number;
  eval: { batch8: number[]; batch1: number[] };
}

const references = JSON.parse(readFileSync(`${DIR}/references.json`, 'utf8')).fixtures as Record<string, Reference>;

/** The file with every Dropout an Identity of its data input (its mask output is never read). */
function withoutDropout(name: string): { bytes: Uint8Array; dropouts: number } {
  const model = decodeModel(readFileSync(`${DIR}/${name}.onnx`));
  let dropouts = 0;
  for (const node of model.graph!.node) {
    if (node.op_type !== 'Dropout') continue;
    dropouts++;
    Object.assign(node, { op_type: 'Identity', input: [node.input[0]!], output: [node.output[0]!], attribute: [] });
  }
  return { bytes: encodeModel(model), dropouts };
}

/** The reference inputs, each in its own datatype, from NAME.input.bin. */
function feeds(name: string, ref: Reference): Record<string, ort.Tensor> {
  const bin = readFileSync(`${DIR}/${name}.input.bin`);
  const out: Record<string, ort.Tensor> = {};
  for (const input of ref.inputs) {
    const count = input.shape.reduce((a, b) => a * b, 1);
    const width = input.datatype === 'FP32' ? 4 : 8;
    const bytes = bin.buffer.slice(bin.byteOffset + input.offset, bin.byteOffset + input.offset + count * width);
    out[input.name] =
      input.datatype === 'FP32'
        ? new ort.Tensor('float32', new Float32Array(bytes), input.shape)
        : new ort.Tensor('int64', new BigInt64Array(bytes), input.shape);
  }
  return out;
}

describe('tensor fixtures: onnxruntime with dropout off reproduces PyTorch eval', () => {
  for (const [name, ref] of Object.entries(references)) {
    it(`${name}: ${ref.dropout_nodes} Dropout nodes, eval outputs within 1e-4 of their scale at batch 8`, async () => {
      const { bytes, dropouts } = withoutDropout(name);
      expect(dropouts).toBe(ref.dropout_nodes);
      const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
      try {
        const got = (await session.run(feeds(name, ref)))[ref.outputs[0]!.name]!;
        expect(Array.from(got.dims)).toEqual(ref.outputs[0]!.shape);
        const want = ref.eval.batch8;
        const scale = Math.max(...want.map(Math.abs));
        let worst = 0;
        want.forEach((w, i) => {
          worst = Math.max(worst, Math.abs((got.data as Float32Array)[i]! - w));
        });
        expect(worst).toBeLessThan(1e-4 * scale);
      } finally {
        await session.release();
      }
    });
  }
});
