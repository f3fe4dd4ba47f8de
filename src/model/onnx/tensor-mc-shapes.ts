/**
 * The shapes of a tensor model's intermediate tensors as functions of the batch, learnt by probing: the
 * eval graph (every Dropout an Identity) with every node output fetched, run on 1 row and on 2 rows of
 * the request's (or the load check's) inputs. Each dimension is then c + k·B for the batch B — a
 * constant (k = 0), proportional to the batch ([B·heads, L, L]: k = heads), or anything affine — which
 * gives a Dropout input's mask shape at any run batch, the axis along which a tensor carries the batch
 * (for tiling it), and the bytes a tensor adds per row.
 */
import type { Model as OnnxProto } from '../../onnx-proto/proto.js';
import type { InputTensor, TensorSpec, TensorValues } from '../model.js';
import { cloneModel, isDropout } from './graph-query.js';
import { ModelFormatError } from './inspect.js';
import { type Feed, type OrtSession, type SessionOptions, type TypedOutput, createSession } from './ort.js';
import { type DropoutGraph, evalGraph } from './rewrite.js';

/** One dimension as a function of the batch B: c + k·B. */
export interface DimLaw {
  c: number;
  k: number;
}

/** What the probe learnt of one tensor. */
export interface TensorLaw {
  dims: DimLaw[];
  /** Bytes per element. */
  elementBytes: number;
  /** The values at 1 row equal those at 2 rows (only compared when no dimension depends on the batch). */
  sameValues: boolean;
}

/** Every tensor the probe saw (graph inputs and node outputs) by name. */
export type ShapeLaws = ReadonlyMap<string, TensorLaw>;

/** The dims of a tensor whose law is `law` at batch B. */
export const dimsAt = (law: readonly DimLaw[], B: number): number[] => law.map((d) => d.c + d.k * B);

export const sizeOf = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** Elements a tensor adds per row of batch (its size at 2 rows less its size at 1). */
export const elementsPerRow = (law: TensorLaw): number => sizeOf(dimsAt(law.dims, 2)) - sizeOf(dimsAt(law.dims, 1));

/**
 * The axis along which a tensor carries the batch, so that tiling it there gives sample-major rows:
 * exactly one dimension proportional to the batch (c = 0, k ≥ 1) and every other one constant. null
 * when there is none or it is unclear.
 */
export function batchAxis(law: TensorLaw): number | null {
  const moving = law.dims.flatMap((d, i) => (d.k !== 0 ? [i] : []));
  if (moving.length !== 1) return null;
  const d = law.dims[moving[0]!]!;
  return d.c === 0 && d.k >= 1 ? moving[0]! : null;
}

/** A tensor that neither depends on the batch in its dims nor in its values (a constant, a fixed shape). */
export const batchFree = (law: TensorLaw): boolean => law.dims.every((d) => d.k === 0) && law.sameValues;

/** The law of a tensor seen as `one` at 1 row and `two` at 2 rows. */
export function lawOf(one: TypedOutput, two: TypedOutput): TensorLaw {
  if (one.dims.length !== two.dims.length) throw new ModelFormatError('a tensor changes rank with the batch');
  const dims = one.dims.map((d1, i) => ({ c: 2 * d1 - two.dims[i]!, k: two.dims[i]! - d1 }));
  const still = dims.every((d) => d.k === 0);
  return { dims, elementBytes: one.data.BYTES_PER_ELEMENT, sameValues: still && sameData(one.data, two.data) };
}

function sameData(a: TensorValues, b: TensorValues): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The first `rows` rows of an input tensor (a view). */
export function firstRows(t: InputTensor, rows: number): InputTensor {
  const per = sizeOf(t.dims.slice(1));
  return { name: t.name, dims: [rows, ...t.dims.slice(1)], data: t.data.subarray(0, rows * per) as TensorValues };
}

/** Feeds of input tensors in their declared datatypes (BOOL is a Uint8Array that only the spec tells apart). */
export function feedsOf(inputs: readonly InputTensor[], specs: readonly TensorSpec[]): Record<string, Feed> {
  const out: Record<string, Feed> = {};
  for (const t of inputs) {
    const spec = specs.find((s) => s.name === t.name);
    out[t.name] = { data: t.data, dims: t.dims, ...(spec ? { datatype: spec.datatype } : {}) };
  }
  return out;
}

/** Two rows of the inputs: the first two when there are, else the first row twice. */
function twoRows(inputs: readonly InputTensor[]): InputTensor[] {
  return inputs.map((t) => {
    if (t.dims[0]! >= 2) return firstRows(t, 2);
    const one = firstRows(t, 1).data;
    const data = new (one.constructor as new (n: number) => TensorValues)(one.length * 2);
    data.set(one as never, 0);
    data.set(one as never, one.length);
    return { name: t.name, dims: [2, ...t.dims.slice(1)], data };
  });
}

/**
 * The probe graph: the eval graph with every node output a graph output (untyped: onnxruntime infers
 * the types), except Dropout's mask output and BatchNormalization's training outputs, which the eval
 * rewrite removes.
 */
function probeAllGraph(model: OnnxProto, info: DropoutGraph): Uint8Array {
  const m = cloneModel(model);
  const g = m.graph!;
  const have = new Set(g.output.map((o) => o.name));
  for (const n of g.node) {
    const outs = isDropout(n) || n.op_type === 'BatchNormalization' ? n.output.slice(0, 1) : n.output;
    for (const o of outs) {
      if (!o || have.has(o)) continue;
      g.output.push({ name: o });
      have.add(o);
    }
  }
  return evalGraph(m, info);
}

/** The probe session of one model (every node output fetched): the caller releases it after `laws`. */
export class ShapeProbe {
  private constructor(
    private readonly session: OrtSession,
    private readonly specs: readonly TensorSpec[],
  ) {}

  static async create(
    model: OnnxProto,
    info: DropoutGraph,
    specs: readonly TensorSpec[],
    opts: SessionOptions,
  ): Promise<ShapeProbe> {
    try {
      return new ShapeProbe(await createSession(probeAllGraph(model, info), opts), specs);
    } catch (err) {
      throw new ModelFormatError(`onnxruntime cannot load the probe graph: ${(err as Error).message.split('\n')[0]}`);
    }
  }

  /** The laws of every graph input and node output, from runs on 1 and 2 rows of `inputs`. */
  async laws(inputs: readonly InputTensor[]): Promise<ShapeLaws> {
    const fetch = this.session.outputNames.filter((n) => !inputs.some((t) => t.name === n));
    const run = async (rows: readonly InputTensor[]): Promise<Record<string, TypedOutput>> => {
      const out = await this.session.runTyped(feedsOf(rows, this.specs), [...fetch]);
      for (const t of rows) out[t.name] = { data: t.data, dims: [...t.dims] };
      return out;
    };
    let one: Record<string, TypedOutput>;
    let two: Record<string, TypedOutput>;
    try {
      one = await run(inputs.map((t) => firstRows(t, 1)));
      two = await run(twoRows(inputs));
    } catch (err) {
      throw new ModelFormatError(`a probe run of the model failed: ${(err as Error).message.split('\n')[0]}`);
    }
    return new Map(Object.keys(one).map((name) => [name, lawOf(one[name]!, two[name]!)]));
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
