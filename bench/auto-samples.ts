/**
 * samples "auto" against fixed T (issue 22), on any trained model folder (`model.onnx` + `model.json`, as
 * the trainer writes it: the shipped models, a UCI split's model kept by `npm run bench -- uci --keep`).
 * One-row requests through the model core (OnnxModel.sample, what a worker runs), over rows spread across
 * the model's data and several seeds. Per method (fixed T = 100 and 1000, auto at each tolerance): the
 * mean samples used, the CPU time per request (this process: user + system, all its threads), and the
 * Monte Carlo error of what is served against a reference of `--truth` samples: the served std's RMS
 * relative error and the mean's RMS error in units of the std (regression), the class probabilities' RMS
 * error (classification); and the fixed T that would give the same error of what is served (the std, or
 * the probabilities): 1000·(error at T = 1000 / error)², as the error goes with 1/√T, and its CPU on the
 * line through the two fixed T. Times: the pass with the least CPU of `--passes` interleaved passes (run
 * it under `flock /tmp/perf.lock`: the machine is shared). Then all the rows in one request: the
 * row-samples it draws (each row stops on its own: the sum of the rows' samples) against each row alone.
 * Then multi-row requests (`--batch-rows`, default 64 rows of the data): per tolerance, the CPU per
 * request, samples_used (the slowest row's), the mean samples per row, and the row-samples drawn against
 * the whole-request stop's rows × samples_used (what a request that stops at its slowest row draws at
 * least); a build without per-row stopping (no `rowSamples` in its record) draws rows × samples_used.
 *
 *   npx tsx bench/auto-samples.ts [--model DIR [--data CSV]]... [--rows 20] [--seeds 10] [--truth 20000]
 *     [--tolerances 0.1,0.05,0.02,0.01] [--passes 3] [--batch-rows 64] [--batch-only] [--out FILE.json]
 *
 * `--batch-only`: only the multi-row requests (no reference, no one-row methods).
 *
 * Without --model: the shipped models. A model's rows come from its --data (paired in order), else
 * data/<name>.csv, else the training CSV the UCI harness keeps beside its models (<dataset>-<split> →
 * ../../train_<split>.csv); columns are matched by the card's feature names.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { McOptions } from '../src/model/model.js';
import { OnnxModel } from '../src/model/onnx/model.js';
import type { McStats } from '../src/uncertainty/record.js';

export interface AutoBenchOptions {
  models: { dir: string; data: string | null }[];
  rows: number;
  seeds: number;
  truth: number;
  tolerances: number[];
  passes: number;
  /** Rows of the multi-row requests. */
  batchRows: number;
  /** Only the multi-row requests. */
  batchOnly: boolean;
  out: string | null;
  log: (line: string) => void;
}

/** Parse the command line (see the file comment); throws naming a bad option. */
export function parseAutoArgs(argv: string[]): AutoBenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string', multiple: true },
      data: { type: 'string', multiple: true },
      rows: { type: 'string', default: '20' },
      seeds: { type: 'string', default: '10' },
      truth: { type: 'string', default: '20000' },
      tolerances: { type: 'string', default: '0.1,0.05,0.02,0.01' },
      passes: { type: 'string', default: '3' },
      'batch-rows': { type: 'string', default: '64' },
      'batch-only': { type: 'boolean', default: false },
      out: { type: 'string' },
    },
  });
  const dirs = values.model ?? ['models/diabetes', 'models/wine'];
  const data = values.data ?? [];
  if (data.length > dirs.length) throw new Error(`--data given ${data.length} times for ${dirs.length} --model`);
  const int = (name: string, v: string): number => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < 1) throw new Error(`--${name} ${v}: expected a positive integer`);
    return x;
  };
  const tolerances = values.tolerances.split(',').map(Number);
  if (tolerances.some((t) => !(t > 0 && t <= 1))) throw new Error(`--tolerances ${values.tolerances}: each in (0, 1]`);
  return {
    models: dirs.map((dir, i) => ({ dir, data: data[i] ?? null })),
    rows: int('rows', values.rows),
    seeds: int('seeds', values.seeds),
    truth: int('truth', values.truth),
    tolerances,
    passes: int('passes', values.passes),
    batchRows: int('batch-rows', values['batch-rows']),
    batchOnly: values['batch-only'],
    out: values.out ?? null,
    log: (line) => process.stdout.write(`${line}\n`),
  };
}

