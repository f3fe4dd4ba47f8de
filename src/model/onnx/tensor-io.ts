/**
 * A tensor model's inputs as clients see them (TensorSpec: datatype, -1 for the batch and free dims),
 * and the model's own check of a request's input tensors against them (defence in depth: the codecs
 * check first). Every problem is an InputError naming the input, the axis and the extent expected.
 */
import { InputError } from '../errors.js';
import type { InputTensor, TensorSpec } from '../model.js';
import { DATATYPES, datatypeOf, holds } from './tensor-datatypes.js';
import { ELEM_TYPE_NAMES, ModelFormatError, type TensorInfo } from './inspect.js';

const ACCEPTED = Object.keys(DATATYPES).join(', ');

/**
 * The spec of a graph input served by a tensor model; ModelFormatError when its datatype is not one
 * of DATATYPES, its shape is undeclared or has no batch axis, or its batch is still fixed.
 */
export function inputSpec(info: TensorInfo): TensorSpec {
  const datatype = datatypeOf(info.elemType);
  const what = `input "${info.name}"`;
  if (!datatype)
    throw new ModelFormatError(
      `${what} is ${ELEM_TYPE_NAMES[info.elemType] ?? `type ${info.elemType}`}; a tensor input must be one of ${ACCEPTED}`,
    );
  if (!info.dims) throw new ModelFormatError(`${what} declares no shape; its rank and dims are needed`);
  if (info.dims.length === 0) throw new ModelFormatError(`${what} is a scalar; the batch must be its first axis`);
  if (info.dims[0] !== null)
    throw new ModelFormatError(
      `${what} has a fixed batch of ${info.dims[0]}; export it with a dynamic batch axis (torch.onnx.export dynamic_axes={"${info.name}": {0: "batch"}})`,
    );
  return { name: info.name, datatype, shape: info.dims.map((d) => d ?? -1) };
}

const shapeText = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/**
 * Check a request's input tensors against the model's specs: every input given once by name, in its
 * datatype's array type, of its rank, `rows` rows on axis 0, each fixed dim as declared, and as many
 * values as its dims hold. Returns the tensors in the specs' order. Throws InputError naming the input,
 * the axis and the expected extent.
 */
export function checkInputTensors(
  specs: readonly TensorSpec[],
  inputs: readonly InputTensor[],
  rows: number,
  shared: readonly SharedDim[] = [],
): InputTensor[] {
  const names = specs.map((s) => s.name);
  for (const t of inputs) {
    if (!names.includes(t.name))
      throw new InputError(`unknown input "${t.name}"; the model's inputs are ${names.join(', ')}`);
    if (inputs.filter((u) => u.name === t.name).length > 1) throw new InputError(`input "${t.name}" is given twice`);
  }
  const ordered = specs.map((spec) => {
    const t = inputs.find((u) => u.name === spec.name);
    if (!t) throw new InputError(`input "${spec.name}" is missing; the model's inputs are ${names.join(', ')}`);
    checkInputTensor(spec, t, rows);
    return t;
  });
  for (const d of shared) checkSharedDim(d, ordered);
  return ordered;
}

/** A free dim several inputs share (the same symbolic name: a sequence length), each as [input index, axis]. */
export interface SharedDim {
  param: string;
  at: [number, number][];
}

/** The free dims (other than the batch) that more than one input axis shares, from each input's dim names. */
export function sharedDims(dimParams: readonly (readonly (string | null)[])[]): SharedDim[] {
  const byName = new Map<string, [number, number][]>();
  dimParams.forEach((params, k) => {
    params.forEach((p, axis) => {
      if (axis > 0 && p) byName.set(p, [...(byName.get(p) ?? []), [k, axis]]);
    });
  });
  return [...byName].filter(([, at]) => at.length > 1).map(([param, at]) => ({ param, at }));
}

function checkSharedDim(d: SharedDim, inputs: readonly InputTensor[]): void {
  const [[k0, a0], ...rest] = d.at as [[number, number], ...[number, number][]];
  const want = inputs[k0]!.dims[a0]!;
  for (const [k, axis] of rest) {
    if (inputs[k]!.dims[axis] !== want)
      throw new InputError(
        `input "${inputs[k]!.name}" axis ${axis} has extent ${inputs[k]!.dims[axis]}; ${want} expected (the free dim "${d.param}" of input "${inputs[k0]!.name}" axis ${a0})`,
      );
  }
}

function checkInputTensor(spec: TensorSpec, t: InputTensor, rows: number): void {
  const what = `input "${spec.name}"`;
  if (!holds(spec.datatype, t.data))
    throw new InputError(
      `${what} must be ${spec.datatype} (${DATATYPES[spec.datatype].array.name}); its values are a ${t.data.constructor.name}`,
    );
  if (t.dims.length !== spec.shape.length)
    throw new InputError(
      `${what} has rank ${t.dims.length}; rank ${spec.shape.length} ${shapeText(spec.shape)} expected`,
    );
  t.dims.forEach((d, axis) => {
    if (!Number.isInteger(d) || d < 0) throw new InputError(`${what} axis ${axis}: extent ${d} is not a count`);
  });
  if (t.dims[0] !== rows)
    throw new InputError(
      `${what} axis 0 (the batch) has ${t.dims[0]} rows; ${rows} expected (every input carries the request's rows)`,
    );
  spec.shape.forEach((want, axis) => {
    if (axis > 0 && want >= 0 && t.dims[axis] !== want)
      throw new InputError(
        `${what} axis ${axis} has extent ${t.dims[axis]}; ${want} expected (shape ${shapeText(spec.shape)})`,
      );
  });
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== count)
    throw new InputError(`${what} holds ${t.data.length} values; its dims ${shapeText(t.dims)} need ${count}`);
}
