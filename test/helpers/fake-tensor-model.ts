/**
 * Tensor models without a runtime (issue 19), for the protocols and the data plane: closed-form eval
 * outputs and a deterministic sampler whose samples feed the real accumulators (src/uncertainty), so
 * the statistics are the served ones. Sample t of every element is the eval output × (0.5 if t is
 * even, else 1.5): for an even T the regression mean is the eval output and its epistemic std is
 * 0.5·|output|·√(T/(T−1)).
 * - segmentation: `image` FP32 [N,1,4,4] → `logits` FP32 [N,3,4,4], logit k = (k − 1)·x (class axis 1);
 * - text: `input_ids` and `attention_mask` INT64 [N,16] → `logits` [N,2]: logit 1 = Σ ids·mask / 100,
 *   logit 0 = −logit 1;
 * - regression: `series` FP32 [N,4,8] → `y` [N,1], the mean of the row;
 * - mixed: one [N,2] input of each other datatype (`half` FP16, `double` FP64, `int` INT32, `flag` BOOL,
 *   `byte` UINT8) → `y` [N,1], the sum of the row's values (FP16 decoded from its bits).
 */
import type { InputTensor, McOptions, Model, TensorMcResult, TensorSpec } from '../../src/model/model.js';
import { ClassificationAccumulator, RegressionAccumulator } from '../../src/uncertainty/accumulators.js';

export type TensorKind = 'segmentation' | 'text' | 'regression' | 'mixed';

export interface FakeTensorModel extends Model {
  /** The inputs of every predictTensors/sampleTensors call, as they arrived. */
  calls: { inputs: readonly InputTensor[]; rows: number }[];
}

interface KindSpec {
  task: 'classification' | 'regression';
  inputs: TensorSpec[];
  output: TensorSpec;
  classAxis: number | null;
  labels: string[];
  /** Eval output of one row: its inputs' values at row n. */
  row(inputs: readonly InputTensor[], n: number): number[];
}

const num = (v: number | bigint): number => Number(v);

/** The value of IEEE half bits. */
function half(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const v = exp === 0 ? (h & 0x3ff) * 2 ** -24 : (1 + (h & 0x3ff) / 1024) * 2 ** (exp - 15);
  return h & 0x8000 ? -v : v;
}

/** Values of row n of a tensor. */
function rowOf(t: InputTensor, n: number): number[] {
  const per = t.dims.slice(1).reduce((a, b) => a * b, 1);
  return Array.from(t.data.subarray(n * per, (n + 1) * per) as ArrayLike<number | bigint>, num);
}

const KINDS: Record<TensorKind, KindSpec> = {
  segmentation: {
    task: 'classification',
    inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 1, 4, 4] }],
    output: { name: 'logits', datatype: 'FP32', shape: [-1, 3, 4, 4] },
    classAxis: 1,
    labels: ['background', 'cell', 'nucleus'],
    row: (inputs, n) => {
      const x = rowOf(inputs[0]!, n);
      return [0, 1, 2].flatMap((k) => x.map((v) => (k - 1) * v));
    },
  },
  text: {
    task: 'classification',
    inputs: [
      { name: 'input_ids', datatype: 'INT64', shape: [-1, 16] },
      { name: 'attention_mask', datatype: 'INT64', shape: [-1, 16] },
    ],
    output: { name: 'logits', datatype: 'FP32', shape: [-1, 2] },
    classAxis: 1,
    labels: ['negative', 'positive'],
    row: (inputs, n) => {
      const ids = rowOf(inputs[0]!, n);
      const mask = rowOf(inputs[1]!, n);
      const s = ids.reduce((a, v, j) => a + v * mask[j]!, 0) / 100;
      return [-s, s];
    },
  },
  regression: {
    task: 'regression',
    inputs: [{ name: 'series', datatype: 'FP32', shape: [-1, 4, 8] }],
    output: { name: 'y', datatype: 'FP32', shape: [-1, 1] },
    classAxis: null,
    labels: [],
    row: (inputs, n) => {
      const x = rowOf(inputs[0]!, n);
      return [x.reduce((a, b) => a + b, 0) / x.length];
    },
  },
  mixed: {
    task: 'regression',
    inputs: (['FP16', 'FP64', 'INT32', 'BOOL', 'UINT8'] as const).map((datatype, j) => ({
      name: ['half', 'double', 'int', 'flag', 'byte'][j]!,
      datatype,
      shape: [-1, 2],
    })),
    output: { name: 'y', datatype: 'FP32', shape: [-1, 1] },
    classAxis: null,
    labels: [],
    row: (inputs, n) => [
      // inputs in the model's order: the first is FP16
      inputs.reduce((a, t, j) => a + rowOf(t, n).reduce((b, v) => b + (j === 0 ? half(v) : v), 0), 0),
    ],
  },
};

