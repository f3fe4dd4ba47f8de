/**
 * `--tune`: choose dropout rate, weight decay, training length and noise model on a validation split of
 * the training rows, then refit on all of them with the winner (the protocol of Hernández-Lobato & Adams
 * 2015 and Gal & Ghahramani 2016, who tune dropout and τ per split on the training rows only).
 *
 * Every candidate (a setting of dropout, input dropout, weight decay, noise) is trained once on the fit
 * rows up to the longest training length; at each checkpoint epoch its served predictive distribution
 * on the validation rows is scored, so training lengths cost nothing extra. The score is the mean
 * validation log-likelihood of what the server would serve: N(MC mean, MC variance + noise) with the
 * server's formulas (src/uncertainty). The noise σ (homoscedastic: the noise; heteroscedastic: a floor
 * added to the predicted variance) is fitted on one half of the validation rows and scored on the other
 * (both ways), so that no candidate is scored on rows it fitted anything on. The served model's epistemic
 * scale (calibrate) is not part of the score: measured on the UCI splits (scripts/uci-lab-eval.mts, test
 * LL of the served predictive, selection by σ alone / by (s, σ) cross-fitted): boston −2.398 / −2.379 (20
 * splits), yacht −0.367 / −0.376, energy −0.672 / −0.676, concrete −3.001 / −3.007 (10 splits each), a
 * wash at a fraction of the cost. Classifiers: the NLL of the
 * MC-averaged probabilities, temperature cross-fitted the same way.
 *
 * Candidates run in parallel on worker threads (tune-worker.ts). Each is deterministic (its own seeded
 * streams, float32 kernels in a fixed order), and the winner is the best score with ties going to the
 * earlier candidate and checkpoint, so the same seed gives the same choice and the same bytes however the
 * jobs are scheduled.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { calibrateAleatoricStd } from './calibrate.js';
import { type Dataset, DataError, fitStandardiser, splitRows, subset } from './data.js';
import { gaussianLogLik } from '../uncertainty/scoring.js';
import { createMlp } from './mlp.js';
import { Rng } from '../util/rng.js';
import { averageProbabilities, fitTemperature } from './temperature.js';
import {
  type Calibration,
  type EpochLog,
  type FittedNetwork,
  type Predictive,
  type NoiseModel,
  type TrainedModel,
  type TrainOptions,
  calibrate,
  calibrateRegression,
  evaluate,
  featureStats,
  fitNetwork,
  mcLogits,
  mcPredictive,
  specFor,
  standardise,
  withCalibration,
} from './train.js';

/** One point of the grid (the training length is scored at every checkpoint of the same run). */
export interface Candidate {
  /** The rate of every hidden layer's dropout. */
  dropout: number;
  inputDropout: number;
  weightDecay: number;
  noise: NoiseModel;
}

export interface Grid {
  candidates: Candidate[];
  /** Training lengths scored, ascending; the runs go to the last. */
  epochs: number[];
  /** How the grid was made (recorded in the card). */
  rule: Record<string, unknown>;
}

/**
 * The default grid, the same for every dataset. Dropout spans the paper's range (Gal & Ghahramani 2016
 * searched p in {0.005, 0.01, 0.05, 0.1}; 0.2 added for small noisy data), training lengths go up to
 * their 4000 epochs; weight decay is one rule of the training-set size N, λ = c/N (the prior term of
 * their derivation scales as 1/N).
 *
 * Four (dropout, c) pairs, not the 3 × 2 product: measured on the UCI lab cache (scripts/uci-lab-eval.mts,
 * rule sigma/scale/val; boston 20 splits, concrete, energy, yacht 10, wine 5), test LL with the six
 * candidates / with these four: boston −2.398 / −2.388, concrete −3.001 / −2.996, energy −0.672 / −0.672,
 * wine −0.939 / −0.942, yacht −0.367 / −0.367 (c = 1 at p 0.005 or 0.05 almost never won); the two
 * candidates saved pay for most of the cross-fitted calibration (CROSS_FIT_FOLDS).
 *
 * The noise model: homoscedastic only by default; `--tune-noise homoscedastic,heteroscedastic` lets the
 * tuner choose (under the noise rule in `tune`). Measured on the UCI benchmark (width 100, 20 splits,
 * both noise models in the grid): the rule kept a heteroscedastic network on 2 of 20 concrete splits, one
 * of them the worst split of the run (test LL −3.55, RMSE 5.82, against a mean of −2.99), and on 2 of 20
 * boston splits (one with test RMSE 4.63 against a mean of 2.80); the candidates cost half the tuning time.
 */
