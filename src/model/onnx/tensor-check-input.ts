/**
 * The inputs a tensor model's load-time probe and self-check run on, like real ones (issue 19 item 4),
 * in order of preference:
 *  1. a sample stored beside the model: `X.sample_input.json` ({"input_name": nested array of rows, …})
 *     or `X.sample_input.bin` (each input's rows in its datatype, little-endian, the inputs one after
 *     another in the graph's order; fixed dims only), the way check-input.ts reads a tabular model's;
 *  2. synthetic rows: bounded smooth values in [−1, 1] for float inputs (check-input.ts boundedInput over
 *     a row's flattened elements, so neighbouring pixels are neighbouring values), small valid ids
 *     (0 or 1) for integer inputs (token ids, attention masks, flags), never white noise.
 * A dim the graph leaves free gets FREE_DIM_EXTENT (synthetic) or the sample's extent. Row i never
 * depends on how many rows are asked for.
 */
import type { InputTensor, TensorSpec } from '../model.js';
import { boundedInput, readIfPresent, sampleInputFiles } from './check-input.js';
import { ModelFormatError } from './inspect.js';
import { DATATYPES } from './tensor-datatypes.js';

/** `rows` rows of every input, in the specs' order; row i does not depend on `rows`. */
export type TensorCheckInput = (rows: number) => InputTensor[];

/** The extent a synthetic input gives a dim the graph leaves free (a sequence length, an image side). */
export const FREE_DIM_EXTENT = 8;

const product = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** A synthetic row's dims (without the batch). */
const syntheticRowDims = (spec: TensorSpec): number[] => spec.shape.slice(1).map((d) => (d < 0 ? FREE_DIM_EXTENT : d));

/** Ids 0 or 1, mostly 1 (an attention mask of 1s; a padding id 0 here and there), varying by row. */
function smallIds(rows: number, size: number): number[] {
  return Array.from({ length: rows * size }, (_, e) => ((Math.floor(e / size) * 5 + (e % size) * 3) % 7 === 0 ? 0 : 1));
}

/** Synthetic check rows for every input (preference 2). */
export function syntheticInput(specs: readonly TensorSpec[]): TensorCheckInput {
  return (rows) =>
    specs.map((spec) => {
      const rowDims = syntheticRowDims(spec);
      const size = product(rowDims);
      const type = DATATYPES[spec.datatype];
      const values = type.integer ? smallIds(rows, size) : boundedInput(rows, size);
      return { name: spec.name, dims: [rows, ...rowDims], data: type.from(values) };
    });
}

/** Real rows of every input: `values` holds `rows` rows of `rowDims` per input, in the specs' order. */
export interface TensorSample {
  rows: number;
  inputs: { rowDims: number[]; values: number[] }[];
  file: string;
}

