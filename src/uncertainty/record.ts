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
  return field(s, d.key)!;
}

type Field = Float64Array | Int32Array | undefined;

/**
 * The record's field `key` (undefined when it does not hold it). A named load per key: `s[key]` saw
 * every field and both kinds of record at one site, a megamorphic keyed load (and `key in s` a
 * megamorphic keyed has) several times an answer (issue 20: about 2 k instructions of a V2 Monte Carlo
 * request, callgrind). Each case's load sees the records of one task. A key not listed here (a
 * statistic added to the tables of statistics.ts) takes the keyed load; a test holds the list to the tables.
 */
function field(s: McStats, key: string): Field {
  const r = s as Partial<Record<string, Field>> & { kind: string };
  if (r.kind === 'regression') {
    const g = s as Partial<
      Record<'mean' | 'std' | 'epistemicStd' | 'aleatoricStd' | 'lower' | 'upper' | 'quantile25' | 'quantile75', Field>
    >;
    switch (key) {
      case 'mean':
        return g.mean;
      case 'std':
        return g.std;
      case 'epistemicStd':
        return g.epistemicStd;
      case 'aleatoricStd':
        return g.aleatoricStd;
      case 'lower':
        return g.lower;
      case 'upper':
        return g.upper;
      case 'quantile25':
        return g.quantile25;
      case 'quantile75':
        return g.quantile75;
    }
  } else {
    const c = s as Partial<
      Record<'label' | 'probabilities' | 'entropy' | 'mutualInformation' | 'variationRatio', Field>
    >;
    switch (key) {
      case 'label':
        return c.label;
      case 'probabilities':
        return c.probabilities;
      case 'entropy':
        return c.entropy;
      case 'mutualInformation':
        return c.mutualInformation;
      case 'variationRatio':
        return c.variationRatio;
    }
  }
  return r[key];
}

/** The keys `field` loads by name, per task (statistics.ts's tables; a test compares them). */
export const NAMED_FIELDS = {
  regression: ['mean', 'std', 'epistemicStd', 'aleatoricStd', 'lower', 'upper', 'quantile25', 'quantile75'],
  classification: ['label', 'probabilities', 'entropy', 'mutualInformation', 'variationRatio'],
} as const;

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
  // a loop, not some() with a closure; the field by name, not `key in s` (a megamorphic keyed has)
  let any = false;
  for (let i = 0; i < onRequest.length; i++) if (field(s, onRequest[i]!.key) !== undefined) any = true;
  if (!any) return always;
  const table = STATS[s.kind];
  const held = table.filter((d) => d.served === 'always' || field(s, d.key) !== undefined);
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
  header: StatsHeader,
  arrays: Readonly<Record<string, Float64Array | Int32Array>>,
  raw?: Float32Array,
): McStats {
  return makeStatsFrom(
    kind,
    header,
    STATS[kind].map((d) => arrays[d.key]),
    raw,
  );
}

type StatsHeader = {
  rows: number;
  width: number;
  samples: number;
  level?: number;
  intervalMethod?: IntervalMethod;
  /** Each row's samples: kept (as `rowSamples`) only when they differ. */
  rowSamples?: Int32Array;
};

/**
 * Whether a task's table lists its statistics served always before those on request, in NAMED_FIELDS'
 * order: then its records are made as one literal (recordLiteral) rather than a field at a time.
 */
function literalFits(kind: Task): boolean {
  const table = STATS[kind];
  const names: readonly string[] = NAMED_FIELDS[kind];
  const always = LITERAL_ALWAYS[kind];
  return (
    table.length === names.length && table.every((d, j) => d.key === names[j] && (d.served === 'always') === j < always)
  );
}

/** How many statistics served always recordLiteral writes first, per task (the rest are on request). */
const LITERAL_ALWAYS = { regression: 6, classification: 5 };

/** Per task: its records are made by recordLiteral (else a field at a time, recordByKeys). */
const LITERAL_OK = {
  regression: literalFits('regression'),
  classification: literalFits('classification'),
};