export function defaultGrid(task: 'regression' | 'classification', fitRows: number): Grid {
  const dropout = [0.005, 0.05, 0.2];
  const decayTimesN = [0.01, 1];
  // (dropout, c) pairs: every rate at c = 0.01, and the strongest regularisation (p 0.2, c 1)
  const pairs: [number, number][] = [...dropout.map((p): [number, number] => [p, 0.01]), [0.2, 1]];
  const noise: NoiseModel[] = ['homoscedastic'];
  const epochs = [250, 500, 1000, 2000, 4000];
  const candidates: Candidate[] = [];
  for (const nm of noise)
    for (const [p, c] of pairs) candidates.push({ dropout: p, inputDropout: 0, weightDecay: c / fitRows, noise: nm });
  return {
    candidates,
    epochs,
    rule: {
      dropout,
      input_dropout: [0],
      weight_decay: 'c / N, N = fit rows',
      decay_times_n: decayTimesN,
      pairs,
      fit_rows: fitRows,
      noise: task === 'regression' ? noise : undefined,
      epochs,
    },
  };
}

/** The minibatch size of a tuned run unless --batch-size says otherwise: the paper's (their code), and cheaper per row than 32. */
export const TUNE_BATCH_SIZE = 128;

/**
 * The hidden width of a tuned run unless --hidden says otherwise. Measured on the full UCI benchmark
 * (`npm run bench -- uci --hidden 200` against the default run at 100, the same 20 splits of each
 * dataset, paired test-LL differences): boston +0.024 ± 0.030, concrete +0.019 ± 0.018, energy
 * +0.038 ± 0.016, yacht +0.160 ± 0.051, wine (see README), for 1.4–1.9× the training CPU; concrete's
 * test LL reaches the paper's (−2.946 ± 0.027 against −2.93) only at 200. An earlier look (concrete
 * splits 0–3, p 0.05, 4000 epochs): width 50 → test LL −3.06, 100 → −3.03, 200 → −3.00.
 */
export const TUNE_HIDDEN = 200;

/** What one worker job needs. Datasets travel by structured clone. */
export interface TuneJob {
  index: number;
  candidate: Candidate;
  base: TrainOptions;
  fit: Dataset;
  /** Rows scored at each checkpoint; null: train only (a cross-fitting fold or the refit), no scores. */
  val: Dataset | null;
  epochs: number[];
}

export interface TuneJobResult {
  index: number;
  /** Validation score at each checkpoint (−Infinity when the run diverged before it). */
  scores: number[];
  /** Network parameters at each checkpoint (absent after a divergence). */
  params: (Float32Array | null)[];
  /** Per-validation-row scores at each checkpoint (absent after a divergence). */
  rowScores: (Float64Array | null)[];
  /** Regression: the validation mean squared error of the MC mean at each checkpoint. */
  mse: number[];
  /** The run's epoch log (jobs without validation rows: the refit's history for the card). */
  history?: EpochLog[];
  error?: string;
}

/** The options of a candidate's run. */
export function candidateOptions(base: TrainOptions, c: Candidate, epochs: number): TrainOptions {
  return {
    ...base,
    dropout: [c.dropout],
    inputDropout: c.inputDropout,
    weightDecay: c.weightDecay,
    noise: c.noise,
    epochs,
    patience: 0,
  };
}