/** The CSV a model's rows come from: the one given, data/<name>.csv, or the UCI harness's kept training split. */
export function dataCsvFor(dir: string, given: string | null): string {
  if (given) return given;
  const name = basename(dir);
  const split = /-(\d+)$/.exec(name);
  const candidates = [join('data', `${name}.csv`), ...(split ? [join(dir, '..', '..', `train_${split[1]}.csv`)] : [])];
  const found = candidates.find((f) => existsSync(f));
  if (!found) throw new Error(`model ${dir}: no data for its rows (tried ${candidates.join(', ')}); give --data CSV`);
  return found;
}

/** `n` rows spread evenly over a CSV (classes may be in blocks), features in the model's order. */
export function dataRows(csv: string, features: readonly string[], n: number): Float32Array[] {
  const [header, ...lines] = readFileSync(csv, 'utf8').trim().split('\n');
  const cols = header!.split(',').map((c) => c.trim());
  const at = features.map((f) => cols.indexOf(f));
  const missing = features.filter((_, k) => at[k]! < 0);
  if (missing.length) throw new Error(`${csv}: no column for the model's features ${missing.join(', ')}`);
  const picked = Array.from(
    { length: Math.min(n, lines.length) },
    (_, i) => lines[Math.floor((i * lines.length) / Math.min(n, lines.length))]!,
  );
  return picked.map((line) => {
    const cells = line.split(',');
    return Float32Array.from(at, (j) => Number(cells[j]));
  });
}

/** The fixed T whose MC error equals `error`, from the error at T = 1000 (the error goes with 1/√T). */
export function fixedTAtEqualError(errorAt1000: number, error: number): number {
  return Math.round(1000 * (errorAt1000 / error) ** 2);
}

/** What a request serves, per output or class: the numbers whose MC error is measured. */
function served(s: McStats): { mean: number[]; std: number[] } {
  return s.kind === 'regression'
    ? { mean: Array.from(s.mean), std: Array.from(s.std) }
    : { mean: Array.from(s.probabilities), std: [] };
}

interface Method {
  name: string;
  tolerance: number | null;
  opts: (seed: number) => McOptions;
}

/** One method's figures over rows × seeds of one-row requests. */
export interface MethodResult {
  method: string;
  /** Mean samples per request. */
  samples: number;
  /** Mean samples per request, per row (its own stop, for the auto methods). */
  rowSamples: number[];
  /** CPU milliseconds per request (this process, user + system), the pass with the least. */
  cpuMs: number;
  /** Wall milliseconds per request in that pass. */
  wallMs: number;
  /** RMS relative error of the served std (regression; NaN for a classifier). */
  stdError: number;
  /** RMS error of the mean in units of the reference std (regression), of the probabilities (classification). */
  meanError: number;
  fixedTSameError: number;
  /** The CPU ms of that fixed T, on the line through fixed T = 100 and 1000 (a run's cost is affine in T). */
  fixedCpuMsSameError: number;
}

function methodsFor(tolerances: number[]): Method[] {
  return [
    ...[100, 1000].map((T) => ({
      name: `fixed T=${T}`,
      tolerance: null,
      opts: (seed: number): McOptions => ({ samples: T, interval: 0.9, seed }),
    })),
    ...tolerances.map((tolerance) => ({
      name: `auto tol=${tolerance}`,
      tolerance,
      opts: (seed: number): McOptions => ({ samples: 1000, interval: 0.9, seed, tolerance }),
    })),
  ];
}

type Truth = ReturnType<typeof served>;

async function measure(m: OnnxModel, rows: Float32Array[], method: Method, truth: Truth[], seeds: number) {
  let wallMs = 0;
  let cpuUs = 0;
  let stdErr2 = 0;
  let meanErr2 = 0;
  let n = 0;
  const rowSamples = rows.map(() => 0);
  for (let i = 0; i < rows.length; i++) {
    const ref = truth[i]!;
    for (let seed = 1; seed <= seeds; seed++) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const { stats } = await m.sample(rows[i]!, 1, method.opts(seed));
      const c = process.cpuUsage(c0);
      wallMs += performance.now() - t0;
      cpuUs += c.user + c.system;
      rowSamples[i]! += stats.samples / seeds;
      const got = served(stats);
      for (let k = 0; k < got.mean.length; k++) {
        // regression: the mean's error in units of the reference std; classification: absolute
        const unit = m.task === 'regression' ? ref.std[k]! : 1;
        meanErr2 += ((got.mean[k]! - ref.mean[k]!) / unit) ** 2;
        if (m.task === 'regression') stdErr2 += ((got.std[k]! - ref.std[k]!) / ref.std[k]!) ** 2;
      }
      n += got.mean.length;
    }
  }
  return {
    samples: rowSamples.reduce((a, b) => a + b, 0) / rows.length,
    rowSamples,
    cpuMs: cpuUs / 1000 / (rows.length * seeds),
    wallMs: wallMs / (rows.length * seeds),
    stdError: m.task === 'regression' ? Math.sqrt(stdErr2 / n) : NaN,
    meanError: Math.sqrt(meanErr2 / n),
  };
}

