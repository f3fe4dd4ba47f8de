/**
 * The Monte Carlo statistics record: one typed record per request, described once per task by a table
 * of descriptors. Everything that carries a statistic is derived from these tables:
 * - the record's TypeScript type (below),
 * - the worker wire (packStats / unpackStats, here),
 * - the /v1 JSON of an uncertainty prediction and its zod response schema (src/server/protocol/v1.ts,
 *   src/server/schemas/v1.ts),
 * - the V2 output tensors and the `mc_outputs` metadata (src/server/protocol/v2.ts).
 * So a new statistic is one descriptor here plus its computation in the accumulator (mc.ts), plus a
 * codec in protocol/v1.ts only when its /v1 JSON is not a plain number (or array) per row.
 *
 * Shapes: 'row' is one value per input row; 'row×width' one per row and output (regression) or class
 * (classification), row-major.
 */

import type { IntervalMethod } from './uncertainty.js';

export type Task = 'regression' | 'classification';

export interface StatDescriptor {
  /** The field of the record. */
  readonly key: string;
  readonly shape: 'row' | 'row×width';
  /** Integer values (class indices): an Int32Array in the record. */
  readonly int?: boolean;
  /**
   * The field of a /v1 uncertainty prediction, or null to leave it out. Plain statistics are a number
   * per row (an array per row when the model has several outputs); a field with a codec in
   * protocol/v1.ts (`interval`, `label`, `probabilities`) is built by it, and several statistics may
   * share one (`lower` and `upper` → `interval`).
   */
  readonly v1: string | null;
  /** The output tensor of a V2 Monte Carlo infer (FP32, [rows] or [rows, width]), or null. */
  readonly v2: string | null;
  /** For the API documentation (OpenAPI). */
  readonly description: string;
}

export const REGRESSION_STATS = [
  { key: 'mean', shape: 'row×width', v1: 'mean', v2: 'mean', description: 'Mean of the Monte Carlo samples' },
  {
    key: 'std',
    shape: 'row×width',
    v1: 'std',
    v2: 'std',
    description: 'Total predictive std √(epistemic_std² + aleatoric_std²)',
  },
  {
    key: 'epistemicStd',
    shape: 'row×width',
    v1: 'epistemic_std',
    v2: 'epistemic_std',
    description: "Std of the Monte Carlo samples of the mean × the card's epistemic_scale",
  },
  {
    key: 'aleatoricStd',
    shape: 'row×width',
    v1: 'aleatoric_std',
    v2: 'aleatoric_std',
    description:
      "Observation noise: the card's aleatoric_std (homoscedastic; 0 when absent), or per row √(MC mean of exp(log_variance) + aleatoric_std²) (heteroscedastic)",
  },
  {
    key: 'lower',
    shape: 'row×width',
    v1: 'interval',
    v2: 'lower',
    description:
      'Lower end of the central interval: mean − z·std (gaussian, z = Φ⁻¹((1+level)/2)) or mean − q·std (conformal, q the split-conformal quantile)',
  },
  {
    key: 'upper',
    shape: 'row×width',
    v1: 'interval',
    v2: 'upper',
    description: 'Upper end of the central interval: mean + z·std or mean + q·std',
  },
] as const satisfies readonly StatDescriptor[];

export const CLASSIFICATION_STATS = [
  {
    key: 'label',
    shape: 'row',
    int: true,
    v1: 'label',
    v2: null,
    description: 'The class with the highest mean probability',
  },
  {
    key: 'probabilities',
    shape: 'row×width',
    v1: 'probabilities',
    v2: 'probabilities',
    description: "Mean of the per-sample softmax of logits / the card's temperature",
  },
  {
    key: 'entropy',
    shape: 'row',
    v1: 'entropy',
    v2: 'entropy',
    description: 'Entropy of the mean probabilities (nats): total uncertainty',
  },
  {
    key: 'mutualInformation',
    shape: 'row',
    v1: 'mutual_information',
    v2: 'mutual_information',
    description: 'Entropy of the mean − mean entropy (nats): epistemic part (BALD)',
  },
  {
    key: 'variationRatio',
    shape: 'row',
    v1: 'variation_ratio',
    v2: 'variation_ratio',
    description: '1 − share of samples voting for the modal label',
  },
] as const satisfies readonly StatDescriptor[];

/** The descriptor table of each task. */
export const STATS: { readonly [T in Task]: readonly StatDescriptor[] } = {
  regression: REGRESSION_STATS,
  classification: CLASSIFICATION_STATS,
};

type Arrays<T extends readonly StatDescriptor[]> = {
  [D in T[number] as D['key']]: D extends { int: true } ? Int32Array : Float64Array;
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
} & Arrays<typeof REGRESSION_STATS>;