/** Seed of the Monte Carlo masks that score a checkpoint (one stream for every candidate: paired comparisons). */
const scoreSeed = (seed: number): number => seed * 7919 + 6;

/**
 * Validation score of a fitted network (higher is better): the mean log-likelihood of the validation
 * rows under the served predictive distribution, with σ (homoscedastic) or the temperature
 * (classification) cross-fitted on halves of the rows.
 */
export function validationScore(m: FittedNetwork, val: Dataset, samples: number, seed: number): number {
  const { rows } = validationRowScores(m, val, samples, seed);
  let sum = 0;
  for (const v of rows) sum += v;
  return sum / rows.length;
}

/**
 * validationScore per validation row (its log-likelihood, or minus its NLL for a classifier), and for
 * regression each row's squared error of the MC mean.
 */
export function validationRowScores(
  m: FittedNetwork,
  val: Dataset,
  samples: number,
  seed: number,
): { rows: Float64Array; sqErrors: Float64Array | null } {
  const xs = standardise(val.x, val.n, val.f, m.xMean, m.xStd);
  // halves by position: the validation rows are already in random order
  const halves = [0, 1].map((h) => Array.from({ length: val.n }, (_, i) => i).filter((i) => i % 2 === h));
  if (m.task === 'regression') {
    const p = mcPredictive(m, xs, val.n, samples, seed);
    const known = p.aleatoricVar ? p.epistemicVar.map((e, i) => e + p.aleatoricVar![i]!) : p.epistemicVar;
    const ll = new Float64Array(val.n);
    for (const [a, b] of [
      [halves[0]!, halves[1]!],
      [halves[1]!, halves[0]!],
    ] as const) {
      const sigma = calibrateAleatoricStd(
        a.map((i) => val.y[i]! - p.mean[i]!),
        a.map((i) => known[i]!),
        m.yStd,
      );
      for (const i of b) ll[i] = gaussianLogLik(val.y[i]!, p.mean[i]!, Math.sqrt(known[i]! + sigma * sigma));
    }
    return { rows: ll, sqErrors: Float64Array.from(val.y, (y, i) => (y - p.mean[i]!) ** 2) };
  }
  const K = m.spec.outputs;
  const logits = mcLogits(m, xs, val.n, samples, seed);
  const out = new Float64Array(val.n);
  for (const [a, b] of [
    [halves[0]!, halves[1]!],
    [halves[1]!, halves[0]!],
  ] as const) {
    const pick = (rows: number[]): Float32Array => {
      const sel = new Float32Array(samples * rows.length * K);
      for (let s = 0; s < samples; s++)
        rows.forEach((r, j) =>
          sel.set(logits.subarray((s * val.n + r) * K, (s * val.n + r + 1) * K), (s * rows.length + j) * K),
        );
      return sel;
    };
    const t = fitTemperature(
      pick(a),
      samples,
      a.length,
      K,
      a.map((i) => val.y[i]!),
    );
    const p = averageProbabilities(pick(b), samples, b.length, K, t);
    b.forEach((i, j) => (out[i] = Math.log(Math.max(p[j * K + val.y[i]!]!, 1e-12))));
  }
  return { rows: out, sqErrors: null };
}