/** The whole-request stop at one tolerance: all the rows in one request against each row's own stop. */
export interface BatchWaste {
  tolerance: number;
  rows: number;
  /** Mean samples_used of the all-rows request (over seeds): its slowest row's. */
  requestSamples: number;
  /** Mean samples per row it drew (each row stops on its own; rows × samples_used without per-row stopping). */
  drawnPerRow: number;
  /** Mean over rows of the row's own stop (one-row requests, mean over seeds). */
  rowMeanSamples: number;
  rowMaxSamples: number;
  /** Share of the request's row-samples beyond each row's own stop alone: 1 − rowMean / drawnPerRow. */
  wasted: number;
}

async function batchWaste(
  m: OnnxModel,
  rows: Float32Array[],
  r: MethodResult,
  tolerance: number,
  seeds: number,
): Promise<BatchWaste> {
  const x = new Float32Array(rows.length * rows[0]!.length);
  for (const [i, row] of rows.entries()) x.set(row, i * row.length);
  let used = 0;
  let drawn = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const { stats } = await m.sample(x, rows.length, { samples: 1000, interval: 0.9, seed, tolerance });
    used += stats.samples / seeds;
    drawn += rowSamplesDrawn(stats) / rows.length / seeds;
  }
  const rowMean = r.rowSamples.reduce((a, b) => a + b, 0) / rows.length;
  return {
    tolerance,
    rows: rows.length,
    requestSamples: used,
    drawnPerRow: drawn,
    rowMeanSamples: rowMean,
    rowMaxSamples: Math.max(...r.rowSamples),
    wasted: 1 - rowMean / drawn,
  };
}

/** The row-samples a request drew: the sum of its rows' samples (rows × samples when they agree). */
function rowSamplesDrawn(s: McStats): number {
  return s.rowSamples ? s.rowSamples.reduce((a, b) => a + b, 0) : s.rows * s.samples;
}

/** Multi-row "auto" requests at one tolerance (see the file comment). */
export interface MultiRowResult {
  tolerance: number;
  rows: number;
  /** CPU ms per request (this process, user + system), the pass with the least. */
  cpuMs: number;
  /** Mean samples_used (the slowest row's). */
  requestSamples: number;
  /** Mean samples per row drawn. */
  drawnPerRow: number;
  /** Share of the whole-request stop's rows × samples_used not drawn: 1 − drawnPerRow / requestSamples. */
  saved: number;
}

async function multiRow(m: OnnxModel, x: Float32Array, rows: number, tolerance: number, o: AutoBenchOptions) {
  const run = (seed: number) => m.sample(x, rows, { samples: 1000, interval: 0.9, seed, tolerance });
  await run(0); // warm-up
  let best = Number.POSITIVE_INFINITY;
  let used = 0;
  let drawn = 0;
  for (let p = 0; p < o.passes; p++) {
    used = 0;
    drawn = 0;
    const c0 = process.cpuUsage();
    for (let seed = 1; seed <= o.seeds; seed++) {
      const { stats } = await run(seed);
      used += stats.samples / o.seeds;
      drawn += rowSamplesDrawn(stats) / rows / o.seeds;
    }
    const c = process.cpuUsage(c0);
    best = Math.min(best, (c.user + c.system) / 1000 / o.seeds);
  }
  return { tolerance, rows, cpuMs: best, requestSamples: used, drawnPerRow: drawn, saved: 1 - drawn / used };
}

/** One model's results. */
export interface ModelAutoResult {
  model: string;
  dir: string;
  data: string;
  task: string;
  rows: number;
  methods: MethodResult[];
  batch: BatchWaste[];
  multiRow: MultiRowResult[];
}

async function timedPasses(m: OnnxModel, rows: Float32Array[], truth: Truth[], o: AutoBenchOptions) {
  const methods = methodsFor(o.tolerances);
  await measure(m, rows.slice(0, 2), methods[0]!, truth, o.seeds); // warm-up
  // passes interleave the methods, and each keeps its fastest pass (the answers, so the errors, repeat)
  const best: Awaited<ReturnType<typeof measure>>[] = [];
  for (let p = 0; p < o.passes; p++)
    for (const [k, method] of methods.entries()) {
      const r = await measure(m, rows, method, truth, o.seeds);
      if (!best[k] || r.cpuMs < best[k].cpuMs) best[k] = r;
    }
  // the served quantity: the std (regression), the probabilities (classification)
  const error = (r: (typeof best)[number]): number => (m.task === 'regression' ? r.stdError : r.meanError);
  const anchor = error(best[1]!);
  const [c100, c1000] = [best[0]!.cpuMs, best[1]!.cpuMs];
  return methods.map((method, k) => {
    const T = fixedTAtEqualError(anchor, error(best[k]!));
    return {
      method: method.name,
      ...best[k]!,
      fixedTSameError: T,
      fixedCpuMsSameError: c100 + ((c1000 - c100) * (T - 100)) / 900,
    };
  });
}

