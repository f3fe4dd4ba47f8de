/**
 * The tensor fixtures (test/fixtures/tensor, make_tensor_fixtures.py) as the tensor sampler takes them:
 * the decoded model, its Dropouts, input specs and tensors, output layout and the PyTorch references.
 */
import { readFileSync } from 'node:fs';
import { type Model as OnnxProto, decodeModel } from '../../../src/onnx-proto/proto.js';
import { DEFAULT_UNCERTAINTY } from '../../../src/model/uncertainty.js';
import type { InputTensor, TensorSpec } from '../../../src/model/model.js';
import { constants, isDropout } from '../../../src/model/onnx/graph-query.js';
import type { DropoutInfo } from '../../../src/model/onnx/inspect.js';
import { type TensorSamplerInit, createTensorSampler, type TensorSampler } from '../../../src/model/onnx/tensor-mc.js';

export const DIR = 'test/fixtures/tensor';

export interface Reference {
  inputs: { name: string; datatype: 'FP32' | 'INT64'; shape: number[]; offset: number }[];
  outputs: { name: string; shape: number[] }[];
  task: 'classification' | 'regression';
  class_axis: number | null;
  dropout_nodes: number;
  eval: { batch8: number[]; batch1: number[] };
  mc: {
    rows: number;
    passes: number;
    chunk: number;
    probabilities?: number[];
    probabilities_std?: number[];
    entropy?: number[];
    mutual_information?: number[];
    entropy_sd?: number[];
    mutual_information_sd?: number[];
    mean?: number[];
    std?: number[];
  };
}

export const references = JSON.parse(readFileSync(`${DIR}/references.json`, 'utf8')).fixtures as Record<
  string,
  Reference
>;

/** Every Dropout of a PyTorch export with its rate (an attribute, or a constant `ratio` input). */
export function dropoutsOf(model: OnnxProto): DropoutInfo[] {
  const consts = constants(model.graph!);
  return model.graph!.node.filter(isDropout).map((n, i) => {
    const attr = n.attribute?.find((a) => a.name === 'ratio');
    const ratio = attr ? (attr.f ?? 0.5) : n.input[1] ? consts.get(n.input[1])![0]! : 0.5;
    return { name: n.name || `Dropout_${i}`, input: n.input[0]!, ratio: Number(Math.fround(ratio).toPrecision(7)) };
  });
}

/** The reference inputs (8 rows) from NAME.input.bin, each in its datatype. */
export function inputsOf(name: string, ref: Reference = references[name]!): InputTensor[] {
  const bin = readFileSync(`${DIR}/${name}.input.bin`);
  return ref.inputs.map((input) => {
    const count = input.shape.reduce((a, b) => a * b, 1);
    const width = input.datatype === 'FP32' ? 4 : 8;
    const bytes = bin.buffer.slice(bin.byteOffset + input.offset, bin.byteOffset + input.offset + count * width);
    const data = input.datatype === 'FP32' ? new Float32Array(bytes) : new BigInt64Array(bytes);
    return { name: input.name, dims: input.shape, data };
  });
}

export function specsOf(ref: Reference): TensorSpec[] {
  return ref.inputs.map((i) => ({ name: i.name, datatype: i.datatype, shape: [-1, ...i.shape.slice(1)] }));
}

/** The sampler's init for a fixture (logits out; budget and shared prefix as given). */
export function samplerInit(name: string, over: Partial<TensorSamplerInit['runtime']> = {}): TensorSamplerInit {
  const ref = references[name]!;
  const model = decodeModel(readFileSync(`${DIR}/${name}.onnx`));
  return {
    model,
    dropouts: dropoutsOf(model),
    controlInputs: [],
    inputs: specsOf(ref),
    outputName: ref.outputs[0]!.name,
    layout: { dims: ref.outputs[0]!.shape.slice(1), classAxis: ref.class_axis },
    task: ref.task,
    outputKind: ref.task === 'classification' ? 'logits' : 'regression',
    uncertainty: DEFAULT_UNCERTAINTY,
    runtime: { intraOpThreads: 1, sharedPrefix: true, ...over },
    probeInputs: inputsOf(name, ref),
  };
}

export const samplerOf = (name: string, over: Partial<TensorSamplerInit['runtime']> = {}): Promise<TensorSampler> =>
  createTensorSampler(samplerInit(name, over));
