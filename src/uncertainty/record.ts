/**
 * The Monte Carlo statistics record: one typed record per request, its type derived from the tables of
 * statistics.ts, made in one canonical field order by makeStats.
 */
import type { IntervalMethod } from './intervals.js';
import {
  type CLASSIFICATION_STATS,
  type REGRESSION_STATS,
  STATS,
  type StatDescriptor,
  type Task,
} from './statistics.js';

type ArrayOf<D> = D extends { int: true } ? Int32Array : Float64Array;

/** A field per statistic: those served on request only when the request asked for them. */
type Arrays<T extends readonly StatDescriptor[]> = {
  [D in T[number] as D extends { served: 'on-request' } ? never : D['key']]: ArrayOf<D>;
} & {
  [D in T[number] as D extends { served: 'on-request' } ? D['key'] : never]?: ArrayOf<D>;
};

export type RegressionStats = {
  kind: 'regression';
  rows: number;
  outputs: number;
  samples: number;
  /** The central interval's level. */
  level: number;
  /** How the interval was made: mean ± z·std (gaussian) or mean ± q·std (conformal). */
  intervalMethod: IntervalMethod;
  /** samples × rows × outputs, when asked for */
  raw?: Float32Array;
  /** `samples: "auto"` with per-row stopping: each row's samples, when rows differ (`samples` is their maximum). */
  rowSamples?: Int32Array;
} & Arrays<typeof REGRESSION_STATS>;

export type ClassificationStats = {
  kind: 'classification';
  rows: number;
  classes: number;
  samples: number;
  /** samples × rows × classes (probabilities), when asked for */
  raw?: Float32Array;
  /** As RegressionStats': each row's samples, when rows differ. */
  rowSamples?: Int32Array;
} & Arrays<typeof CLASSIFICATION_STATS>;

export type McStats = RegressionStats | ClassificationStats;

/** Outputs (regression) or classes (classification): the width of a 'row×width' statistic. */
export function statsWidth(s: McStats): number {
  return s.kind === 'regression' ? s.outputs : s.classes;
}

/** The values of one statistic of the record (of one it holds: servedStats). */
export function statValues(s: McStats, d: StatDescriptor): Float64Array | Int32Array {
  return (s as unknown as Record<string, Float64Array | Int32Array>)[d.key]!;
}

/** Per task, the statistics served always and those on request (table order). */
const SERVED = {
  regression: servedSplit(STATS.regression),
  classification: servedSplit(STATS.classification),
};

function servedSplit(table: readonly StatDescriptor[]): {
  always: readonly StatDescriptor[];
  onRequest: readonly StatDescriptor[];
} {
  return { always: table.filter((d) => d.served === 'always'), onRequest: table.filter((d) => d.served !== 'always') };
}

/**
 * The statistics the record holds, in table order: those served always and the on-request ones asked
 * for. A record without on-request ones (most) gets a shared list: no array is made per call.
 */
export function servedStats(s: McStats): readonly StatDescriptor[] {
  const { always, onRequest } = SERVED[s.kind];
  if (!onRequest.some((d) => d.key in s)) return always;
  const table = STATS[s.kind];
  const held = table.filter((d) => d.served === 'always' || d.key in s);
  return held.length === table.length ? table : held;
}

/** Elements of a statistic for `rows` rows of `width` values. */
export function statLength(d: StatDescriptor, rows: number, width: number): number {
  return d.shape === 'row' ? rows : rows * width;
}

/** A zeroed array for each statistic of a table, in table order (Int32Array for integer ones). */
export function allocateStats(
  table: readonly StatDescriptor[],
  rows: number,
  width: number,
): (Float64Array | Int32Array)[] {
  return table.map((d) => {
    const n = statLength(d, rows, width);
    return d.int ? new Int32Array(n) : new Float64Array(n);
  });
}

/**
 * A record in its canonical field order (the header, then the table's order, then raw samples), from
 * the arrays keyed by descriptor: every statistic served always, and those on request that are given. Every record is made here, so that two records with equal contents
 * are equal field by field, whichever side of the worker wire they come from.
 */
export function makeStats(
  kind: Task,
  header: {
    rows: number;
    width: number;
    samples: number;
    level?: number;
    intervalMethod?: IntervalMethod;
    /** Each row's samples: kept (as `rowSamples`) only when they differ. */
    rowSamples?: Int32Array;
  },
  arrays: Readonly<Record<string, Float64Array | Int32Array>>,
  raw?: Float32Array,
): McStats {
  const s: Record<string, unknown> =
    kind === 'regression'
      ? {
          kind,
          rows: header.rows,
          outputs: header.width,
          samples: header.samples,
          level: header.level ?? Number.NaN,
          intervalMethod: header.intervalMethod ?? 'gaussian',
        }
      : { kind, rows: header.rows, classes: header.width, samples: header.samples };
  for (const d of STATS[kind]) {
    const a = arrays[d.key];
    if (!a && d.served === 'on-request') continue;
    const n = statLength(d, header.rows, header.width);
    if (!a || a.length !== n)
      throw new Error(`statistics record: "${d.key}" needs ${n} values, got ${a ? a.length : 'none'}`);
    s[d.key] = a;
  }
  if (raw) s.raw = raw;
  if (header.rowSamples) {
    const r = header.rowSamples;
    if (r.length !== header.rows)
      throw new Error(`statistics record: ${r.length} row sample counts for ${header.rows} rows`);
    if (r.some((t) => t !== r[0])) s.rowSamples = r;
  }
  return s as unknown as McStats;
}

/** makeStats from arrays in the order of `table` (as allocateStats made them; a servedTable of the task's). */
export function makeStatsInOrder(
  kind: Task,
  header: Parameters<typeof makeStats>[1],
  table: readonly StatDescriptor[],
  values: readonly (Float64Array | Int32Array)[],
  raw?: Float32Array,
): McStats {
  const arrays: Record<string, Float64Array | Int32Array> = {};
  table.forEach((d, j) => {
    arrays[d.key] = values[j]!;
  });
  return makeStats(kind, header, arrays, raw);
}