/** Measure one model folder (see the file comment). */
export async function benchModel(
  spec: AutoBenchOptions['models'][number],
  o: AutoBenchOptions,
): Promise<ModelAutoResult> {
  const name = basename(spec.dir);
  const m = await OnnxModel.load(name, join(spec.dir, 'model.onnx'), join(spec.dir, 'model.json'));
  try {
    const data = dataCsvFor(spec.dir, spec.data);
    const many = dataRows(data, m.features, o.batchRows);
    const x = new Float32Array(many.length * m.features.length);
    for (const [i, row] of many.entries()) x.set(row, i * row.length);
    const multi: MultiRowResult[] = [];
    for (const tolerance of o.tolerances) multi.push(await multiRow(m, x, many.length, tolerance, o));
    const base = { model: name, dir: spec.dir, data, task: m.task, multiRow: multi };
    if (o.batchOnly) return { ...base, rows: 0, methods: [], batch: [] };
    const rows = dataRows(data, m.features, o.rows);
    const truth: Truth[] = [];
    for (const x of rows)
      truth.push(served((await m.sample(x, 1, { samples: o.truth, interval: 0.9, seed: 1e6 })).stats));
    const methods = await timedPasses(m, rows, truth, o);
    const batch: BatchWaste[] = [];
    for (const [k, tolerance] of o.tolerances.entries())
      batch.push(await batchWaste(m, rows, methods[2 + k]!, tolerance, o.seeds));
    return { ...base, rows: rows.length, methods, batch };
  } finally {
    await m.close();
  }
}

function printModel(r: ModelAutoResult, o: AutoBenchOptions): void {
  o.log(`\n${r.model}: multi-row "auto" requests (${o.seeds} seeds; the pass with the least CPU of ${o.passes})`);
  o.log('| rows | tolerance | CPU ms/request | samples_used | samples per row drawn | saved vs whole-request stop |');
  o.log('|---:|---:|---:|---:|---:|---:|');
  for (const b of r.multiRow)
    o.log(
      `| ${b.rows} | ${b.tolerance} | ${b.cpuMs.toFixed(3)} | ${b.requestSamples.toFixed(1)} | ${b.drawnPerRow.toFixed(1)} | ${(100 * b.saved).toFixed(0)}% |`,
    );
  if (o.batchOnly) return;
  o.log(
    `\n${r.model} (${r.task}, ${r.dir}; ${r.rows} rows of ${r.data} × ${o.seeds} seeds, one-row requests; reference ${o.truth} samples)`,
  );
  const reg = r.task === 'regression';
  o.log(
    '| method | samples | CPU ms/request | wall ms/request | std rel. RMSE | mean RMSE | fixed T at equal error | its CPU ms |',
  );
  o.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const x of r.methods)
    o.log(
      `| ${x.method} | ${x.samples.toFixed(1)} | ${x.cpuMs.toFixed(3)} | ${x.wallMs.toFixed(3)} | ${reg ? x.stdError.toExponential(2) : '–'} | ${x.meanError.toExponential(2)} | ${x.fixedTSameError} | ${x.fixedCpuMsSameError.toFixed(3)} |`,
    );
  o.log(`all ${r.rows} rows in one request:`);
  for (const b of r.batch)
    o.log(
      `  tol ${b.tolerance}: request T ${b.requestSamples.toFixed(1)}, drawn per row ${b.drawnPerRow.toFixed(1)}; rows alone: mean ${b.rowMeanSamples.toFixed(1)}, slowest ${b.rowMaxSamples.toFixed(1)}; row-samples past each row's own stop ${(100 * b.wasted).toFixed(0)}%`,
    );
}

/** Run every model of the options, print each, write the JSON (when asked); returns the results. */
export async function runAutoSamples(o: AutoBenchOptions): Promise<ModelAutoResult[]> {
  const results: ModelAutoResult[] = [];
  for (const spec of o.models) {
    const r = await benchModel(spec, o);
    printModel(r, o);
    results.push(r);
  }
  const { log: _log, ...settings } = o;
  if (o.out)
    writeFileSync(o.out, `${JSON.stringify({ date: new Date().toISOString(), settings, results }, null, 2)}\n`);
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    await runAutoSamples(parseAutoArgs(process.argv.slice(2)));
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exit(2);
  }
}
