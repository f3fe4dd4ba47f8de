/**
 * `npm run bench -- uci [options]`: the UCI regression benchmark of Hernández-Lobato & Adams (2015) and
 * Gal & Ghahramani (2016), end to end through the served model.
 *
 * Per dataset and split (the published 20 splits in data/uci/): write the split's training rows and test
 * rows as CSV files, train with the CLI on the training rows only (a child process; `--tune` by default),
 * serve every model of the dataset with the real server (a child process), ask
 * `/v1/models/NAME/uncertainty` for the test rows over HTTP at the interval levels 50/80/90/95% (fixed
 * seed), once with `interval_method: gaussian` (mean ± z·std) and once with `interval_method: conformal`
 * (mean ± q·std, q the split-conformal quantile of the card's calibration scores), and score what the
 * server returns, in the target's original units: RMSE of the mean, test log-likelihood (mean of
 * log N(y; mean, std²)), CRPS (closed form), and for each interval method coverage and mean 90% width.
 * Per dataset: mean ± standard error (std / √splits) over splits, next to the paper's numbers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { CARD_COVERAGE_LEVELS } from '../src/train/card-metrics.js';
import { gaussianCrps, gaussianLogLik } from '../src/uncertainty/scoring.js';
import { pairedDeltas, pairedTable } from './uci-paired.js';

export const UCI_DATASETS = [
  'bostonHousing',
  'concrete',
  'energy',
  'wine-quality-red',
  'yacht',
  'power-plant',
  'protein-tertiary-structure',
] as const;

/**
 * The paper's MC dropout results (mean ± standard error over the 20 splits): Gal & Ghahramani (2016),
 * "Dropout as a Bayesian Approximation: Representing Model Uncertainty in Deep Learning", ICML; the
 * "Grid Search (new)" columns of the readme of github.com/yaringal/DropoutUncertaintyExps (one hidden
 * layer of 50 ReLU units, dropout on inputs and hidden layer, 4000 epochs, grid search over the dropout
 * rate and τ). Splits: Hernández-Lobato & Adams (2015). Data: the UCI Machine Learning Repository.
 */
export const PAPER: Record<string, { rmse: [number, number]; ll: [number, number] }> = {
  bostonHousing: { rmse: [2.9, 0.18], ll: [-2.4, 0.04] },
  concrete: { rmse: [4.82, 0.16], ll: [-2.93, 0.02] },
  energy: { rmse: [0.54, 0.06], ll: [-1.21, 0.01] },
  'wine-quality-red': { rmse: [0.62, 0.01], ll: [-0.93, 0.01] },
  yacht: { rmse: [0.67, 0.05], ll: [-1.25, 0.01] },
  'power-plant': { rmse: [4.01, 0.04], ll: [-2.8, 0.01] },
  // 5 splits, 100 hidden units (the paper's protein setting)
  'protein-tertiary-structure': { rmse: [4.27, 0.02], ll: [-2.87, 0] },
};

/**
 * The best test log-likelihood published for a neural network on each dataset (issue 22's bar), with
 * where it comes from: the MC dropout repository's 2-hidden-layer results (Gal & Ghahramani) and Deep
 * Evidential Regression (Amini et al., NeurIPS 2020), as listed in data/uci/README.md.
 */
export const BEST_NN: Record<string, { ll: number; source: string }> = {
  bostonHousing: { ll: -2.34, source: 'MC dropout, 2 layers' },
  concrete: { ll: -2.82, source: 'MC dropout, 2 layers' },
  energy: { ll: -1.21, source: 'MC dropout' },
  'wine-quality-red': { ll: -0.89, source: 'Deep Evidential Regression' },
  yacht: { ll: -1.03, source: 'Deep Evidential Regression' },
  'power-plant': { ll: -2.67, source: 'MC dropout, 2 layers' },
  'protein-tertiary-structure': { ll: -2.63, source: 'Deep Evidential Regression' },
};

/**
 * The benchmark's recipe trains `--tune --members 3`: an ensemble of three MC dropout networks where the
 * calibration is cross-fitted (the five small sets; power-plant and protein, tuned by successive halving,
 * serve one network: src/train/ensemble.ts). Measured paired with one network (scripts/uci-lab-ensemble.mts,
 * docs/training.md, "Ensembles of MC dropout networks"), test LL with 2 / 3 / 5 members: concrete splits
 * 0–11 +0.042 / +0.040 / +0.033 (± 0.012–0.015), wine splits 0–5 +0.014 / +0.028 / +0.040 (± 0.010–0.013).
 * The training CLI's default stays 1: three members triple the Monte Carlo compute of every request.
 */
