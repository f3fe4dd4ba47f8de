/**
 * The load-time self-check: the graphs the loader built, run as requests run them, must treat rows
 * independently (eval) and, with dropout masks of 1, repeat the eval graph (each MC graph), at every
 * run shape requests produce. What it runs on and how close is close enough are parameters
 * (SelfCheckOptions), so a model kind with other inputs or other numerics brings its own.
 */
import { boundedInput } from './check-input.js';
import { ModelFormatError } from './inspect.js';

/** One run of the load-time check: `samples` repeats of `rows` rows in one MC run. */
export interface CheckRun {
  rows: number;
  samples: number;
  /** Which request shape it stands for (named in the error). */
  why: string;
}

/**
 * The MC runs the load-time check makes, in this order in one session: the shapes requests produce
 * (one row; a few rows; one sample and several; a batch of 32; a large request's full chunk of
 * ≤ maxRunRows rows followed by its shorter last chunk; the largest run of one row; a request of
 * maxRunRows rows, one sample per run). A graph whose declared shapes are false for tiled rows (the
 * dynamo exporter's value_info) fails here instead of at request time: the old check ran one sample
 * only, where tiling changes nothing.
 */
export function selfCheckPlan(maxRunRows: number): CheckRun[] {
  const M = Math.max(1, Math.floor(maxRunRows));
  const plan: CheckRun[] = [
    { rows: 1, samples: 1, why: 'one row, one sample' },
    { rows: 3, samples: 1, why: 'a few rows, one sample' },
    { rows: 1, samples: 2, why: 'one row, two samples' },
    { rows: 3, samples: 5, why: 'a few rows, several samples' },
    { rows: 32, samples: Math.max(1, Math.min(10, Math.floor(M / 32))), why: 'a batch of 32 rows' },
  ];
  const full = Math.floor(M / 7);
  if (full >= 2) {
    plan.push({ rows: 7, samples: full, why: `a full chunk of a large request (${7 * full} ≤ ${M} rows in one run)` });
    plan.push({ rows: 7, samples: Math.max(1, Math.floor(full / 3)), why: "the same request's shorter last chunk" });
  }
  plan.push({ rows: 1, samples: M, why: `one row, the largest run (${M} samples)` });
  plan.push({ rows: M, samples: 1, why: `a request of ${M} rows (one sample per run)` });
  return plan;
}

/** What the load-time check drives: the graphs the loader built, run as requests run them. */
export interface ServingRuns {
  features: number;
  /** Values per row of the output served (classes for a classifier). */
  outputSize: number;
  maxRunRows: number;
  /** The eval graph on `rows` rows (rows × features), returning rows × outputSize values. */
  evalRun(x: Float32Array, rows: number): Promise<Float32Array>;
  /**
   * Each MC graph the loader built (plain, shared prefix): one run of `samples` repeats of `rows` rows
   * with every dropout mask 1, exactly as a request runs it otherwise (same feeds, same repeats input),
   * returning samples × rows × outputSize values, sample-major.
   */
  mcGraphs: { label: string; runOnes(x: Float32Array, rows: number, samples: number): Promise<Float32Array> }[];
}

/**
 * Whether a value `a` agrees with the reference `b`, where `scale` is the largest |value| of the
 * reference run it belongs to (the output's magnitude).
 */
export type Agreement = (a: number, b: number, scale: number) => boolean;

/**
 * Relative float32 disagreement allowed per accumulating layer (Conv, Gemm, MatMul, …). Two kernels
 * (a batch of 1 and of 32 are blocked differently) sum a dot product in different orders: each layer
 * adds rounding of order 2⁻²⁴·√n of its largest terms, and later layers carry it on, so the error of
 * the output relative to its magnitude grows about linearly with depth. 1e-4 held for the tabular
 * networks (≤ 4 such layers); a flattened mobilenet_v3_small (≈ 54) differs by up to 2.6e-3 of its
 * largest logit on saturating inputs while agreeing with PyTorch to 2.5e-5 on real ones.
 */
export const RTOL_PER_LAYER = 2.5e-5;

/** The relative tolerance for a graph of `depth` accumulating layers (never below 4 layers' worth). */
export const rtolForDepth = (depth: number): number => RTOL_PER_LAYER * Math.max(4, depth);

/**
 * |a − b| ≤ rtol·(1 + scale): scaled to the output's magnitude rather than to each element, because
 * float32 rounding is relative to the largest terms summed, not to a result that cancels to near 0;
 * the 1 is the absolute floor for outputs of magnitude below 1. NaN agrees with NaN.
 */
export function agreementFor(depth: number): Agreement {
  const rtol = rtolForDepth(depth);
  return (a, b, scale) => Math.abs(a - b) <= rtol * (1 + scale) || (Number.isNaN(a) && Number.isNaN(b));
}

/** The agreement of a shallow (≤ 4-layer) graph: 1e-4 of the output's magnitude (absolute below 1). */
export const DEFAULT_AGREEMENT: Agreement = agreementFor(4);

/** The largest finite |value| of a run (0 when there is none). */
export function magnitude(values: Float32Array): number {
  let m = 0;
  for (const v of values) if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  return m;
}

export interface SelfCheckOptions {
  /** The MC runs to make (selfCheckPlan of the runs' maxRunRows by default). */
  plan: CheckRun[];
  /** `rows` rows of input (rows × features values); row i must not depend on `rows` (check-input.ts). */
  input: (rows: number, features: number) => Float32Array;
  /** How close a run's value must be to the reference. */
  agree: Agreement;
}