/** Run one candidate to the last checkpoint, scoring it at every checkpoint. Pure and deterministic. */
export function runJob(job: TuneJob, onEpoch?: (epoch: number) => void): TuneJobResult {
  const epochs = job.epochs;
  const scores = epochs.map(() => -Infinity);
  const params: (Float32Array | null)[] = epochs.map(() => null);
  const rowScores: (Float64Array | null)[] = epochs.map(() => null);
  const mse = epochs.map(() => NaN);
  const opts = candidateOptions(job.base, job.candidate, epochs[epochs.length - 1]!);
  try {
    const val = job.val;
    if (!val) {
      const m = fitNetwork(job.fit, null, opts, {
        checkpoints: epochs,
        onEpoch: onEpoch ? (l) => onEpoch(l.epoch) : undefined,
        onCheckpoint: (epoch, net) => {
          const k = epochs.indexOf(epoch);
          scores[k] = 0;
          params[k] = Float32Array.from(net.net.params);
        },
      });
      return { index: job.index, scores, params, rowScores, mse, history: m.history };
    }
    fitNetwork(job.fit, val, opts, {
      trackValidation: false,
      checkpoints: epochs,
      onEpoch: onEpoch ? (l) => onEpoch(l.epoch) : undefined,
      onCheckpoint: (epoch, m) => {
        const k = epochs.indexOf(epoch);
        const { rows, sqErrors } = validationRowScores(m, val, job.base.mcSamples, scoreSeed(job.base.seed));
        if (sqErrors) mse[k] = sqErrors.reduce((a, b) => a + b, 0) / sqErrors.length;
        const score = rows.reduce((a, b) => a + b, 0) / rows.length;
        scores[k] = Number.isFinite(score) ? score : -Infinity;
        params[k] = Float32Array.from(m.net.params);
        rowScores[k] = rows;
      },
    });
    return { index: job.index, scores, params, rowScores, mse };
  } catch (err) {
    if (err instanceof DataError) return { index: job.index, scores, params, rowScores, mse, error: err.message };
    throw err;
  }
}

/** Rebuild a candidate's network at a checkpoint from its parameters (standardisation from the fit rows, as the run computed it). */
export function networkFromParams(
  fit: Dataset,
  opts: TrainOptions,
  params: Float32Array,
  epochs: number,
): FittedNetwork {
  const spec = specFor(fit, opts);
  const net = createMlp(spec, new Rng(0));
  net.params.set(params);
  const xs = fitStandardiser(fit.x, fit.n, fit.f);
  let yMean = 0;
  let yStd = 1;
  if (fit.task === 'regression') {
    const ys = fitStandardiser(fit.y, fit.n, 1);
    yMean = Math.fround(ys.mean[0]!);
    yStd = Math.fround(ys.std[0]!);
  }
  return {
    task: fit.task,
    features: fit.features,
    target: fit.target,
    labels: fit.labels,
    spec,
    net,
    noise: fit.task === 'regression' ? opts.noise : 'homoscedastic',
    xMean: Float32Array.from(xs.mean),
    xStd: Float32Array.from(xs.std),
    yMean,
    yStd,
    history: [],
    bestEpoch: epochs,
    epochsRun: epochs,
    engine: opts.engine === 'js' ? 'js' : 'wasm',
    trainRows: fit.n,
    valRows: 0,
    featureStats: featureStats(fit),
  };
}

export interface TuneProgress {
  /** Epochs trained so far over all candidates, and in total. */
  epochsDone: number;
  epochsTotal: number;
  candidatesDone: number;
  candidates: number;
  elapsedMs: number;
  /** Best score so far (−Infinity before the first). */
  best: number;
}

/**
 * Where the calibration rows of a tuned model come from: `crossfit` (regression; classifiers fall back to
 * `validation`), every training row predicted out of fold (crossFitFolds); `validation`, the tuning
 * validation rows scored by the winning candidate; `holdout`, rows held out of the refit.
 */
export type CalibrationSource = 'crossfit' | 'validation' | 'holdout';

/** Folds of the cross-fitted calibration. */
export const CROSS_FIT_FOLDS = 5;

/**
 * K folds of n rows for cross-fitted calibration: the permutation splitRows draws with `seed`, cut into K
 * consecutive parts of round(k·n/K)…round((k+1)·n/K) positions. With the tuner's seed and a validation
 * fraction of 1/K, fold 0 is exactly the tuning validation split and its complement, in the same order,
 * the tuning fit rows. Returns, per fold, the held-out rows and the rest (training order).
 */