export type ClassificationStats = {
  kind: 'classification';
  rows: number;
  classes: number;
  samples: number;
  /** samples × rows × classes (probabilities), when asked for */
  raw?: Float32Array;
} & Arrays<typeof CLASSIFICATION_STATS>;

export type McStats = RegressionStats | ClassificationStats;

/** Outputs (regression) or classes (classification): the width of a 'row×width' statistic. */
export function statsWidth(s: McStats): number {
  return s.kind === 'regression' ? s.outputs : s.classes;
}

/** The values of one statistic of the record. */
export function statValues(s: McStats, d: StatDescriptor): Float64Array | Int32Array {
  return (s as unknown as Record<string, Float64Array | Int32Array>)[d.key]!;
}

/** Elements of a statistic for `rows` rows of `width` values. */
export function statLength(d: StatDescriptor, rows: number, width: number): number {
  return d.shape === 'row' ? rows : rows * width;
}

/**
 * A record in its canonical field order (the header, then the table's order, then raw samples), from
 * the arrays keyed by descriptor. Every record is made here, so that two records with equal contents
 * are equal field by field, whichever side of the worker wire they come from.
 */
export function makeStats(
  kind: Task,
  header: { rows: number; width: number; samples: number; level?: number; intervalMethod?: IntervalMethod },
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
    const n = statLength(d, header.rows, header.width);
    if (!a || a.length !== n)
      throw new Error(`statistics record: "${d.key}" needs ${n} values, got ${a ? a.length : 'none'}`);
    s[d.key] = a;
  }
  if (raw) s.raw = raw;
  return s as unknown as McStats;
}

// --- the worker wire ---------------------------------------------------------------------------------

/**
 * A fingerprint of both tables (keys, shapes, order): it opens every packed record, so that a reader
 * built from other tables refuses to read instead of misreading.
 */
const WIRE_TAG = (() => {
  let h = 0x811c9dc5;
  const text = (['regression', 'classification'] as const)
    .map((t) => `${t}:${STATS[t].map((d) => `${d.key}/${d.shape}${d.int ? '/int' : ''}`).join(',')}`)
    .join(';');
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
})();
const HEADER = 10;

/**
 * Statistics of several requests in one Float64Array, so that a worker hands a batch's results back as
 * one transferred buffer (structured-cloning several typed arrays per request cost the main thread more
 * than the Monte Carlo itself). Per result: a header [tag, task (0 regression, 1 classification), rows,
 * width, samples, level, interval method (0 gaussian, 1 conformal), seed, raw length, statistic count],
 * the statistics in table order (integers
 * as floats), then the raw samples. unpackStats checks the tag, the count and every length.
 */
export function packStats(results: readonly { stats: McStats; seed: number }[]): Float64Array {
  let size = 0;
  for (const { stats: s } of results) {
    size += HEADER + (s.raw ? s.raw.length : 0);
    for (const d of STATS[s.kind]) size += statLength(d, s.rows, statsWidth(s));
  }
  const data = new Float64Array(size);
  let o = 0;
  for (const { stats: s, seed } of results) {
    const table = STATS[s.kind];
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
        table.length,
      ],
      o,
    );
    o += HEADER;
    for (const d of table) {
      const a = statValues(s, d);
      data.set(a, o);
      o += a.length;
    }
    if (s.raw) {
      data.set(s.raw, o);
      o += s.raw.length;
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
    return data.subarray(o, (o += n));
  };
  while (o < data.length) {
    const h = take(HEADER);
    const [tag, task, rows, width, samples, level, method, seed, rawLength, count] = [
      h[0]!,
      h[1]!,
      h[2]!,
      h[3]!,
      h[4]!,
      h[5]!,
      h[6]!,
      h[7]!,
      h[8]!,
      h[9]!,
    ];
    if (tag !== WIRE_TAG)
      throw new Error(`MC wire: layout tag ${tag} is not this build's ${WIRE_TAG} (packed by other statistics tables)`);
    const kind: Task = task === 0 ? 'regression' : 'classification';
    const table = STATS[kind];
    if (count !== table.length)
      throw new Error(`MC wire: ${count} statistics for ${kind}, this build has ${table.length}`);
    const arrays: Record<string, Float64Array | Int32Array> = {};
    for (const d of table) {
      const a = take(statLength(d, rows, width));
      arrays[d.key] = d.int ? Int32Array.from(a) : a;
    }
    const raw = rawLength > 0 ? Float32Array.from(take(rawLength)) : undefined;
    out.push({
      stats: makeStats(
        kind,
        { rows, width, samples, level, intervalMethod: method === 1 ? 'conformal' : 'gaussian' },
        arrays,
        raw,
      ),
      seed,
    });
  }
  return out;
}
