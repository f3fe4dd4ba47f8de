/**
 * The rows the load-time self-check runs on, like real inputs rather than white noise (issue 19 item 4:
 * white noise saturates a deep network, its logits run into the hundreds and float32's differences
 * between kernels grow with them). In order of preference:
 *  1. a `sample_input` stored beside the model (`X.sample_input.bin` or `.json` beside `X.onnx`),
 *     real rows, blended pairwise so that every check row differs;
 *  2. the card's `feature_stats`: per feature mean ± std, within [min, max];
 *  3. a bounded range: values in [−1, 1] varying smoothly along the feature index (neighbouring
 *     pixels of a flattened image are neighbouring features), never independent per element.
 * Each is deterministic, and row i never depends on how many rows are asked for.
 */
import { readFile } from 'node:fs/promises';
import type { FeatureStats } from '../model.js';
import { ModelFormatError } from './inspect.js';

/** `rows` rows of `features` values, row-major; row i must not depend on `rows`. */
export type CheckInput = (rows: number, features: number) => Float32Array;

/** A deterministic uniform [0, 1) stream (an LCG: the check needs reproducible rows, not quality). */
function uniforms(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Bounded smooth rows: three low-frequency sinusoids per row with random phases, in [−1, 1]. */
export const boundedInput: CheckInput = (rows, features) => {
  const out = new Float32Array(rows * features);
  const u = uniforms(0x2545f491);
  for (let i = 0; i < rows; i++) {
    const waves = [1, 2, 3].map((k) => ({ f: k + u(), phase: 2 * Math.PI * u(), a: u() }));
    const norm = waves.reduce((s, w) => s + w.a, 0) || 1;
    for (let j = 0; j < features; j++) {
      let v = 0;
      for (const w of waves) v += w.a * Math.sin((2 * Math.PI * w.f * j) / features + w.phase);
      out[i * features + j] = v / norm;
    }
  }
  return out;
};

/** Rows from the card's feature statistics: mean + std·z (z bounded, about standard normal), clamped to [min, max]. */
export function statsInput(stats: FeatureStats): CheckInput {
  return (rows, features) => {
    const out = new Float32Array(rows * features);
    const u = uniforms(0x9e3779b9);
    for (let i = 0; i < rows * features; i++) {
      const j = i % features;
      const z = (u() + u() + u() + u() - 2) * Math.sqrt(3);
      const v = (stats.mean[j] ?? 0) + (stats.std[j] ?? 1) * z;
      out[i] = Math.min(stats.max[j] ?? v, Math.max(stats.min[j] ?? v, v));
    }
    return out;
  };
}

/**
 * Rows from a sample of real rows (n × features): row i is a convex blend of sample rows i mod n and
 * (i + 1) mod n with a weight in [0.25, 0.75], so no two check rows are equal (the row-independence
 * check needs distinct rows); a single sample row is scaled by a factor in [0.9, 1.1] instead.
 */
export function sampleInput(sample: Float32Array, sampleRows: number): CheckInput {
  return (rows, features) => {
    const out = new Float32Array(rows * features);
    const u = uniforms(0x85ebca6b);
    for (let i = 0; i < rows; i++) {
      const a = sample.subarray((i % sampleRows) * features, (i % sampleRows) * features + features);
      const next = (i + 1) % sampleRows;
      const b = sample.subarray(next * features, next * features + features);
      const w = sampleRows > 1 ? 0.25 + 0.5 * u() : 0;
      const scale = sampleRows > 1 ? 1 : 0.9 + 0.2 * u();
      for (let j = 0; j < features; j++) out[i * features + j] = scale * ((1 - w) * a[j]! + w * b[j]!);
    }
    return out;
  };
}

/** The check's input for a model: its sample rows, else its feature statistics, else the bounded range. */
export function checkInputFor(sample: SampleRows | null, stats: FeatureStats | null | undefined): CheckInput {
  if (sample) return sampleInput(sample.data, sample.rows);
  if (stats) return statsInput(stats);
  return boundedInput;
}

/** Real rows stored beside a model. */
export interface SampleRows {
  data: Float32Array;
  rows: number;
  /** The file they came from (named in messages). */
  file: string;
}

/** Where a model's sample input may be: `X.sample_input.bin` (float32 LE, rows × features) or `.json` (rows). */
export const sampleInputFiles = (modelFile: string): { bin: string; json: string } => {
  const stem = modelFile.replace(/\.onnx$/i, '');
  return { bin: `${stem}.sample_input.bin`, json: `${stem}.sample_input.json` };
};

/** A file's bytes, or null when it does not exist (a sample beside the model is optional). */
export async function readIfPresent(file: string): Promise<Buffer | null> {
  try {
    return await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** A JSON sample: an array of rows, each an array of `features` finite numbers. */
function parseJsonRows(text: string, features: number, file: string): Float32Array {
  const rows: unknown = JSON.parse(text);
  const ok = (r: unknown): r is number[] =>
    Array.isArray(r) && r.length === features && r.every((v) => typeof v === 'number' && Number.isFinite(v));
  if (!Array.isArray(rows) || rows.length === 0 || !rows.every(ok))
    throw new ModelFormatError(`${file}: expected a non-empty array of rows of ${features} finite numbers`);
  return Float32Array.from(rows.flat());
}

/**
 * The sample input beside `modelFile`, or null when there is none. Throws ModelFormatError when one
 * exists but does not hold whole rows of `features` finite values.
 */
export async function readSampleInput(modelFile: string, features: number): Promise<SampleRows | null> {
  const { bin, json } = sampleInputFiles(modelFile);
  const binBytes = await readIfPresent(bin);
  let data: Float32Array;
  let file: string;
  if (binBytes) {
    if (binBytes.length === 0 || binBytes.length % (4 * features) !== 0)
      throw new ModelFormatError(
        `${bin}: ${binBytes.length} bytes is not a whole number of float32 rows of ${features}`,
      );
    data = new Float32Array(binBytes.buffer.slice(binBytes.byteOffset, binBytes.byteOffset + binBytes.length));
    file = bin;
  } else {
    const text = await readIfPresent(json);
    if (!text) return null;
    data = parseJsonRows(text.toString('utf8'), features, json);
    file = json;
  }
  if (!data.every(Number.isFinite)) throw new ModelFormatError(`${file}: the sample rows hold a non-finite value`);
  return { data, rows: data.length / features, file };
}