export const UCI_MEMBERS = 3;

export interface UciOptions {
  datasets: string[];
  /** The first N of the 20 splits. */
  splits: number;
  /**
   * Monte Carlo samples per uncertainty request, or "auto": sequential stopping at `tolerance` (the
   * server's default when null), at most the server's default max_samples (1000).
   */
  samples: number | 'auto';
  tolerance: number | null;
  /** Seed of the server's dropout masks (the same for every request). */
  seed: number;
  /** Training arguments after the harness's own (--data, --target, --name, --out, --seed, --quiet). */
  trainArgs: string[];
  /** Concurrent training processes. */
  jobs: number;
  /** dist: built JavaScript (as `npm start` runs); tsx: the TypeScript sources (tests). */
  runtime: 'dist' | 'tsx';
  /** Where the JSON results go (null: not written). */
  out: string | null;
  dataDir: string;
  keep: boolean;
  /**
   * Serve the models a kept run trained (the folder `--keep` names: <dataset>/models/<dataset>-<split>)
   * instead of training; null: train.
   */
  trained: string | null;
  /** A results file to pair every split with (same dataset and split): test LL, RMSE, coverage differences. */
  pairedWith: string | null;
  log: (line: string) => void;
}

export const DEFAULT_UCI_OPTIONS: UciOptions = {
  datasets: [...UCI_DATASETS],
  splits: 20,
  samples: 1000,
  tolerance: null,
  seed: 12345,
  trainArgs: ['--tune'],
  jobs: Math.max(1, availableParallelism()),
  runtime: 'dist',
  out: 'bench/uci-results.json',
  dataDir: 'data/uci',
  keep: false,
  trained: null,
  pairedWith: null,
  log: (line) => process.stderr.write(`${line}\n`),
};

/** One UCI dataset as published: rows of numbers, feature and target columns, split indices. */
export interface UciDataset {
  name: string;
  rows: string[][];
  features: number[];
  target: number;
  splits: number;
  train(split: number): number[];
  test(split: number): number[];
}

export function loadUci(dataDir: string, name: string): UciDataset {
  const dir = join(dataDir, name);
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  const ints = (f: string): number[] =>
    read(f)
      .trim()
      .split(/\s+/)
      .map((v) => Math.round(Number(v)));
  const rows = read('data.txt')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => l.split(/\s+/));
  return {
    name,
    rows,
    features: ints('index_features.txt'),
    target: ints('index_target.txt')[0]!,
    splits: ints('n_splits.txt')[0]!,
    train: (s) => ints(`index_train_${s}.txt`),
    test: (s) => ints(`index_test_${s}.txt`),
  };
}

/** CSV text of some rows (features x<col>, target y), numbers as published. */
export function splitCsv(ds: UciDataset, idx: number[]): string {
  const header = [...ds.features.map((c) => `x${c}`), 'y'].join(',');
  return `${header}\n${idx.map((r) => [...ds.features.map((c) => ds.rows[r]![c]!), ds.rows[r]![ds.target]!].join(',')).join('\n')}\n`;
}

/** Scores of one split's served predictive distribution (target units). */
export interface SplitScores {
  rmse: number;
  ll: number;
  crps: number;
  /** Served gaussian intervals (mean ± z·std). */
  coverage: Record<string, number>;
  width_90: number;
  /**
   * Served conformal intervals (mean ± q·std, q from the card's calibration scores); a level the server
   * refuses (422: no scores, or too few calibration rows for it) is absent.
   */
  conformal_coverage: Record<string, number>;
  /** NaN when the 90% conformal interval was refused. */
  conformal_width_90: number;
}

/** A served row: the fields of the uncertainty response the scores read. */
export interface ServedRow {
  mean: number;
  std: number;
  lower: number;
  upper: number;
}

/**
 * Score served predictions of test targets `y`: `byLevel[level]` holds the rows served with gaussian
 * intervals at that level (mean and std are the same at every level and for both methods; intervals
 * differ), `conformalByLevel[level]` those served with conformal intervals (null or absent: refused).
 */
