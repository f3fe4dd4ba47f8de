/**
 * samples "auto" against fixed T (issue 22): on the shipped models, one-row requests through the model
 * core (OnnxModel.sample, as the data plane runs "auto": inline), over the first rows of their data sets
 * and several seeds. Per method: the mean samples used, the time per request, and the Monte Carlo error
 * of what is served against a reference of `--truth` samples: the served std's RMS relative error and
 * the mean's RMS error in units of the std (regression), the class probabilities' RMS error
 * (classification), and the fixed T that would give the same error of what is served (the std for a
 * regression, the probabilities for a classifier): 1000·(error at T = 1000 / error)², as the error goes
 * with 1/√T. Times: the fastest of `--passes` passes (the machine is shared).
 *
 *   npx tsx bench/auto-samples.ts [--rows 20] [--seeds 10] [--truth 20000] [--tolerances 0.1,0.05,0.02,0.01] [--passes 3]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { McOptions } from '../src/model/model.js';
import { OnnxModel } from '../src/model/onnx/model.js';
import type { McStats } from '../src/uncertainty/record.js';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '20' },
    seeds: { type: 'string', default: '10' },
    truth: { type: 'string', default: '20000' },
    tolerances: { type: 'string', default: '0.1,0.05,0.02,0.01' },
    passes: { type: 'string', default: '3' },
  },
});
const ROWS = Number(args.rows);
const SEEDS = Number(args.seeds);
const TRUTH = Number(args.truth);
const TOLERANCES = args.tolerances!.split(',').map(Number);
const PASSES = Number(args.passes);

/** `n` rows spread evenly over data/<name>.csv (its classes are in blocks), features in the model's order. */
function dataRows(name: string, features: readonly string[], n: number): Float32Array[] {
  const [header, ...lines] = readFileSync(`data/${name}.csv`, 'utf8').trim().split('\n');
  const cols = header!.split(',');
  const at = features.map((f) => cols.indexOf(f));
  const picked = Array.from(
    { length: Math.min(n, lines.length) },
    (_, i) => lines[Math.floor((i * lines.length) / n)]!,
  );
  return picked.map((line) => {
    const cells = line.split(',');
    return Float32Array.from(at, (j) => Number(cells[j]));
  });
}

/** What a request serves, per output or class: the numbers whose MC error is measured. */
function served(s: McStats): { mean: number[]; std: number[] } {
  return s.kind === 'regression'
    ? { mean: Array.from(s.mean), std: Array.from(s.std) }
    : { mean: Array.from(s.probabilities), std: [] };
}

interface Method {
  name: string;
  opts: (seed: number) => McOptions;
}

interface Tally {
  samples: number;
  ms: number;
  stdErr2: number;
  meanErr2: number;
  n: number;
}

async function measure(m: OnnxModel, rows: Float32Array[], method: Method, truth: ReturnType<typeof served>[]) {
  const t: Tally = { samples: 0, ms: 0, stdErr2: 0, meanErr2: 0, n: 0 };
  for (let i = 0; i < rows.length; i++) {
    const ref = truth[i]!;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const t0 = performance.now();
      const { stats } = await m.sample(rows[i]!, 1, method.opts(seed));
      t.ms += performance.now() - t0;
      t.samples += stats.samples;
      const got = served(stats);
      for (let k = 0; k < got.mean.length; k++) {
        // regression: the mean's error in units of the reference std; classification: absolute
        const unit = m.task === 'regression' ? ref.std[k]! : 1;
        t.meanErr2 += ((got.mean[k]! - ref.mean[k]!) / unit) ** 2;
        if (m.task === 'regression') t.stdErr2 += ((got.std[k]! - ref.std[k]!) / ref.std[k]!) ** 2;
      }
      t.n += got.mean.length;
    }
  }
  const requests = rows.length * SEEDS;
  return {
    samples: t.samples / requests,
    ms: t.ms / requests,
    stdError: Math.sqrt(t.stdErr2 / t.n),
    meanError: Math.sqrt(t.meanErr2 / t.n),
  };
}

async function bench(name: string): Promise<void> {
  const m = await OnnxModel.load(name, `models/${name}/model.onnx`, `models/${name}/model.json`);
  const rows = dataRows(name, m.features, ROWS);
  const truth: ReturnType<typeof served>[] = [];
  for (const x of rows) truth.push(served((await m.sample(x, 1, { samples: TRUTH, interval: 0.9, seed: 1e6 })).stats));
  const methods: Method[] = [
    ...[100, 1000].map((T) => ({
      name: `fixed T=${T}`,
      opts: (seed: number) => ({ samples: T, interval: 0.9, seed }),
    })),
    ...TOLERANCES.map((tolerance) => ({
      name: `auto tol=${tolerance}`,
      opts: (seed: number) => ({ samples: 1000, interval: 0.9, seed, tolerance }),
    })),
  ];
  await measure(m, rows.slice(0, 2), methods[0]!, truth); // warm-up
  // passes interleave the methods, and each keeps its fastest pass (the answers, so the errors, repeat)
  const results: ({ method: string } & Awaited<ReturnType<typeof measure>>)[] = [];
  for (let p = 0; p < PASSES; p++) {
    for (const [k, method] of methods.entries()) {
      const r = await measure(m, rows, method, truth);
      if (!results[k] || r.ms < results[k].ms) results[k] = { method: method.name, ...r };
    }
  }
  // the served quantity: the std (regression), the probabilities (classification)
  const error = (r: (typeof results)[number]) => (m.task === 'regression' ? r.stdError : r.meanError);
  const anchor = error(results[1]!);
  const table = results.map((r) => ({
    method: r.method,
    samples: r.samples.toFixed(1),
    ms: r.ms.toFixed(3),
    std_rel_rmse: m.task === 'regression' ? r.stdError.toExponential(2) : '—',
    mean_rmse: r.meanError.toExponential(2),
    fixed_T_same_error: Math.round(1000 * (anchor / error(r)) ** 2),
  }));
  console.log(
    `\n${name} (${m.task}; ${rows.length} rows × ${SEEDS} seeds, rows spread over the data set, one-row requests; reference ${TRUTH} samples)`,
  );
  console.table(table);
  await m.close();
}

for (const name of ['diabetes', 'wine']) await bench(name);
