/**
 * Inspection: decode a model file and describe what serving it needs (opset, the data input, the
 * outputs, every Dropout with its rate, the inputs that only switch Dropout's training_mode, metadata),
 * refusing with ModelFormatError, naming what is wrong, what the rewrites cannot serve.
 */
import { DataType, type Graph, type Model, type ValueInfo, decodeModel, toNumber } from '../../onnx-proto/proto.js';
import { constants, consumers, isDropout, isGraphOutput } from './graph-query.js';

export class ModelFormatError extends Error {
  override name = 'ModelFormatError';
}

export const MIN_OPSET = 7;
export const MAX_OPSET = 22;

export interface DropoutInfo {
  /** Node name (or a generated one). */
  name: string;
  /** Tensor the dropout is applied to. */
  input: string;
  ratio: number;
}

export interface TensorInfo {
  name: string;
  elemType: number;
  /** Dimensions; null for a symbolic or unknown dimension. */
  dims: (number | null)[] | null;
}

export interface GraphInfo {
  opset: number;
  irVersion: number;
  producer: string;
  input: TensorInfo;
  /** Graph inputs that only feed Dropout's training_mode (removed by the rewrites). */
  controlInputs: string[];
  outputs: TensorInfo[];
  dropouts: DropoutInfo[];
  metadata: Record<string, string>;
}

export const ELEM_TYPE_NAMES: Record<number, string> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
};

function tensorInfo(v: ValueInfo): TensorInfo {
  const t = v.type?.tensor_type;
  const dims = t?.shape?.dim
    ? t.shape.dim.map((d) =>
        d.dim_value !== undefined && d.dim_value !== null && !d.dim_param ? toNumber(d.dim_value) : null,
      )
    : null;
  return { name: v.name, elemType: t?.elem_type ?? 0, dims };
}

/**
 * A graph's data inputs as inspection found them, before a loader decides how to serve them: the
 * tabular loader requires exactly one float32 [batch, features] (tabularInput), the tensor loader takes
 * them all (TensorGraphInfo).
 */
type InputPick = (dataInputs: ValueInfo[]) => TensorInfo;

/** Decode and inspect a model for the tabular loader; throws ModelFormatError naming what is wrong. */
export function inspect(bytes: Uint8Array): { model: Model; info: GraphInfo } {
  return inspectWith(bytes, tabularInput);
}

/** A graph inspected for the tensor loader: every data input, in graph order (GraphInfo.input is the first). */
export interface TensorGraphInfo extends GraphInfo {
  inputs: TensorInfo[];
  /** Per input, the symbolic name of each dim (null: fixed or unnamed): inputs sharing a name share its extent. */
  inputDimParams: (string | null)[][];
}

/**
 * Decode and inspect a model with any data inputs (issue 19): like inspect, without its one-float-matrix
 * rule; throws ModelFormatError when the graph has no data input.
 */
export function inspectTensor(bytes: Uint8Array): { model: Model; info: TensorGraphInfo } {
  let inputs: TensorInfo[] = [];
  let inputDimParams: (string | null)[][] = [];
  const { model, info } = inspectWith(bytes, (dataInputs) => {
    if (dataInputs.length === 0) throw new ModelFormatError('the model has no data inputs');
    inputs = dataInputs.map(tensorInfo);
    inputDimParams = dataInputs.map((v) => (v.type?.tensor_type?.shape?.dim ?? []).map((d) => d.dim_param || null));
    return inputs[0]!;
  });
  return { model, info: { ...info, inputs, inputDimParams } };
}

/**
 * How a graph is served: 'tabular' (OnnxModel, load.ts) when it has one float32 data input of rank 2
 * (or undeclared rank) and no output of declared rank above 2, exactly the graphs the tabular loader
 * served before tensor models existed; 'tensor' (TensorModel, tensor-load.ts) otherwise. A graph with
 * no data input goes to the tabular loader, which names the problem as it always did.
 */
export function graphLayout(info: TensorGraphInfo): 'tabular' | 'tensor' {
  const [first, ...rest] = info.inputs;
  if (!first) return 'tabular';
  const tabular =
    rest.length === 0 &&
    first.elemType === DataType.FLOAT &&
    (first.dims === null || first.dims.length === 2) &&
    info.outputs.every((o) => o.dims === null || o.dims.length <= 2);
  return tabular ? 'tabular' : 'tensor';
}