export function crossFitFolds(n: number, k: number, seed: number): { held: Uint32Array; rest: Uint32Array }[] {
  if (!(Number.isInteger(k) && k >= 2 && k <= n))
    throw new DataError(`${n} rows are too few for ${k}-fold cross-fitting`);
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  new Rng(seed).shuffle(idx);
  return Array.from({ length: k }, (_, f) => {
    const a = Math.round((f * n) / k);
    const b = Math.round(((f + 1) * n) / k);
    const rest = new Uint32Array(n - (b - a));
    rest.set(idx.subarray(0, a), 0);
    rest.set(idx.subarray(b), a);
    return { held: idx.slice(a, b), rest };
  });
}

/** Out-of-fold predictives in row order: fold f's predictive belongs to rows folds[f].held. */
export function assembleOutOfFold(n: number, folds: { held: Uint32Array }[], preds: Predictive[]): Predictive {
  const mean = new Float64Array(n).fill(NaN);
  const epistemicVar = new Float64Array(n).fill(NaN);
  const hetero = preds.some((p) => p.aleatoricVar);
  const aleatoricVar = hetero ? new Float64Array(n).fill(NaN) : null;
  folds.forEach((f, k) => {
    const p = preds[k]!;
    f.held.forEach((r, j) => {
      if (!Number.isNaN(mean[r]!)) throw new Error(`row ${r} is in two folds`);
      mean[r] = p.mean[j]!;
      epistemicVar[r] = p.epistemicVar[j]!;
      if (aleatoricVar) aleatoricVar[r] = p.aleatoricVar![j]!;
    });
  });
  if (mean.some(Number.isNaN)) throw new Error('a row is in no fold');
  return { mean, epistemicVar, aleatoricVar };
}

export interface TuneOptions {
  /** Worker threads (0: run every candidate on this thread). */
  threads: number;
  grid?: Grid;
  calibration: CalibrationSource;
  /** Fraction of the training rows held out of the refit for calibration (calibration = holdout). */
  calibrationFraction: number;
  onProgress?: (p: TuneProgress) => void;
}

export interface TuneResult {
  model: TrainedModel;
  /**
   * The rows the validation metrics were measured on (the tuning validation split) and the network that
   * measured them: the winning candidate with the model's calibration (it never trained on those rows;
   * the refit model did). For a report of the validation rows.
   */
  validation: { model: TrainedModel; data: Dataset };
  /** The winner's options (epochs = the chosen training length). */
  options: TrainOptions;
  /** The record for the card. */
  card: {
    objective: string;
    fit_rows: number;
    validation_rows: number;
    mc_samples: number;
    grid: Record<string, unknown>;
    candidates: {
      dropout: number;
      input_dropout: number;
      weight_decay: number;
      noise?: NoiseModel;
      epochs: number;
      score: number | null;
    }[];
    chosen: number;
    /** The one-standard-error rule between the best heteroscedastic and homoscedastic candidates. */
    noise_rule?: {
      heteroscedastic_gain: number;
      standard_error: number;
      mse_heteroscedastic: number;
      mse_homoscedastic: number;
      kept: NoiseModel;
    };
    refit: { rows: number; epochs: number };
    calibration: { source: string; rows: number; folds?: number };
    threads: number;
  };
}