/** The eval graph's rows: each row of these batches must equal a run of that row alone. */
const INDEPENDENCE_BATCHES = [2, 7, 32];

/**
 * The load-time self-check: throws ModelFormatError naming the graph, the run and the reason when
 *  1. the eval graph does not treat rows independently: on 2, 7 and 32 rows, each row must equal a run
 *     of that row alone (this is what a relaxed fixed batch relies on), or a run fails;
 *  2. an MC graph fails or differs from the eval graph, with masks of 1, for any run of the plan:
 *     row t·N + i of each run must equal eval row i (the rows are tiled sample-major), and the output
 *     must hold samples × rows × outputSize values.
 * Values agree by `options.agree` (1e-4 of the output's magnitude by default), on `options.input`
 * (bounded smooth rows by default, check-input.ts).
 */
export async function selfCheck(runs: ServingRuns, options: Partial<SelfCheckOptions> = {}): Promise<void> {
  const plan = options.plan ?? selfCheckPlan(runs.maxRunRows);
  const maxRows = Math.max(32, ...plan.map((p) => p.rows));
  const check: CheckContext = {
    runs,
    x: (options.input ?? boundedInput)(maxRows, runs.features),
    agree: options.agree ?? DEFAULT_AGREEMENT,
  };
  await checkRowsIndependent(check);
  const evalCache = new Map<number, Float32Array>();
  for (const g of runs.mcGraphs) for (const run of plan) await checkMcRun(check, g, run, evalCache);
}

interface CheckContext {
  runs: ServingRuns;
  /** The input rows (the first rows of each run). */
  x: Float32Array;
  agree: Agreement;
}

/** onnxruntime's messages carry its source location before the reason: keep the reason. */
const firstLine = (err: unknown): string =>
  String((err as Error)?.message ?? err)
    .split('\n')[0]!
    .replace(/\/\S+\.cc:\d+ .*?\[ONNXRuntimeError\] : \d+ : \w+ : /, '')
    .slice(0, 400);

/** The eval graph on `rows` rows from row `at`, checked for its length. */
async function evalOf(c: CheckContext, rows: number, what: string, at = 0): Promise<Float32Array> {
  const F = c.runs.features;
  const K = c.runs.outputSize;
  let out: Float32Array;
  try {
    out = await c.runs.evalRun(c.x.slice(at * F, (at + rows) * F), rows);
  } catch (err) {
    throw new ModelFormatError(`self-check: the eval graph fails for ${rows} rows (${what}): ${firstLine(err)}`);
  }
  if (out.length !== rows * K)
    throw new ModelFormatError(
      `self-check: the eval graph gives ${out.length} values for ${rows} rows (${what}); ${rows * K} expected`,
    );
  return out.slice();
}

/** 1. Rows are independent in the eval graph. */
async function checkRowsIndependent(c: CheckContext): Promise<void> {
  const K = c.runs.outputSize;
  const single: Float32Array[] = [];
  for (let i = 0; i < Math.max(...INDEPENDENCE_BATCHES); i++) single.push(await evalOf(c, 1, 'one row', i));
  const scale = Math.max(...single.map(magnitude));
  for (const rows of INDEPENDENCE_BATCHES) {
    const out = await evalOf(c, rows, `a batch of ${rows}`);
    for (let i = 0; i < rows; i++) {
      for (let k = 0; k < K; k++) {
        if (!c.agree(out[i * K + k]!, single[i]![k]!, scale)) {
          throw new ModelFormatError(
            `self-check: the eval graph gives ${out[i * K + k]} for row ${i} of a batch of ${rows} but ${single[i]![k]} for that row alone: the graph mixes rows, so it cannot serve batches`,
          );
        }
      }
    }
  }
}

/** 2. One MC graph, with masks of 1, repeats the eval graph for one run of the plan. */
async function checkMcRun(
  c: CheckContext,
  g: ServingRuns['mcGraphs'][number],
  run: CheckRun,
  evalCache: Map<number, Float32Array>,
): Promise<void> {
  const F = c.runs.features;
  const K = c.runs.outputSize;
  const ref = evalCache.get(run.rows) ?? (await evalOf(c, run.rows, run.why));
  evalCache.set(run.rows, ref);
  const what = `the ${g.label} Monte Carlo graph for ${run.rows} rows × ${run.samples} samples (${run.why})`;
  let out: Float32Array;
  try {
    out = await g.runOnes(c.x.slice(0, run.rows * F), run.rows, run.samples);
  } catch (err) {
    throw new ModelFormatError(`self-check: ${what} fails: ${firstLine(err)}`);
  }
  if (out.length !== run.samples * run.rows * K)
    throw new ModelFormatError(
      `self-check: ${what} gives ${out.length} values; ${run.samples * run.rows * K} expected`,
    );
  const scale = magnitude(ref);
  for (let t = 0; t < run.samples; t++) {
    for (let j = 0; j < run.rows * K; j++) {
      const v = out[t * run.rows * K + j]!;
      if (!c.agree(v, ref[j]!, scale)) {
        throw new ModelFormatError(
          `self-check: ${what} with dropout masks of 1 gives ${v} for sample ${t} of row ${Math.floor(j / K)} where the eval graph gives ${ref[j]}`,
        );
      }
    }
  }
}