/** A deterministic uniform [0, 1) stream (an LCG: reproducible rows, not quality). */
function uniforms(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/**
 * Check rows from a sample (preference 1): float inputs blend sample rows i mod n and (i + 1) mod n
 * with a weight in [0.25, 0.75] (one sample row: scaled by a factor in [0.9, 1.1]), so check rows
 * differ; integer inputs repeat sample row i mod n (a blended id is no id).
 */
export function sampleCheckInput(specs: readonly TensorSpec[], sample: TensorSample): TensorCheckInput {
  const n = sample.rows;
  return (rows) => {
    const u = uniforms(0x85ebca6b);
    const weights = Array.from({ length: rows }, () =>
      n > 1 ? { w: 0.25 + 0.5 * u(), s: 1 } : { w: 0, s: 0.9 + 0.2 * u() },
    );
    return specs.map((spec, k) => {
      const { rowDims, values } = sample.inputs[k]!;
      const size = product(rowDims);
      const type = DATATYPES[spec.datatype];
      const out = new Array<number>(rows * size);
      for (let i = 0; i < rows; i++) {
        const a = (i % n) * size;
        const b = ((i + 1) % n) * size;
        const { w, s } = weights[i]!;
        for (let j = 0; j < size; j++)
          out[i * size + j] = type.integer ? values[a + j]! : s * ((1 - w) * values[a + j]! + w * values[b + j]!);
      }
      return { name: spec.name, dims: [rows, ...rowDims], data: type.from(out) };
    });
  };
}

/** The check input of a tensor model: its sample beside `modelFile` when there is one, else synthetic. */
export async function tensorCheckInput(modelFile: string, specs: readonly TensorSpec[]): Promise<TensorCheckInput> {
  const sample = await readTensorSample(modelFile, specs);
  return sample ? sampleCheckInput(specs, sample) : syntheticInput(specs);
}

/**
 * The sample beside `modelFile` (`.bin` first, then `.json`), or null. Throws ModelFormatError naming
 * the file, the input and the problem when one exists but does not fit the inputs.
 */
export async function readTensorSample(modelFile: string, specs: readonly TensorSpec[]): Promise<TensorSample | null> {
  const { bin, json } = sampleInputFiles(modelFile);
  const binBytes = await readIfPresent(bin);
  if (binBytes) return checkedSample(parseBinSample(binBytes, specs, bin));
  const text = await readIfPresent(json);
  return text ? checkedSample(parseJsonSample(text.toString('utf8'), specs, json)) : null;
}

function checkedSample(sample: TensorSample): TensorSample {
  if (!sample.inputs.every((i) => i.values.every(Number.isFinite)))
    throw new ModelFormatError(`${sample.file}: the sample holds a non-finite value`);
  return sample;
}

/** A binary sample: each input's rows in its datatype, the inputs in the graph's order. */
function parseBinSample(bytes: Buffer, specs: readonly TensorSpec[], file: string): TensorSample {
  const free = specs.find((s) => s.shape.slice(1).some((d) => d < 0));
  if (free)
    throw new ModelFormatError(
      `${file}: input "${free.name}" has a free dim; give its sample as ${file.replace(/\.bin$/, '.json')}`,
    );
  const rowBytes = specs.map((s) => product(s.shape.slice(1)) * DATATYPES[s.datatype].bytes);
  const total = rowBytes.reduce((a, b) => a + b, 0);
  if (bytes.length === 0 || bytes.length % total !== 0)
    throw new ModelFormatError(
      `${file}: ${bytes.length} bytes is not a whole number of rows of ${total} bytes (every input's row)`,
    );
  const rows = bytes.length / total;
  let at = 0;
  const inputs = specs.map((s, k) => {
    const length = rows * rowBytes[k]!;
    const buf = new Uint8Array(bytes.subarray(at, at + length)).buffer;
    at += length;
    const typed = new DATATYPES[s.datatype].array(buf);
    return { rowDims: s.shape.slice(1), values: Array.from(typed as ArrayLike<number | bigint>, Number) };
  });
  return { rows, inputs, file };
}

/** A JSON sample: {"input_name": nested array of rows} with every input of the model. */
function parseJsonSample(text: string, specs: readonly TensorSpec[], file: string): TensorSample {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ModelFormatError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new ModelFormatError(`${file}: expected an object {"input_name": nested array of rows, …}`);
  const inputs = specs.map((s) => {
    const nested = (parsed as Record<string, unknown>)[s.name];
    if (nested === undefined) throw new ModelFormatError(`${file}: input "${s.name}" is missing`);
    return flattenNested(nested, s, file);
  });
  const rows = inputs[0]!.rows;
  const other = inputs.find((i) => i.rows !== rows);
  if (other)
    throw new ModelFormatError(`${file}: the inputs hold different numbers of rows (${rows} and ${other.rows})`);
  return { rows, inputs: inputs.map(({ rowDims, values }) => ({ rowDims, values })), file };
}

/** A nested array of rows → its dims and values, checked against the spec's rank and fixed dims. */
function flattenNested(
  nested: unknown,
  spec: TensorSpec,
  file: string,
): { rows: number; rowDims: number[]; values: number[] } {
  const dims: number[] = [];
  for (let level: unknown = nested; Array.isArray(level); level = level[0]) dims.push(level.length);
  const values = (nested as unknown[]).flat(Number.POSITIVE_INFINITY) as unknown[];
  const bad =
    dims.length !== spec.shape.length ||
    dims[0] === 0 ||
    spec.shape.some((d, axis) => axis > 0 && d >= 0 && dims[axis] !== d) ||
    values.length !== product(dims) ||
    !values.every((v) => typeof v === 'number' || typeof v === 'boolean');
  if (bad)
    throw new ModelFormatError(
      `${file}: input "${spec.name}" must be a non-empty nested array of rows of shape [${spec.shape.join(', ')}] (-1: any extent)`,
    );
  return { rows: dims[0]!, rowDims: dims.slice(1), values: values.map(Number) };
}