/**
 * makeStats with the arrays in table order (`values[j]` for STATS[kind][j], undefined for an on-request
 * statistic not given). The record's fields are set by name (a literal per task), not by `s[d.key]`: a
 * keyed store per statistic, megamorphic, that built each record's map a field at a time (issue 20:
 * the worker's answers are unpacked into records on the main thread, one per Monte Carlo request).
 */
export function makeStatsFrom(
  kind: Task,
  header: StatsHeader,
  values: readonly (Float64Array | Int32Array | undefined)[],
  raw?: Float32Array,
): McStats {
  const table = STATS[kind];
  for (let j = 0; j < table.length; j++) {
    const d = table[j]!;
    const a = values[j];
    if (!a && d.served === 'on-request') continue;
    const n = statLength(d, header.rows, header.width);
    if (!a || a.length !== n)
      throw new Error(`statistics record: "${d.key}" needs ${n} values, got ${a ? a.length : 'none'}`);
  }
  const s = LITERAL_OK[kind] ? recordLiteral(kind, header, values) : recordByKeys(kind, header, values);
  if (raw) s.raw = raw;
  if (header.rowSamples) {
    const r = header.rowSamples;
    if (r.length !== header.rows)
      throw new Error(`statistics record: ${r.length} row sample counts for ${header.rows} rows`);
    if (r.some((t) => t !== r[0])) s.rowSamples = r;
  }
  return s as unknown as McStats;
}

type Writable = Record<string, unknown>;

/** The header fields of a task's record, in their order. */
function headerOf(kind: Task, header: StatsHeader): Writable {
  return kind === 'regression'
    ? {
        kind,
        rows: header.rows,
        outputs: header.width,
        samples: header.samples,
        level: header.level ?? Number.NaN,
        intervalMethod: header.intervalMethod ?? 'gaussian',
      }
    : { kind, rows: header.rows, classes: header.width, samples: header.samples };
}

/** The record a field at a time (a table whose order recordLiteral does not know). */
function recordByKeys(
  kind: Task,
  header: StatsHeader,
  values: readonly (Float64Array | Int32Array | undefined)[],
): Writable {
  const s = headerOf(kind, header);
  STATS[kind].forEach((d, j) => {
    if (values[j]) s[d.key] = values[j];
  });
  return s;
}

/** The record as one literal per task, in NAMED_FIELDS' (the tables') order; on-request fields after, when given. */
function recordLiteral(kind: Task, h: StatsHeader, v: readonly (Float64Array | Int32Array | undefined)[]): Writable {
  if (kind === 'regression') {
    const s: Writable = {
      kind,
      rows: h.rows,
      outputs: h.width,
      samples: h.samples,
      level: h.level ?? Number.NaN,
      intervalMethod: h.intervalMethod ?? 'gaussian',
      mean: v[0],
      std: v[1],
      epistemicStd: v[2],
      aleatoricStd: v[3],
      lower: v[4],
      upper: v[5],
    };
    if (v[6]) s.quantile25 = v[6];
    if (v[7]) s.quantile75 = v[7];
    return s;
  }
  return {
    kind,
    rows: h.rows,
    classes: h.width,
    samples: h.samples,
    label: v[0],
    probabilities: v[1],
    entropy: v[2],
    mutualInformation: v[3],
    variationRatio: v[4],
  };
}

/** makeStats from arrays in the order of `table` (as allocateStats made them; a servedTable of the task's). */
export function makeStatsInOrder(
  kind: Task,
  header: Parameters<typeof makeStats>[1],
  table: readonly StatDescriptor[],
  values: readonly (Float64Array | Int32Array)[],
  raw?: Float32Array,
): McStats {
  const all = STATS[kind];
  const aligned: (Float64Array | Int32Array | undefined)[] = new Array(all.length).fill(undefined);
  table.forEach((d, j) => {
    aligned[all.indexOf(d)] = values[j];
  });
  return makeStatsFrom(kind, header, aligned, raw);
}