export function scoreSplit(
  y: number[],
  byLevel: Record<string, ServedRow[]>,
  conformalByLevel: Record<string, ServedRow[] | null>,
): SplitScores {
  const at90 = byLevel['0.9']!;
  const n = y.length;
  let se = 0;
  let ll = 0;
  let crps = 0;
  let width = 0;
  for (let i = 0; i < n; i++) {
    const r = at90[i]!;
    se += (y[i]! - r.mean) ** 2;
    ll += gaussianLogLik(y[i]!, r.mean, r.std);
    crps += gaussianCrps(y[i]!, r.mean, r.std);
    width += r.upper - r.lower;
  }
  const covered = (rows: ServedRow[]): number => rows.filter((r, i) => y[i]! >= r.lower && y[i]! <= r.upper).length / n;
  const coverage: Record<string, number> = {};
  const conformal: Record<string, number> = {};
  let cWidth = NaN;
  for (const level of CARD_COVERAGE_LEVELS) {
    coverage[String(level)] = covered(byLevel[String(level)]!);
    const rows = conformalByLevel[String(level)];
    if (rows) {
      conformal[String(level)] = covered(rows);
      if (level === 0.9) cWidth = rows.reduce((a, r) => a + (r.upper - r.lower), 0) / n;
    }
  }
  return {
    rmse: Math.sqrt(se / n),
    ll: ll / n,
    crps: crps / n,
    coverage,
    width_90: width / n,
    conformal_coverage: conformal,
    conformal_width_90: cWidth,
  };
}

/** Mean and standard error (sample std / √n) of values. */
export function meanSe(xs: number[]): [number, number] {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return [mean, NaN];
  const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return [mean, Math.sqrt(v / n)];
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function nodeArgs(runtime: UciOptions['runtime'], dist: string, src: string): string[] {
  return runtime === 'dist' ? [dist] : ['--import', 'tsx', src];
}

/** Run the training CLI as a child process; resolves with its wall time and the CPU time it reports, rejects with its stderr. */
function trainProcess(opts: UciOptions, args: string[]): Promise<{ wallMs: number; cpuS: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...nodeArgs(opts.runtime, 'dist/train/cli.js', 'src/train/cli.ts'), ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += String(d)));
    child.stderr!.on('data', (d) => (err += String(d)));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`train ${args.join(' ')} exited ${code}: ${err.trim()}`));
      // the CLI's summary line: "… 12.3 s (8.7 s CPU) …" (the training process, worker threads included)
      const cpu = /\(([\d.]+) s CPU\)/.exec(out);
      resolve({ wallMs: performance.now() - t0, cpuS: cpu ? Number(cpu[1]) : NaN });
    });
  });
}