function inspectWith(bytes: Uint8Array, pick: InputPick): { model: Model; info: GraphInfo } {
  let model: Model;
  try {
    model = decodeModel(bytes);
  } catch (err) {
    throw new ModelFormatError((err as Error).message);
  }
  const graph = model.graph!;
  const opset = checkedOpset(model);
  if (graph.node.length === 0) throw new ModelFormatError('the graph has no nodes');
  const { dropouts, trainingModeSources } = dropoutsOf(graph);
  const { dataInputs, controlInputs } = graphInputs(graph, trainingModeSources);
  const input = pick(dataInputs);
  const outputs = graph.output.map(tensorInfo);
  if (outputs.length === 0) throw new ModelFormatError('the graph has no outputs');
  const metadata: Record<string, string> = {};
  for (const p of model.metadata_props ?? []) metadata[p.key] = p.value;
  return {
    model,
    info: {
      opset,
      irVersion: toNumber(model.ir_version),
      producer: [model.producer_name, model.producer_version].filter(Boolean).join(' '),
      input,
      controlInputs,
      outputs,
      dropouts,
      metadata,
    },
  };
}

/** The default domain's opset, within MIN_OPSET … MAX_OPSET. */
function checkedOpset(model: Model): number {
  const entry = (model.opset_import ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  const opset = entry ? toNumber(entry.version) : 0;
  if (opset < MIN_OPSET || opset > MAX_OPSET) {
    throw new ModelFormatError(`unsupported opset ${opset} (supported: ${MIN_OPSET}–${MAX_OPSET})`);
  }
  return opset;
}

/** Every Dropout in node order with its constant rate, and the tensors feeding their training_mode. */
function dropoutsOf(graph: Graph): { dropouts: DropoutInfo[]; trainingModeSources: Set<string> } {
  const consts = constants(graph);
  const dropouts: DropoutInfo[] = [];
  const trainingModeSources = new Set<string>();
  graph.node.forEach((n, idx) => {
    if (!isDropout(n)) return;
    const name = n.name || `Dropout_${idx}`;
    let ratio = 0.5; // ONNX default
    const attr = n.attribute?.find((a) => a.name === 'ratio');
    if (attr) ratio = attr.f ?? 0.5;
    else if (n.input[1]) {
      const v = consts.get(n.input[1]);
      if (v?.length !== 1)
        throw new ModelFormatError(`Dropout ${name}: its ratio "${n.input[1]}" is not a constant scalar`);
      ratio = v[0]!;
    }
    if (!(ratio >= 0 && ratio < 1)) throw new ModelFormatError(`Dropout ${name}: ratio ${ratio} is outside [0, 1)`);
    if (n.input[2]) trainingModeSources.add(n.input[2]);
    const mask = n.output[1];
    if (mask && (consumers(graph, mask).length > 0 || isGraphOutput(graph, mask))) {
      throw new ModelFormatError(`Dropout ${name}: its mask output is used by the graph, which is not supported`);
    }
    dropouts.push({ name, input: n.input[0]!, ratio: shortestFloat32(ratio) });
  });
  return { dropouts, trainingModeSources };
}

/** The data inputs and the control inputs: an input used only as Dropout's training_mode is a switch, not data. */
function graphInputs(
  graph: Graph,
  trainingModeSources: Set<string>,
): { dataInputs: ValueInfo[]; controlInputs: string[] } {
  const initNames = new Set((graph.initializer ?? []).map((t) => t.name));
  const realInputs = graph.input.filter((i) => !initNames.has(i.name));
  const controlInputs = realInputs
    .filter(
      (i) =>
        trainingModeSources.has(i.name) &&
        consumers(graph, i.name).every(
          (n) => n.op_type === 'Dropout' && n.input[2] === i.name && n.input[0] !== i.name && n.input[1] !== i.name,
        ),
    )
    .map((i) => i.name);
  return { dataInputs: realInputs.filter((i) => !controlInputs.includes(i.name)), controlInputs };
}

/** The tabular loader's one data input: float32, rank 2 when declared. */
function tabularInput(dataInputs: ValueInfo[]): TensorInfo {
  if (dataInputs.length !== 1) {
    throw new ModelFormatError(
      `the model has ${dataInputs.length} data inputs (${dataInputs.map((i) => i.name).join(', ') || 'none'}); exactly one float tensor [batch, features] is supported`,
    );
  }
  const input = tensorInfo(dataInputs[0]!);
  if (input.elemType !== DataType.FLOAT) {
    throw new ModelFormatError(
      `input "${input.name}" is ${ELEM_TYPE_NAMES[input.elemType] ?? `type ${input.elemType}`}; a float32 input is required`,
    );
  }
  if (input.dims && input.dims.length !== 2) {
    throw new ModelFormatError(
      `input "${input.name}" has rank ${input.dims.length}; a rank-2 input [batch, features] is required`,
    );
  }
  return input;
}

/** The shortest decimal that rounds to the same float32 (0.30000001192092896 → 0.3). */
export function shortestFloat32(x: number): number {
  const f = Math.fround(x);
  for (let p = 1; p <= 9; p++) {
    const d = Number(f.toPrecision(p));
    if (Math.fround(d) === f) return d;
  }
  return f;
}
