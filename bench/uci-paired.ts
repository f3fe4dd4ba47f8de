/**
 * Two UCI benchmark runs paired split by split (issue 22: "compare each lever paired on the same splits"):
 * per dataset, the mean ± standard error over the common splits of this run minus the reference, for the
 * test LL, the RMSE and the 90% coverages, beside this run's own means, its training CPU against the
 * reference's on those splits, and how many splits served a heteroscedastic model.
 *
 *   npx tsx bench/uci-paired.ts RESULT.json REFERENCE.json
 *
 * (`npm run bench -- uci … --paired-with REFERENCE.json` prints the same after its run.)
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { type DatasetResult, meanSe } from './uci.js';

type Split = DatasetResult['per_split'][number];

/** The paired figures of one dataset. */
export interface PairedDelta {
  dataset: string;
  /** The splits both runs have, in order. */
  splits: number[];
  /** this − reference, mean ± SE over the common splits. */
  ll: [number, number];
  rmse: [number, number];
  coverage_90: [number, number];
  /** NaN when a split of either run has no conformal 90% interval. */
  conformal_90: [number, number];
  /** This run's means over the common splits. */
  mean: { ll: number; rmse: number; coverage_90: number };
  /** Training CPU seconds over the common splits: this run, the reference. */
  train_cpu_s: [number, number];
  heteroscedastic: number;
}

const delta = (pairs: [Split, Split][], f: (s: Split) => number): [number, number] =>
  meanSe(pairs.map(([a, b]) => f(a) - f(b)));
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

/** Pair every dataset of `run` with the same dataset of `reference`, split by split (datasets or splits in one only are left out). */
export function pairedDeltas(
  run: { datasets: DatasetResult[] },
  reference: { datasets: DatasetResult[] },
): PairedDelta[] {
  const out: PairedDelta[] = [];
  for (const d of run.datasets) {
    const ref = reference.datasets.find((r) => r.name === d.name);
    if (!ref) continue;
    const pairs = d.per_split
      .map((s): [Split, Split | undefined] => [s, ref.per_split.find((r) => r.split === s.split)])
      .filter((p): p is [Split, Split] => p[1] !== undefined);
    if (!pairs.length) continue;
    const mine = pairs.map((p) => p[0]);
    out.push({
      dataset: d.name,
      splits: mine.map((s) => s.split),
      ll: delta(pairs, (s) => s.ll),
      rmse: delta(pairs, (s) => s.rmse),
      coverage_90: delta(pairs, (s) => s.coverage['0.9']!),
      conformal_90: delta(pairs, (s) => s.conformal_coverage['0.9'] ?? NaN),
      mean: {
        ll: mean(mine.map((s) => s.ll)),
        rmse: mean(mine.map((s) => s.rmse)),
        coverage_90: mean(mine.map((s) => s.coverage['0.9']!)),
      },
      train_cpu_s: [sum(mine.map((s) => s.train_cpu_s)), sum(pairs.map((p) => p[1].train_cpu_s))],
      heteroscedastic: mine.filter((s) => s.noise === 'heteroscedastic').length,
    });
  }
  return out;
}

const pm = (x: [number, number], d = 3): string =>
  `${x[0] >= 0 ? '+' : ''}${x[0].toFixed(d)} ± ${Number.isFinite(x[1]) ? x[1].toFixed(d) : '–'}`;

/** Seconds, or – when the run did not train (it served a kept run's models). */
const cpu = (s: number): string => (Number.isFinite(s) ? `${s.toFixed(0)} s` : '–');

/** The paired figures as a markdown table. */
export function pairedTable(deltas: PairedDelta[]): string {
  const head =
    '| dataset | splits | Δ test LL | Δ RMSE | Δ 90% coverage | Δ conformal 90% | test LL | RMSE | 90% coverage | training CPU (this / reference) | heteroscedastic splits |';
  const sep = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const lines = deltas.map(
    (p) =>
      `| ${p.dataset} | ${p.splits.length} | ${pm(p.ll)} | ${pm(p.rmse)} | ${pm(p.coverage_90)} | ${pm(p.conformal_90)} | ${p.mean.ll.toFixed(3)} | ${p.mean.rmse.toFixed(3)} | ${p.mean.coverage_90.toFixed(3)} | ${cpu(p.train_cpu_s[0])} / ${cpu(p.train_cpu_s[1])} | ${p.heteroscedastic} of ${p.splits.length} |`,
  );
  return [head, sep, ...lines].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [runFile, refFile] = process.argv.slice(2);
  if (!runFile || !refFile) {
    process.stderr.write('usage: npx tsx bench/uci-paired.ts RESULT.json REFERENCE.json\n');
    process.exit(2);
  }
  const read = (f: string): { datasets: DatasetResult[] } => JSON.parse(readFileSync(f, 'utf8'));
  process.stdout.write(`${pairedTable(pairedDeltas(read(runFile), read(refFile)))}\n`);
}
