/**
 * joinRows: one-row records (each a row's answer alone) into the record of those rows, each with its own
 * sample count, as a per-row "auto" request answers (tests compare the two).
 */
import {
  type McStats,
  makeStats,
  servedStats,
  statLength,
  statValues,
  statsWidth,
} from '../../src/uncertainty/record.js';
/**
 * One record of the rows of `parts` (records of one row each, in row order, made with one table and
 * interval), each row with its own sample count: `samples` the largest, `rowSamples` when they differ.
 * Raw samples are joined sample-major, so the parts that carry them must share their sample count.
 */
export function joinRows(parts: readonly McStats[]): McStats {
  const first = parts[0]!;
  const rows = parts.length;
  const width = statsWidth(first);
  const rowSamples = Int32Array.from(parts, (p) => p.samples);
  const samples = Math.max(...rowSamples);
  const arrays: Record<string, Float64Array | Int32Array> = {};
  for (const d of servedStats(first)) {
    const per = statLength(d, 1, width);
    const a = d.int ? new Int32Array(rows * per) : new Float64Array(rows * per);
    for (let i = 0; i < rows; i++) a.set(statValues(parts[i]!, d), i * per);
    arrays[d.key] = a;
  }
  let raw: Float32Array | undefined;
  if (first.raw) {
    if (rowSamples.some((t) => t !== samples)) throw new Error('joinRows: raw samples need one sample count');
    raw = new Float32Array(samples * rows * width);
    parts.forEach((p, i) => {
      for (let t = 0; t < samples; t++) raw!.set(p.raw!.subarray(t * width, (t + 1) * width), (t * rows + i) * width);
    });
  }
  const header =
    first.kind === 'regression'
      ? { rows, width, samples, level: first.level, intervalMethod: first.intervalMethod, rowSamples }
      : { rows, width, samples, rowSamples };
  return makeStats(first.kind, header, arrays, raw);
}