interface Server {
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

async function startServer(opts: UciOptions, modelsDir: string): Promise<Server> {
  const port = await freePort();
  const proc = spawn(process.execPath, nodeArgs(opts.runtime, 'dist/server/server.js', 'src/server/server.ts'), {
    env: {
      ...process.env,
      MODELS_DIR: modelsDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      MODELS_SKIP_INVALID: 'true',
      MC_MAX_WORK: '10000000',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d) => (err += String(d)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`the server exited with ${proc.exitCode}: ${err.trim()}`);
    try {
      if ((await fetch(`${url}/health/ready`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error('the server did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    proc,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

async function post(url: string, body: unknown): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new HttpError(res.status, `${url}: ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

/** An HTTP error answer (status and body), for the answers the harness expects (a refused interval). */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface UncertaintyRow {
  mean: number;
  std: number;
  epistemic_std: number;
  aleatoric_std: number;
  interval: { level: number; method: string; lower: number; upper: number };
}

/** Card fields the harness reads. */
interface Card {
  noise?: string;
  tuning?: { candidates: Record<string, unknown>[]; chosen: number };
  training?: Record<string, unknown>;
}

/**
 * Query one served model for the test rows at every coverage level, with each interval method named in
 * the request. A conformal interval the server refuses (422: the card has no scores, or too few
 * calibration rows for the level) is recorded as null; every other answer must state the method asked.
 */
async function queryModel(
  url: string,
  name: string,
  x: number[][],
  opts: UciOptions,
): Promise<{
  gaussian: Record<string, ServedRow[]>;
  conformal: Record<string, ServedRow[] | null>;
  samplesUsed: number;
}> {
  const gaussian: Record<string, ServedRow[]> = {};
  const conformal: Record<string, ServedRow[] | null> = {};
  let samplesUsed = Number(opts.samples);
  const askChunk = async (rows: number[][], level: number, method: 'gaussian' | 'conformal'): Promise<ServedRow[]> => {
    const body = {
      instances: rows,
      ...samplesField(opts),
      seed: opts.seed,
      interval: level,
      interval_method: method,
    };
    const res = (await post(`${url}/v1/models/${name}/uncertainty`, body)) as {
      interval_method?: string;
      samples_used?: number;
      predictions: UncertaintyRow[];
    };
    if (res.interval_method !== method)
      throw new Error(
        `${name}: asked for interval_method ${method}, the server answered ${String(res.interval_method)}`,
      );
    if (opts.samples === 'auto') samplesUsed = Math.max(samplesUsed, Number(res.samples_used));
    return res.predictions.map((r) => ({ mean: r.mean, std: r.std, lower: r.interval.lower, upper: r.interval.upper }));
  };
  // the test rows in requests of at most QUERY_ROWS (the server's MAX_BATCH_ROWS is 1024: protein has 4573)
  const ask = async (level: number, method: 'gaussian' | 'conformal'): Promise<ServedRow[]> => {
    const out: ServedRow[] = [];
    for (const rows of chunkRows(x, QUERY_ROWS)) out.push(...(await askChunk(rows, level, method)));
    return out;
  };
  if (opts.samples === 'auto') samplesUsed = 0;
  for (const level of CARD_COVERAGE_LEVELS) {
    gaussian[String(level)] = await ask(level, 'gaussian');
    try {
      conformal[String(level)] = await ask(level, 'conformal');
    } catch (err) {
      if (!(err instanceof HttpError && err.status === 422)) throw err;
      conformal[String(level)] = null;
    }
  }
  return { gaussian, conformal, samplesUsed };
}

/** Test rows per request: under the server's default MAX_BATCH_ROWS (1024). */
export const QUERY_ROWS = 1000;

/** Rows in consecutive chunks of at most `size` (one chunk when they fit: the small sets' requests are unchanged). */
export function chunkRows<T>(rows: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}

/** The request's sample fields: a fixed T, or "auto" with its tolerance when one is set. */
function samplesField(opts: UciOptions): Record<string, unknown> {
  if (opts.samples !== 'auto') return { samples: opts.samples };
  return { samples: 'auto', ...(opts.tolerance !== null ? { tolerance: opts.tolerance } : {}) };
}

export interface DatasetResult {
  name: string;
  splits: number;
  train_rows: number;
  test_rows: number;
  wall_s: number;
  train_s: number;
  /** CPU seconds of the training processes (worker threads included), summed over splits. */
  train_cpu_s: number;
  serve_s: number;
  per_split: (SplitScores & {
    split: number;
    train_ms: number;
    train_cpu_s: number;
    chosen?: Record<string, unknown>;
    noise?: string;
    /** The samples the server used for the split's requests (the fixed T, or "auto"'s stop). */
    samples_used?: number;
  })[];
  summary: Record<string, [number, number]>;
  paper: { rmse: [number, number]; ll: [number, number] } | null;
  verdict: Record<string, string>;
}

export interface UciResult {
  /** true while the run is still going (the file is rewritten after every dataset). */
  partial?: boolean;
  date: string;
  machine: string;
  command: string;
  options: Omit<UciOptions, 'log'>;
  wall_s: number;
  datasets: DatasetResult[];
  table: string;
}

/** Verdicts against the issue's targets. */
function verdicts(
  name: string,
  s: Record<string, [number, number]>,
  paper: DatasetResult['paper'],
): Record<string, string> {
  const v: Record<string, string> = {};
  if (paper) {
    const [ll, llSe] = s.ll!;
    v.ll = ll > paper.ll[0] + llSe ? 'better' : ll >= paper.ll[0] - llSe ? 'tie' : 'worse';
    v.rmse = s.rmse![0] <= paper.rmse[0] + s.rmse![1] ? 'ok' : 'worse';
  }
  const best = BEST_NN[name];
  // reached: within one standard error of the best published NN's test LL, or above it
  if (best) v.best_nn = s.ll![0] >= best.ll - s.ll![1] ? 'reached' : 'below';
  const c90 = s['coverage_0.9']![0];
  v.coverage_90 = c90 >= 0.87 && c90 <= 0.93 ? 'ok' : 'miss';
  const conf = CARD_COVERAGE_LEVELS.filter((l) => s[`conformal_coverage_${l}`]).map(
    (l) => s[`conformal_coverage_${l}`]![0] >= l - 0.02,
  );
  if (conf.length) v.conformal = conf.every(Boolean) ? 'ok' : 'miss';
  return v;
}

const fmt = (x: [number, number], d = 2): string =>
  `${x[0].toFixed(d)} ± ${Number.isFinite(x[1]) ? x[1].toFixed(d) : '–'}`;

export function markdownTable(results: DatasetResult[]): string {
  const head =
    '| dataset | splits | RMSE (ours) | RMSE (paper) | test LL (ours) | test LL (paper) | LL | best NN LL | vs best NN | CRPS | 90% coverage | 90% width | coverage 50/80/95% | conformal 50/80/90/95% | wall (training CPU) |';
  const sep = '|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|---|---|---:|';
  const lines = results.map((r) => {
    const s = r.summary;
    const cov = (k: string, l: number): string => s[`${k}_${l}`]![0].toFixed(3);
    const conf = CARD_COVERAGE_LEVELS.some((l) => s[`conformal_coverage_${l}`])
      ? CARD_COVERAGE_LEVELS.map((l) => (s[`conformal_coverage_${l}`] ? cov('conformal_coverage', l) : '–')).join(' / ')
      : '–';
    return `| ${r.name} | ${r.splits} | ${fmt(s.rmse!)} | ${r.paper ? fmt(r.paper.rmse) : '–'} | ${fmt(s.ll!)} | ${r.paper ? fmt(r.paper.ll) : '–'} | ${r.verdict.ll ?? ''} | ${BEST_NN[r.name] ? BEST_NN[r.name]!.ll.toFixed(2) : '–'} | ${r.verdict.best_nn ?? ''} | ${fmt(s.crps!, 3)} | ${fmt(s['coverage_0.9']!, 3)} | ${fmt(s.width_90!)} | ${[0.5, 0.8, 0.95].map((l) => cov('coverage', l)).join(' / ')} | ${conf} | ${r.wall_s.toFixed(0)} s (${r.train_cpu_s.toFixed(0)} s) |`;
  });
  return [head, sep, ...lines].join('\n');
}

/** One dataset of a run: its splits, where its CSV files and models go, and per split the training wall ms and CPU s. */
interface DatasetRun {
  ds: UciDataset;
  splits: number;
  dir: string;
  modelsDir: string;
  trained: { trainMs: number[]; trainCpu: number[] };
  /** performance.now() when its first split started training, and when its last one finished. */
  t0: number;
  t1: number;
}

/**
 * The order the splits train in: one queue over every dataset's splits, the largest training sets first
 * (ties in the given order, splits ascending), so that the long runs start first and the short ones fill
 * the cores at the end instead of a core idling at the end of every dataset.
 */
export function trainingOrder(datasets: { rows: number; splits: number }[]): { dataset: number; split: number }[] {
  const byRows = datasets.map((d, i) => ({ ...d, i })).sort((a, b) => b.rows - a.rows || a.i - b.i);
  return byRows.flatMap((d) => Array.from({ length: d.splits }, (_, split) => ({ dataset: d.i, split })));
}

/**
 * Train every split of every dataset with the CLI (`opts.jobs` at a time, in trainingOrder); `onDataset`
 * is called for a dataset as soon as its last split is trained (not awaited: the queue goes on).
 */
async function trainAll(opts: UciOptions, runs: DatasetRun[], onDataset: (run: DatasetRun) => void): Promise<void> {
  const order = trainingOrder(runs.map((r) => ({ rows: r.ds.train(0).length, splits: r.splits })));
  const left = runs.map((r) => r.splits);
  const total = order.length;
  opts.log(
    `training ${total} split(s) of ${runs.length} dataset(s), ${opts.jobs} at a time, largest first: ${opts.trainArgs.join(' ')}`,
  );
  let next = 0;
  let finished = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const { dataset, split: s } = order[next++]!;
      const run = runs[dataset]!;
      const name = run.ds.name;
      if (Number.isNaN(run.t0)) run.t0 = performance.now();
      const csv = join(run.dir, `train_${s}.csv`);
      writeFileSync(csv, splitCsv(run.ds, run.ds.train(s)));
      const t = await trainProcess(opts, [
        ...['--data', csv, '--target', 'y', '--task', 'regression', '--name', `${name}-${s}`],
        ...['--out', run.modelsDir, '--seed', String(s), '--quiet', ...opts.trainArgs],
      ]);
      run.trained.trainMs[s] = t.wallMs;
      run.trained.trainCpu[s] = t.cpuS;
      finished++;
      opts.log(
        `  ${name} split ${s}: trained in ${(t.wallMs / 1000).toFixed(1)} s, ${t.cpuS.toFixed(1)} s CPU (${finished}/${total})`,
      );
      if (--left[dataset]! === 0) {
        run.t1 = performance.now();
        onDataset(run);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.jobs, total)) }, worker));
}

/** Serve a dataset's split models with the real server and score each split's test rows. */
async function serveSplits(
  opts: UciOptions,
  ds: UciDataset,
  splits: number,
  modelsDir: string,
  trained: { trainMs: number[]; trainCpu: number[] },
): Promise<DatasetResult['per_split']> {
  const server = await startServer(opts, modelsDir);
  const perSplit: DatasetResult['per_split'] = [];
  try {
    for (let s = 0; s < splits; s++) {
      const card = JSON.parse(readFileSync(join(modelsDir, `${ds.name}-${s}`, 'model.json'), 'utf8')) as Card;
      const idx = ds.test(s);
      const x = idx.map((r) => ds.features.map((c) => Number(ds.rows[r]![c])));
      const y = idx.map((r) => Number(ds.rows[r]![ds.target]));
      const q = await queryModel(server.url, `${ds.name}-${s}`, x, opts);
      const chosen = card.tuning ? card.tuning.candidates[card.tuning.chosen] : undefined;
      perSplit.push({
        split: s,
        train_ms: trained.trainMs[s]!,
        train_cpu_s: trained.trainCpu[s]!,
        ...scoreSplit(y, q.gaussian, q.conformal),
        ...(chosen ? { chosen } : {}),
        noise: card.noise,
        samples_used: q.samplesUsed,
      });
    }
  } finally {
    await server.stop();
  }
  return perSplit;
}

/** Mean ± SE over splits of every score (a conformal level only when every split served it). */
function summariseSplits(opts: UciOptions, perSplit: DatasetResult['per_split']): Record<string, [number, number]> {
  const summary: Record<string, [number, number]> = {
    rmse: meanSe(perSplit.map((p) => p.rmse)),
    ll: meanSe(perSplit.map((p) => p.ll)),
    crps: meanSe(perSplit.map((p) => p.crps)),
    width_90: meanSe(perSplit.map((p) => p.width_90)),
    samples_used: meanSe(perSplit.map((p) => p.samples_used ?? NaN)),
  };
  for (const l of CARD_COVERAGE_LEVELS) {
    summary[`coverage_${l}`] = meanSe(perSplit.map((p) => p.coverage[String(l)]!));
    if (perSplit.every((p) => p.conformal_coverage[String(l)] !== undefined))
      summary[`conformal_coverage_${l}`] = meanSe(perSplit.map((p) => p.conformal_coverage[String(l)]!));
  }
  if (perSplit.every((p) => p.conformal_coverage['0.9'] !== undefined))
    summary.conformal_width_90 = meanSe(perSplit.map((p) => p.conformal_width_90));
  const refused = CARD_COVERAGE_LEVELS.filter((l) =>
    perSplit.some((p) => p.conformal_coverage[String(l)] === undefined),
  );
  if (refused.length)
    opts.log(
      `  conformal intervals refused (422) on some splits at level(s) ${refused.join(', ')}: too few calibration rows; those levels are not summarised`,
    );
  return summary;
}

/** One dataset's folders and, with --trained, the kept run's models (the training is deterministic). */
function prepareDataset(opts: UciOptions, name: string, tmp: string): DatasetRun {
  const ds = loadUci(opts.dataDir, name);
  const splits = Math.min(opts.splits, ds.splits);
  const dir = join(tmp, name);
  const modelsDir = opts.trained ? join(opts.trained, name, 'models') : join(dir, 'models');
  if (!opts.trained) mkdirSync(modelsDir, { recursive: true });
  const trained = { trainMs: new Array(splits).fill(NaN), trainCpu: new Array(splits).fill(NaN) };
  return { ds, splits, dir, modelsDir, trained, t0: Number.NaN, t1: Number.NaN };
}

/** A trained dataset: serve, score, summarise. */
async function serveDataset(opts: UciOptions, run: DatasetRun): Promise<DatasetResult> {
  const { ds, splits, modelsDir, trained } = run;
  const t1 = performance.now();
  const t0 = Number.isNaN(run.t0) ? t1 : run.t0;
  const perSplit = await serveSplits(opts, ds, splits, modelsDir, trained);
  const t2 = performance.now();
  const summary = summariseSplits(opts, perSplit);
  const paper = PAPER[ds.name] ?? null;
  return {
    name: ds.name,
    splits,
    train_rows: ds.train(0).length,
    test_rows: ds.test(0).length,
    wall_s: (t2 - t0) / 1000,
    train_s: ((Number.isNaN(run.t1) ? t1 : run.t1) - t0) / 1000,
    train_cpu_s: trained.trainCpu.reduce((a, b) => a + b, 0),
    serve_s: (t2 - t1) / 1000,
    per_split: perSplit,
    summary,
    paper,
    verdict: verdicts(ds.name, summary, paper),
  };
}

/**
 * Run the benchmark; returns (and writes, unless out is null) the results. Every dataset's splits train
 * in one queue (trainingOrder); a dataset is served as soon as its splits are trained, one server at a
 * time, while the queue goes on.
 */
export async function runUci(opts: UciOptions): Promise<UciResult> {
  const started = performance.now();
  const tmp = mkdtempSync(join(tmpdir(), 'uci-'));
  const results: DatasetResult[] = [];
  const ordered = (): DatasetResult[] => opts.datasets.flatMap((n) => results.filter((r) => r.name === n));
  let serving: Promise<void> = Promise.resolve();
  const serve = (run: DatasetRun): void => {
    serving = serving.then(async () => {
      const r = await serveDataset(opts, run);
      results.push(r);
      // written after every dataset, so that a long run that fails later keeps what it measured
      if (opts.out) writeFileSync(opts.out, `${JSON.stringify(summarise(opts, ordered(), started, true), null, 2)}\n`);
      const s = r.summary;
      opts.log(
        `${r.name}: RMSE ${fmt(s.rmse!)}, test LL ${fmt(s.ll!)}, 90% coverage ${fmt(s['coverage_0.9']!, 3)} (${r.wall_s.toFixed(0)} s)`,
      );
    });
    serving.catch(() => {}); // handled: awaited below (a failure ends the run once the queue stops)
  };
  try {
    const runs = opts.datasets.map((name) => prepareDataset(opts, name, tmp));
    if (opts.trained) {
      for (const run of runs) {
        opts.log(`${run.ds.name}: serving ${run.splits} split(s) trained in ${opts.trained}`);
        serve(run);
      }
    } else {
      await trainAll(opts, runs, serve);
    }
    await serving;
  } finally {
    await serving.catch(() => {});
    if (!opts.keep || opts.trained) rmSync(tmp, { recursive: true, force: true });
    else opts.log(`kept ${tmp}`);
  }
  const result = summarise(opts, ordered(), started, false);
  if (opts.out) writeFileSync(opts.out, `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

function summarise(opts: UciOptions, results: DatasetResult[], started: number, partial: boolean): UciResult {
  const { log: _log, ...optsOut } = opts;
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
  return {
    date: new Date().toISOString(),
    machine,
    command: `npm run bench -- uci ${process.argv.slice(3).join(' ')}`.trim(),
    options: optsOut,
    wall_s: (performance.now() - started) / 1000,
    ...(partial ? { partial: true } : {}),
    datasets: results,
    table: markdownTable(results),
  };
}

/** The harness's own options (every other argument goes to the training CLI). */
const OWN_OPTIONS = {
  datasets: { type: 'string' },
  splits: { type: 'string' },
  samples: { type: 'string' },
  tolerance: { type: 'string' },
  'server-seed': { type: 'string' },
  jobs: { type: 'string' },
  'no-tune': { type: 'boolean' },
  out: { type: 'string' },
  keep: { type: 'boolean' },
  runtime: { type: 'string' },
  trained: { type: 'string' },
  'paired-with': { type: 'string' },
} as const;

function positiveInt(name: string, v: unknown, def: number): number {
  if (v === undefined) return def;
  const x = Number(v);
  if (!Number.isInteger(x) || x < 1) throw new Error(`--${name} ${String(v)}: expected a positive integer`);
  return x;
}

/** `--samples N|auto` and `--tolerance` (only with auto, in (0, 1]). */
function parseSamples(samples: unknown, tolerance: unknown): Pick<UciOptions, 'samples' | 'tolerance'> {
  if (samples !== 'auto') {
    if (tolerance !== undefined) throw new Error('--tolerance: only with --samples auto');
    return { samples: positiveInt('samples', samples, DEFAULT_UCI_OPTIONS.samples as number), tolerance: null };
  }
  if (tolerance === undefined) return { samples: 'auto', tolerance: null };
  const t = Number(tolerance);
  if (!(t > 0 && t <= 1)) throw new Error(`--tolerance ${String(tolerance)}: expected a number in (0, 1]`);
  return { samples: 'auto', tolerance: t };
}

/** Parse `npm run bench -- uci [options]`: the harness's options; every other argument goes to the training CLI. */
export function parseUciArgs(argv: string[]): UciOptions {
  const { values, tokens } = parseArgs({ args: argv, options: OWN_OPTIONS, strict: false, tokens: true });
  // everything that is not the harness's own option is passed through to the training CLI, in order
  const pass: string[] = [];
  for (const t of tokens ?? []) {
    if (t.kind === 'option' && !(t.name in OWN_OPTIONS))
      pass.push(t.inlineValue ? `${t.rawName}=${t.value}` : t.rawName);
    else if (t.kind === 'positional') pass.push(t.value);
  }
  const d = DEFAULT_UCI_OPTIONS;
  const datasets = typeof values.datasets === 'string' ? values.datasets.split(',').map((s) => s.trim()) : d.datasets;
  for (const ds of datasets)
    if (!(UCI_DATASETS as readonly string[]).includes(ds))
      throw new Error(`--datasets: unknown dataset ${ds} (known: ${UCI_DATASETS.join(', ')})`);
  const rt = values.runtime;
  if (rt !== undefined && rt !== 'dist' && rt !== 'tsx')
    throw new Error(`--runtime ${String(rt)}: expected dist or tsx`);
  const jobs = positiveInt('jobs', values.jobs, d.jobs);
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  return {
    ...d,
    datasets,
    splits: positiveInt('splits', values.splits, d.splits),
    ...parseSamples(values.samples, values.tolerance),
    seed: positiveInt('server-seed', values['server-seed'], d.seed),
    jobs,
    // jobs × tuning threads ≈ the cores, unless --threads is given
    trainArgs: [
      ...(values['no-tune'] ? [] : ['--tune']),
      ...(pass.some((a) => a === '--threads' || a.startsWith('--threads=')) || values['no-tune']
        ? []
        : ['--threads', String(Math.max(1, Math.floor(availableParallelism() / jobs)))]),
      ...(pass.some((a) => a === '--members' || a.startsWith('--members=')) || values['no-tune']
        ? []
        : ['--members', String(UCI_MEMBERS)]),
      ...pass,
    ],
    out: str(values.out) ?? d.out,
    keep: values.keep === true,
    runtime: (rt as UciOptions['runtime'] | undefined) ?? d.runtime,
    trained: str(values.trained),
    pairedWith: str(values['paired-with']),
  };
}

/** `npm run bench -- uci …`: build (dist runtime), run, print the table; exit code 0, or 2 for bad options. */
export async function runUciMain(argv: string[]): Promise<number> {
  let opts: UciOptions;
  try {
    opts = parseUciArgs(argv);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    return 2;
  }
  if (opts.runtime === 'dist') execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
  const r = await runUci(opts);
  const cpu = r.datasets.reduce((a, d) => a + d.train_cpu_s, 0);
  process.stdout.write(
    `\n${r.machine}; ${r.wall_s.toFixed(0)} s in all, training ${cpu.toFixed(0)} s CPU (${r.datasets.map((d) => `${d.name} ${d.wall_s.toFixed(0)} s`).join(', ')})\n\n${r.table}\n`,
  );
  if (opts.samples === 'auto')
    for (const d of r.datasets)
      process.stdout.write(`${d.name}: samples used per split ${d.per_split.map((p) => p.samples_used).join(', ')}\n`);
  if (opts.pairedWith) {
    const reference = JSON.parse(readFileSync(opts.pairedWith, 'utf8')) as Pick<UciResult, 'datasets'>;
    process.stdout.write(`\npaired with ${opts.pairedWith} (this run − that one, same splits):\n\n`);
    process.stdout.write(`${pairedTable(pairedDeltas(r, reference))}\n`);
  }
  if (opts.out) process.stdout.write(`\nwrote ${opts.out}\n`);
  return 0;
}