/** Eval outputs of every row: the full output, rows first. */
function evalAll(k: KindSpec, inputs: readonly InputTensor[], rows: number): Float32Array {
  const per = k.output.shape.slice(1).reduce((a, b) => a * b, 1);
  const out = new Float32Array(rows * per);
  for (let n = 0; n < rows; n++) out.set(k.row(inputs, n), n * per);
  return out;
}

/** One sample's outputs in the record's order (classification: positions × classes, the class axis last). */
function recordOrder(k: KindSpec, out: Float32Array): Float32Array {
  if (k.classAxis === null) return out;
  const dims = k.output.shape.slice(1);
  const K = dims[k.classAxis - 1]!;
  const inner = dims.slice(k.classAxis).reduce((a, b) => a * b, 1);
  // the batch and the axes before the class axis
  const outer = out.length / (K * inner);
  const r = new Float32Array(out.length);
  for (let o = 0; o < outer; o++)
    for (let c = 0; c < K; c++)
      for (let i = 0; i < inner; i++) r[(o * inner + i) * K + c] = out[(o * K + c) * inner + i]!;
  return r;
}

function sampleAll(k: KindSpec, inputs: readonly InputTensor[], rows: number, o: McOptions): TensorMcResult {
  const evalOut = recordOrder(k, evalAll(k, inputs, rows));
  const width = k.classAxis === null ? evalOut.length / rows : k.output.shape[k.classAxis]!;
  const recordRows = evalOut.length / width;
  const acc =
    k.task === 'regression'
      ? new RegressionAccumulator(recordRows, width, o.samples, false, null, false, o.statistics)
      : new ClassificationAccumulator(recordRows, width, o.samples, false, true, 1, false, o.statistics);
  const sample = new Float32Array(evalOut.length);
  for (let t = 0; t < o.samples; t++) {
    const scale = t % 2 === 0 ? 0.5 : 1.5;
    for (let i = 0; i < sample.length; i++) sample[i] = evalOut[i]! * scale;
    acc.add(sample, 1);
  }
  const stats =
    acc instanceof RegressionAccumulator
      ? acc.finish(new Float64Array(evalOut.length), o.interval)
      : (acc as ClassificationAccumulator).finish();
  return { stats, seed: o.seed ?? 7, outputDims: [rows, ...k.output.shape.slice(1)] };
}

export function fakeTensorModel(
  kind: TensorKind,
  opts: { name?: string; runBytesPerRow?: number; mc?: boolean } = {},
): FakeTensorModel {
  const k = KINDS[kind];
  const name = opts.name ?? kind;
  const dims = k.output.shape.slice(1);
  const width = k.classAxis === null ? dims.reduce((a, b) => a * b, 1) : dims[k.classAxis - 1]!;
  const unsupported = (): never => {
    throw new Error('a tensor model has no tabular predict or sample');
  };
  const m: FakeTensorModel = {
    layout: 'tensor',
    name,
    version: '1',
    task: k.task,
    features: [],
    labels: k.labels,
    inputs: k.inputs,
    input: k.inputs[0]!,
    output: k.output,
    outputLayout: { dims, classAxis: k.classAxis },
    outputSize: width,
    outputKind: k.task === 'regression' ? 'regression' : 'logits',
    runBytesPerRow: opts.runBytesPerRow ?? 4096,
    mcAvailable: opts.mc ?? true,
    platform: 'onnx_onnxv1',
    maxRunRows: 4096,
    calls: [],
    describe: () => ({
      name,
      task: k.task,
      features: [],
      ...(k.labels.length ? { labels: k.labels } : {}),
      dropout: [0.5],
      inputs: k.inputs,
      outputs: [k.output],
      mc_available: m.mcAvailable,
    }),
    predict: unsupported,
    sample: unsupported,
    async predictTensors(inputs, rows) {
      m.calls.push({ inputs, rows });
      return { data: evalAll(k, inputs, rows), dims: [rows, ...dims] };
    },
    async sampleTensors(inputs, rows, o) {
      m.calls.push({ inputs, rows });
      return sampleAll(k, inputs, rows, o);
    },
    fitsOneRun: () => false,
    sampleBatch: unsupported,
    loadInfo: () => ({ kind }),
    async close() {},
  };
  return m;
}