/** Default worker threads: the machine's parallelism, capped. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(8, availableParallelism()));
}

/** Run the jobs on `threads` workers (or inline), in any order; results by job index. */
async function runJobs(
  jobs: TuneJob[],
  threads: number,
  onEpoch: (index: number, epoch: number) => void,
  onDone: (r: TuneJobResult) => void,
): Promise<TuneJobResult[]> {
  const results: TuneJobResult[] = new Array(jobs.length);
  if (threads <= 0) {
    for (const job of jobs) {
      const r = runJob(job, (e) => onEpoch(job.index, e));
      results[job.index] = r;
      onDone(r);
    }
    return results;
  }
  const isTs = import.meta.url.endsWith('.ts');
  const entry = new URL(isTs ? './tune-worker.ts' : './tune-worker.js', import.meta.url);
  let next = 0;
  const workers: Worker[] = [];
  const retired = new Set<Worker>();
  try {
    await new Promise<void>((resolve, reject) => {
      let running = 0;
      const start = (): void => {
        // TypeScript (tests, tsx): a CommonJS shim loads the entry through tsx's require hook
        const worker = isTs
          ? new Worker(new URL('./worker-shim.cjs', import.meta.url), {
              workerData: { entry: fileURLToPath(entry) },
              execArgv: [...process.execArgv.filter((a) => !a.startsWith('--input-type')), '--import', 'tsx'],
            })
          : new Worker(entry);
        workers.push(worker);
        running++;
        const feed = (): void => {
          if (next < jobs.length) return worker.postMessage(jobs[next++]);
          retired.add(worker);
          void worker.terminate();
          if (--running === 0) resolve();
        };
        worker.on(
          'message',
          (
            msg:
              | { type: 'epoch'; index: number; epoch: number }
              | { type: 'done'; result: TuneJobResult }
              | { type: 'error'; message: string },
          ) => {
            if (msg.type === 'epoch') return onEpoch(msg.index, msg.epoch);
            if (msg.type === 'error') return reject(new Error(`tuning worker: ${msg.message}`));
            results[msg.result.index] = msg.result;
            onDone(msg.result);
            feed();
          },
        );
        worker.on('error', reject);
        worker.on('exit', (code) => {
          if (!retired.has(worker)) reject(new Error(`a tuning worker exited with code ${code}`));
        });
        feed();
      };
      for (let i = 0; i < Math.min(threads, jobs.length); i++) start();
    });
  } finally {
    for (const w of workers) retired.add(w);
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return results;
}

/**
 * Tune on `data` (the training rows): split off validation rows (opts.valSplit, seeded), run the grid,
 * pick the best candidate and training length, calibrate, refit on all rows with the winner, and measure
 * on `test` when given.
 */
export async function tune(
  data: Dataset,
  base: TrainOptions,
  tuneOpts: TuneOptions,
  test?: Dataset,
): Promise<TuneResult> {
  const [fit, val] = splitRows(data, base.valSplit, base.seed * 7919 + 1, 'validation split');
  const grid = tuneOpts.grid ?? defaultGrid(data.task, fit.n);
  if (grid.epochs.length === 0 || grid.candidates.length === 0) throw new DataError('the tuning grid is empty');
  const epochs = [...grid.epochs].sort((a, b) => a - b);
  for (const c of grid.candidates) specFor(fit, candidateOptions(base, c, epochs[0]!)); // bad settings fail here, not in a worker
  const jobs: TuneJob[] = grid.candidates.map((candidate, index) => ({ index, candidate, base, fit, val, epochs }));
  const lastEpoch = epochs[epochs.length - 1]!;
  const done = new Array<number>(jobs.length).fill(0);
  let candidatesDone = 0;
  let best = -Infinity;
  const started = performance.now();
  const report = (): void =>
    tuneOpts.onProgress?.({
      epochsDone: done.reduce((a, b) => a + b, 0),
      epochsTotal: jobs.length * lastEpoch,
      candidatesDone,
      candidates: jobs.length,
      elapsedMs: performance.now() - started,
      best,
    });
  const threads = Math.min(tuneOpts.threads, jobs.length);
  const results = await runJobs(
    jobs,
    threads,
    (index, epoch) => {
      done[index] = epoch;
      report();
    },
    (r) => {
      candidatesDone++;
      done[r.index] = lastEpoch;
      for (const s of r.scores) best = Math.max(best, s);
      report();
    },
  );

  // the winner: best score; ties to the earlier candidate, then the shorter run
  const bestOf = (ok: (c: Candidate) => boolean): [number, number] => {
    let bi = -1;
    let bk = -1;
    results.forEach((r, i) =>
      r.scores.forEach((s, k) => {
        if (ok(grid.candidates[i]!) && Number.isFinite(s) && (bi < 0 || s > results[bi]!.scores[bk]!)) {
          bi = i;
          bk = k;
        }
      }),
    );
    return [bi, bk];
  };
  let [win, winK] = bestOf(() => true);
  if (win < 0) throw new DataError('every tuning candidate diverged; lower --lr');
  // A heteroscedastic winner must beat the best homoscedastic candidate by more than one standard error
  // of the paired per-row difference (the one-standard-error rule, Hastie et al. 2009 §7.10) and predict
  // the mean no worse (validation MSE): measured on the UCI data, its NLL training can buy likelihood
  // with a worse mean (concrete: test RMSE 6.1 against 4.5) and over-confidence on rows the validation
  // split does not show (one concrete test row at z = 18: −70 nats).
  let noiseRule: TuneResult['card']['noise_rule'];
  if (grid.candidates[win]!.noise === 'heteroscedastic') {
    const [hi, hk] = bestOf((c) => c.noise === 'homoscedastic');
    if (hi >= 0) {
      const a = results[win]!.rowScores[winK]!;
      const b = results[hi]!.rowScores[hk]!;
      const d = Array.from(a, (v, i) => v - b[i]!);
      const mean = d.reduce((x, y) => x + y, 0) / d.length;
      const se = Math.sqrt(d.reduce((x, y) => x + (y - mean) ** 2, 0) / Math.max(1, d.length - 1) / d.length);
      const mseHet = results[win]!.mse[winK]!;
      const mseHom = results[hi]!.mse[hk]!;
      const keep = mean > se && mseHet <= mseHom;
      noiseRule = {
        heteroscedastic_gain: mean,
        standard_error: se,
        mse_heteroscedastic: mseHet,
        mse_homoscedastic: mseHom,
        kept: keep ? 'heteroscedastic' : 'homoscedastic',
      };
      if (!keep) [win, winK] = [hi, hk];
    }
  }
  const winner = results[win]!;
  const chosenEpochs = epochs[winK]!;
  const options = candidateOptions(base, grid.candidates[win]!, chosenEpochs);
  const winnerNet = networkFromParams(fit, options, winner.params[winK]!, chosenEpochs);
  const calSeed = base.seed * 7919 + 5;

  let refit: FittedNetwork;
  let cal: Calibration;
  let source: CalibrationSource =
    tuneOpts.calibration === 'crossfit' && data.task !== 'regression' ? 'validation' : tuneOpts.calibration;
  let crossFit: { folds: number } | undefined;
  if (source === 'crossfit') {
    // Cross-fitting (e.g. Chernozhukov et al. 2018; the CV+ idea of Barber et al. 2021): the winner's
    // settings trained on K − 1 folds predict the K-th, so every training row gets an honest predictive;
    // (s, σ) and the conformal scores are fitted on all of them instead of the one validation fifth. The
    // fold fits and the refit run on the workers; fold 0 reuses the winning candidate when it is the
    // tuning split.
    const K = CROSS_FIT_FOLDS;
    const folds = crossFitFolds(data.n, K, base.seed * 7919 + 1);
    const reuse0 = folds[0]!.held.length === val.n;
    const foldData = folds.map((f) => ({ fit: subset(data, f.rest), held: subset(data, f.held) }));
    const crossJobs: TuneJob[] = [
      { index: 0, candidate: grid.candidates[win]!, base, fit: data, val: null, epochs: [chosenEpochs] },
    ];
    const jobOfFold: number[] = [];
    foldData.forEach((fd, k) => {
      if (k === 0 && reuse0) return void (jobOfFold[k] = -1);
      jobOfFold[k] = crossJobs.length;
      crossJobs.push({
        index: crossJobs.length,
        candidate: grid.candidates[win]!,
        base,
        fit: fd.fit,
        val: null,
        epochs: [chosenEpochs],
      });
    });
    const out = await runJobs(
      crossJobs,
      Math.min(tuneOpts.threads, crossJobs.length),
      () => {},
      () => {},
    );
    for (const r of out)
      if (r.error || !r.params[0])
        throw new DataError(`a cross-fitting run failed: ${r.error ?? 'diverged'}; lower --lr`);
    refit = { ...networkFromParams(data, options, out[0]!.params[0]!, chosenEpochs), history: out[0]!.history ?? [] };
    const preds = foldData.map((fd, k) => {
      const net =
        jobOfFold[k]! < 0
          ? winnerNet
          : networkFromParams(fd.fit, options, out[jobOfFold[k]!]!.params[0]!, chosenEpochs);
      return mcPredictive(
        net,
        standardise(fd.held.x, fd.held.n, fd.held.f, net.xMean, net.xStd),
        fd.held.n,
        base.mcSamples,
        calSeed + 10 + k,
      );
    });
    cal = calibrateRegression(
      assembleOutOfFold(data.n, folds, preds),
      data.y,
      refit.yStd,
      `out-of-fold predictions on all ${data.n} training rows (${K}-fold cross-fitting: the winner's settings trained on the other ${K - 1} folds predict each fold; fold 1 is the tuning validation split), for the refit on all rows`,
    );
    crossFit = { folds: K };
  } else if (source === 'holdout') {
    const [refitRows, calRows] = splitRows(
      data,
      tuneOpts.calibrationFraction,
      base.seed * 7919 + 7,
      'calibration split',
    );
    refit = fitNetwork(refitRows, null, options);
    cal = calibrate(
      refit,
      calRows,
      base.mcSamples,
      calSeed,
      `held-out calibration rows (${calRows.n} of the training rows, not used by the refit)`,
    );
  } else {
    source = 'validation';
    refit = fitNetwork(data, null, options);
    cal = calibrate(
      winnerNet,
      val,
      base.mcSamples,
      calSeed,
      `tuning validation rows, scored by the winning candidate trained on the other ${fit.n} rows (an approximation for the refit model, which also trained on them)`,
    );
  }
  const model = withCalibration({ ...refit, valRows: val.n }, cal);
  // validation metrics: the winner (which never saw these rows) with the calibration the model carries
  const validationModel: TrainedModel = { ...withCalibration(winnerNet, cal), metrics: model.metrics };
  model.metrics.validation = evaluate(validationModel, val, calSeed + 1, base.mcSamples);
  if (test) model.metrics.test = evaluate(model, test, calSeed + 2, base.mcSamples);

  const reg = data.task === 'regression';
  const candidates = grid.candidates.flatMap((c, i) =>
    epochs.map((e, k) => ({
      dropout: c.dropout,
      input_dropout: c.inputDropout,
      weight_decay: c.weightDecay,
      ...(reg ? { noise: c.noise } : {}),
      epochs: e,
      score: Number.isFinite(results[i]!.scores[k]!) ? results[i]!.scores[k]! : null,
    })),
  );
  return {
    model,
    validation: { model: validationModel, data: val },
    options,
    card: {
      objective: reg
        ? 'mean validation log-likelihood of the served predictive N(MC mean, MC variance [+ predicted variance] + σ²), nats; σ cross-fitted on halves of the validation rows; a heteroscedastic winner must beat the best homoscedastic candidate by more than one standard error and have no larger validation MSE (noise_rule)'
        : 'minus the mean validation NLL of the MC-averaged probabilities, temperature cross-fitted on halves of the validation rows',
      fit_rows: fit.n,
      validation_rows: val.n,
      mc_samples: base.mcSamples,
      grid: grid.rule,
      candidates,
      chosen: win * epochs.length + winK,
      ...(noiseRule ? { noise_rule: noiseRule } : {}),
      refit: { rows: refit.trainRows, epochs: chosenEpochs },
      calibration: { source, rows: cal.rows, ...(crossFit ? { folds: crossFit.folds } : {}) },
      threads,
    },
  };
}
