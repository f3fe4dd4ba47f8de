/**
 * The worker wire of the statistics record: several requests' records in one Float64Array (a worker hands
 * a batch's results back as one transferred buffer), tagged with a fingerprint of the tables and
 * length-checked on the way in.
 */
import { type McStats, makeStatsFrom, servedStats, statLength, statValues, statsWidth } from './record.js';
import { STATS, type Task } from './statistics.js';

/**
 * A fingerprint of both tables (keys, shapes, order): it opens every packed record, so that a reader
 * built from other tables refuses to read instead of misreading.
 */
const WIRE_TAG = (() => {
  let h = 0x811c9dc5;
  const text = (['regression', 'classification'] as const)
    .map((t) => `${t}:${STATS[t].map((d) => `${d.key}/${d.shape}/${d.served}${d.int ? '/int' : ''}`).join(',')}`)
    .join(';');
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
})();
const HEADER = 11;

/**
 * Statistics of several requests in one Float64Array, so that a worker hands a batch's results back as
 * one transferred buffer (structured-cloning several typed arrays per request cost the main thread more
 * than the Monte Carlo itself). Per result: a header [tag, task (0 regression, 1 classification), rows,
 * width, samples, level, interval method (0 gaussian, 1 conformal), seed, raw length, held, row sample
 * counts (0, or rows when they differ: rowSamples)], `held` a bit mask of the statistics the record holds
 * (bit j: the table's row j; an on-request one only when asked for), those statistics in table order
 * (integers as floats), the raw samples, then each row's sample count. unpackStats checks
 * the tag, that every statistic served always is held, and every length.
 */
export function packStats(results: readonly { stats: McStats; seed: number }[]): Float64Array {
  let size = 0;
  for (const { stats: s } of results) {
    size += HEADER + (s.raw ? s.raw.length : 0) + (s.rowSamples ? s.rows : 0);
    for (const d of servedStats(s)) size += statLength(d, s.rows, statsWidth(s));
  }
  const data = new Float64Array(size);
  let o = 0;
  for (const { stats: s, seed } of results) {
    const table = STATS[s.kind];
    const held = servedStats(s);
    const method = s.kind === 'regression' && s.intervalMethod === 'conformal' ? 1 : 0;
    data.set(
      [
        WIRE_TAG,
        s.kind === 'regression' ? 0 : 1,
        s.rows,
        statsWidth(s),
        s.samples,
        s.kind === 'regression' ? s.level : 0,
        method,
        seed,
        s.raw ? s.raw.length : 0,
        held.reduce((mask, d) => mask | (1 << table.indexOf(d)), 0),
        s.rowSamples ? s.rows : 0,
      ],
      o,
    );
    o += HEADER;
    for (const d of held) {
      const a = statValues(s, d);
      data.set(a, o);
      o += a.length;
    }
    if (s.raw) {
      data.set(s.raw, o);
      o += s.raw.length;
    }
    if (s.rowSamples) {
      data.set(s.rowSamples, o);
      o += s.rows;
    }
  }
  return data;
}

/** The inverse of packStats: statistics are views into `data` (labels and raw samples are copied back). */
export function unpackStats(data: Float64Array): { stats: McStats; seed: number }[] {
  const out: { stats: McStats; seed: number }[] = [];
  let o = 0;
  const take = (n: number): Float64Array => {
    if (o + n > data.length) throw new Error(`MC wire: truncated (${data.length} values, record needs ${o + n})`);
    const from = o;
    o += n;
    return data.subarray(from, o);
  };
  while (o < data.length) {
    const h = take(HEADER);
    // the header's fields read one by one (a destructured array literal was an array per record)
    const tag = h[0]!;
    const rows = h[2]!;
    const width = h[3]!;
    const held = h[9]!;
    const counted = h[10]!;
    if (tag !== WIRE_TAG)
      throw new Error(`MC wire: layout tag ${tag} is not this build's ${WIRE_TAG} (packed by other statistics tables)`);
    const kind: Task = h[1] === 0 ? 'regression' : 'classification';
    const table = STATS[kind];
    // in table order (makeStatsFrom), not keyed by name
    const values: (Float64Array | Int32Array | undefined)[] = new Array(table.length);
    for (let j = 0; j < table.length; j++) {
      const d = table[j]!;
      if ((held & (1 << j)) === 0) {
        if (d.served === 'always') throw new Error(`MC wire: the ${kind} record lacks "${d.key}"`);
        values[j] = undefined;
        continue;
      }
      const a = take(statLength(d, rows, width));
      values[j] = d.int ? Int32Array.from(a) : a;
    }
    const rawLength = h[8]!;
    const raw = rawLength > 0 ? Float32Array.from(take(rawLength)) : undefined;
    if (counted !== 0 && counted !== rows) throw new Error(`MC wire: ${counted} row sample counts for ${rows} rows`);
    const rowSamples = counted > 0 ? Int32Array.from(take(counted)) : undefined;
    out.push({
      stats: makeStatsFrom(
        kind,
        {
          rows,
          width,
          samples: h[4]!,
          level: h[5]!,
          intervalMethod: h[6] === 1 ? 'conformal' : 'gaussian',
          rowSamples,
        },
        values,
        raw,
      ),
      seed: h[7]!,
    });
  }
  return out;
}
