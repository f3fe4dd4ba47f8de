/**
 * The V2 codec of tensor models (issue 19, `model.layout === 'tensor'`): one request tensor per model
 * input, checked against its declared datatype and shape (tensor-input.ts), JSON (flat or nested) or
 * binary; outputs in the output's own shape (tensor-output.ts): predict gives the raw output and, for a
 * classifier, probabilities with the class axis in place and the label per position; Monte Carlo the
 * statistics with a V2 name (src/uncertainty/statistics.ts) per element or per position, and the label.
 */
import { InputError } from '../../model/errors.js';
import type { InputTensor, Model, TensorSpec } from '../../model/model.js';
import { type McStats, servedStats, statValues } from '../../uncertainty/record.js';
import { STATS } from '../../uncertainty/statistics.js';
import {
  binaryValues,
  checkSameBatch,
  checkShape,
  flattenNested,
  inputName,
  jsonValues,
  matchInputs,
  modelInputs,
} from './tensor-input.js';
import { positionDims, statTensor, tensorClassPredict } from './tensor-output.js';
import type { V2BinaryRequest } from './v2-binary.js';

/** A request tensor as the V2 schema gives it. */
interface RequestTensor {
  name: string;
  shape: number[];
  datatype: string;
  data?: unknown;
  parameters?: Record<string, unknown>;
}

/** An output tensor of a V2 answer. */
export interface V2TensorOutput {
  name: string;
  shape: number[];
  datatype: 'FP32' | 'INT32';
  data: Float32Array | Int32Array;
}

/** The name of the per-position class output (the statistics table has no V2 name for the label). */
const LABEL = 'label';

/** Check one request tensor's name, datatype and shape against the model input it is for. */
function checkTensor(spec: TensorSpec, t: RequestTensor, sent: boolean): number {
  const where = inputName(spec.name);
  if (t.datatype !== spec.datatype)
    throw new InputError(`${where}: datatype ${t.datatype}, expected ${spec.datatype} (as the model declares it)`);
  const rows = checkShape(spec, t.shape, where);
  if (t.data === undefined && !sent)
    throw new InputError(
      t.parameters?.binary_data_size !== undefined
        ? `${where}: parameters.binary_data_size is given, but the request has no Inference-Header-Content-Length header, so there is no binary data`
        : `${where}: "data" is missing (send "data", or the values in binary with parameters.binary_data_size)`,
    );
  return rows;
}

/**
 * A tensor model's input tensors from a V2 request, in the model's order: every shape and datatype is
 * checked and `count` told the rows before any value is read. `binary`: the request's binary tensors,
 * aligned with `inputs`.
 */
export function tensorInputs(
  model: Model,
  inputs: readonly RequestTensor[],
  count: (rows: number, field: string) => void,
  binary: V2BinaryRequest | null,
): { inputs: InputTensor[]; rows: number } {
  const order = matchInputs(
    model,
    inputs.map((t) => t.name),
    'inputs',
  );
  const specs = modelInputs(model);
  const shapes = specs.map((spec, j) => {
    const i = order[j]!;
    checkTensor(spec, inputs[i]!, !!binary?.inputs[i]?.binary);
    return { name: spec.name, dims: inputs[i]!.shape, data: new Float32Array(0) };
  });
  const rows = checkSameBatch(shapes);
  count(rows, 'inputs');
  const tensors = specs.map((spec, j) => {
    const i = order[j]!;
    const t = inputs[i]!;
    const sent = binary?.inputs[i];
    const where = inputName(spec.name);
    const data = sent?.binary
      ? binaryValues(sent.data, spec.datatype, where)
      : jsonValues(flattenNested(t.data, t.shape, where, 'data'), spec.datatype, where);
    return { name: spec.name, dims: [...t.shape], data };
  });
  return { inputs: tensors, rows };
}

const output = (name: string, shape: number[], data: Float32Array | Int32Array): V2TensorOutput => ({
  name,
  shape,
  datatype: data instanceof Int32Array ? 'INT32' : 'FP32',
  data,
});

/** A tensor model's eval answer: its raw output, and for a classifier probabilities and the label per position. */
export function tensorPredictOutputs(model: Model, raw: Float32Array, dims: number[]): V2TensorOutput[] {
  const outs = [output(model.output.name, dims, raw)];
  const classAxis = model.outputLayout?.classAxis ?? null;
  if (model.task !== 'classification' || classAxis === null) return outs;
  const c = tensorClassPredict(model, raw, dims, classAxis);
  if (model.output.name !== 'probabilities') outs.push(output('probabilities', dims, c.probabilities));
  outs.push(output(LABEL, c.labelDims, c.labels));
  return outs;
}

/** A tensor model's Monte Carlo answer: each statistic with a V2 name the record holds, and the label. */
export function tensorMcOutputs(stats: McStats, outputDims: number[], classAxis: number | null): V2TensorOutput[] {
  const held = servedStats(stats);
  const outs = STATS[stats.kind]
    .filter((d) => d.v2 !== null && held.includes(d))
    .map((d) => {
      const t = statTensor(stats, statValues(stats, d), d.shape !== 'row', outputDims, classAxis);
      return output(d.v2!, t.shape, t.data);
    });
  if (stats.kind === 'classification' && classAxis !== null) {
    const t = statTensor(stats, stats.label, false, outputDims, classAxis);
    outs.push(output(LABEL, t.shape, t.data));
  }
  return outs;
}

/** The outputs a tensor model's eval infer answers with (metadata and Triton's configuration). */
export function tensorMetadataOutputs(m: Model): TensorSpec[] {
  const classAxis = m.outputLayout?.classAxis ?? null;
  if (m.task !== 'classification' || classAxis === null) return [{ ...m.output }];
  return [
    { ...m.output },
    ...(m.output.name !== 'probabilities'
      ? [{ name: 'probabilities', datatype: 'FP32' as const, shape: [...m.output.shape] }]
      : []),
    { name: LABEL, datatype: 'INT32', shape: positionDims(m.output.shape, classAxis) },
  ];
}

/** A tensor classifier's Monte Carlo outputs add the label per position. */
export const tensorMcExtraOutputs = (m: Model): string[] =>
  m.task === 'classification' && (m.outputLayout?.classAxis ?? null) !== null ? [LABEL] : [];
