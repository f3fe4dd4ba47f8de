/**
 * The UCI lab (development only, not the benchmark): trains recipe variants with the trainer's own code on
 * the UCI splits and caches, for every checkpoint, the network's parameters and its Monte Carlo
 * predictive (mean, epistemic variance, predicted aleatoric variance) on its held-out rows and on the
 * split's test rows, so that selection and calibration rules can be compared offline
 * (scripts/uci-lab-eval.mts). The reported figures come from `npm run bench -- uci` only.
 *
 *   npx tsx scripts/uci-lab.mts --datasets concrete --splits 0-19 --variants hom-p0.05-c0.01 --folds f0,refit
 *
 * Folds: the training rows shuffled as the tuner shuffles them (stream 'validationSplit' of src/util/rng.ts), cut into 5 equal parts; f0
 * is the tuner's validation split (its first 20%), fK trains on the other four parts and predicts part K;
 * `refit` trains on every training row.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadUci, splitCsv } from '../bench/uci.js';
import { type Dataset, parseCsv, subset, toDataset } from '../src/train/data.js';
import {
  DEFAULT_TRAIN_OPTIONS,
  type TrainOptions,
  fitNetwork,
  mcPredictive,
  standardise,
  type FittedNetwork,
} from '../src/train/train.js';
import { Rng, stream } from '../src/util/rng.js';

export const CHECKPOINTS = [250, 500, 1000, 2000, 4000];
export const FOLDS = 5;

export interface Variant {
  key: string;
  noise: 'homoscedastic' | 'heteroscedastic';
  beta: number;
  dropout: number;
  inputDropout: number;
  /** λ = c / fit rows (the rows of an f-fold run, also used for the refit). */
  c: number;
  hidden: number;
  lr: number;
  batch: number;
}

/** hom-p0.05-c0.01 | het-b0.5-p0.05-c1 [-in0.05] [-h200] [-lr3e-3] [-b32] */
export function parseVariant(key: string): Variant {
  const parts = key.split('-');
  const v: Variant = {
    key,
    noise: parts[0] === 'het' ? 'heteroscedastic' : 'homoscedastic',
    beta: 0,
    dropout: 0.05,
    inputDropout: 0,
    c: 0.01,
    hidden: 100,
    lr: 1e-3,
    batch: 128,
  };
  if (parts[0] !== 'het' && parts[0] !== 'hom') throw new Error(`variant ${key}`);
  for (const p of parts.slice(1)) {
    const m = /^(lr|in|bs|b|p|c|h)([\d.e+-]+)$/.exec(p);
    if (!m) throw new Error(`variant ${key}: ${p}`);
    const x = Number(m[2]);
    if (m[1] === 'lr') v.lr = x;
    else if (m[1] === 'in') v.inputDropout = x;
    else if (m[1] === 'bs') v.batch = x;
    else if (m[1] === 'b') v.beta = x;
    else if (m[1] === 'p') v.dropout = x;
    else if (m[1] === 'c') v.c = x;
    else v.hidden = x;
  }
  return v;
}

export interface Split {
  data: Dataset;
  test: Dataset;
  /** Row indices of the training rows in the tuner's shuffled order. */
  order: Uint32Array;
}

export function loadSplit(dataDir: string, name: string, split: number): Split {
  const ds = loadUci(dataDir, name);
  const tr = parseCsv(splitCsv(ds, ds.train(split)), 'train');
  const data = toDataset(tr, { target: 'y', task: 'regression' });
  const te = parseCsv(splitCsv(ds, ds.test(split)), 'test');
  const test = toDataset(te, { target: 'y', task: 'regression', features: data.features });
  const order = new Uint32Array(data.n);
  for (let i = 0; i < data.n; i++) order[i] = i;
  new Rng(stream(split, 'validationSplit')).shuffle(order);
  return { data, test, order };
}

/** Rows of part k (of FOLDS) in the tuner's order; part 0 = the tuner's validation rows for val-split 0.2. */
export function foldRows(s: Split, k: number): { held: number[]; rest: number[] } {
  const n = s.data.n;
  const lo = Math.round((k * n) / FOLDS);
  const hi = Math.round(((k + 1) * n) / FOLDS);
  const held = Array.from(s.order.subarray(lo, hi));
  const rest = [...Array.from(s.order.subarray(hi)), ...Array.from(s.order.subarray(0, lo))];
  return { held, rest };
}

export interface Pred {
  mean: number[];
  epi: number[];
  alea: number[] | null;
}

export interface FoldRecord {
  variant: string;
  fold: string;
  /** Training-row indices held out (empty for refit). */
  held: number[];
  fitRows: number;
  checkpoints: number[];
  /** Per checkpoint (null after a divergence). */
  heldPred: (Pred | null)[];
  testPred: (Pred | null)[];
  params: (string | null)[];
  cpuMs: number;
}

const enc = (a: Float32Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
export const decParams = (s: string): Float32Array => {
  const b = Buffer.from(s, 'base64');
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice();
};

export function options(v: Variant, seed: number, fitRows: number): TrainOptions {
  return {
    ...DEFAULT_TRAIN_OPTIONS,
    hidden: [v.hidden],
    dropout: [v.dropout],
    inputDropout: v.inputDropout,
    noise: v.noise,
    nllBeta: v.beta,
    epochs: CHECKPOINTS[CHECKPOINTS.length - 1]!,
    batchSize: v.batch,
    lr: v.lr,
    weightDecay: v.c / fitRows,
    seed,
    mcSamples: 200,
  };
}

function pred(m: FittedNetwork, ds: Dataset, seed: number): Pred {
  const xs = standardise(ds.x, ds.n, ds.f, m.xMean, m.xStd);
  const p = mcPredictive(m, xs, ds.n, 200, seed);
  return {
    mean: Array.from(p.mean),
    epi: Array.from(p.epistemicVar),
    alea: p.aleatoricVar ? Array.from(p.aleatoricVar) : null,
  };
}

export function runFold(s: Split, split: number, v: Variant, fold: string): FoldRecord {
  const t0 = process.cpuUsage();
  let held: number[] = [];
  let fitSet: Dataset;
  // λ uses the f-fold fit rows for every run (as the tuner carries the winner's λ to the refit)
  const fitRowsF = s.data.n - Math.round(s.data.n / FOLDS);
  if (fold === 'refit') fitSet = s.data;
  else {
    const k = Number(fold.slice(1));
    const r = foldRows(s, k);
    held = r.held;
    fitSet = subset(s.data, r.rest);
  }
  const heldSet = held.length ? subset(s.data, held) : null;
  const opts = options(v, split, fitRowsF);
  const rec: FoldRecord = {
    variant: v.key,
    fold,
    held,
    fitRows: fitSet.n,
    checkpoints: CHECKPOINTS,
    heldPred: CHECKPOINTS.map(() => null),
    testPred: CHECKPOINTS.map(() => null),
    params: CHECKPOINTS.map(() => null),
    cpuMs: 0,
  };
  try {
    fitNetwork(fitSet, heldSet, opts, {
      trackValidation: false,
      checkpoints: CHECKPOINTS,
      onCheckpoint: (epoch, m) => {
        const k = CHECKPOINTS.indexOf(epoch);
        if (heldSet) rec.heldPred[k] = pred(m, heldSet, stream(split, 'tuneScore'));
        rec.testPred[k] = pred(m, s.test, stream(split, 'labTest'));
        rec.params[k] = enc(Float32Array.from(m.net.params));
      },
    });
  } catch (err) {
    process.stderr.write(`${v.key} ${fold}: ${(err as Error).message}\n`);
  }
  const c = process.cpuUsage(t0);
  rec.cpuMs = (c.user + c.system) / 1000;
  return rec;
}

export const cachePath = (root: string, name: string, split: number, variant: string, fold: string): string =>
  join(root, name, String(split), variant, `${fold}.json`);

export function readRecord(
  root: string,
  name: string,
  split: number,
  variant: string,
  fold: string,
): FoldRecord | null {
  const p = cachePath(root, name, split, variant, fold);
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as FoldRecord) : null;
}

function range(s: string): number[] {
  return s.split(',').flatMap((t) => {
    const m = /^(\d+)-(\d+)$/.exec(t);
    if (!m) return [Number(t)];
    const out: number[] = [];
    for (let i = Number(m[1]); i <= Number(m[2]); i++) out.push(i);
    return out;
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      datasets: { type: 'string', default: 'bostonHousing,concrete,energy,wine-quality-red,yacht' },
      splits: { type: 'string', default: '0-19' },
      variants: { type: 'string' },
      folds: { type: 'string', default: 'f0,refit' },
      cache: { type: 'string', default: '/tmp/q-lab/cache' },
      shard: { type: 'string', default: '0/1' },
    },
  });
  const [si, sn] = values.shard!.split('/').map(Number) as [number, number];
  const tasks: [string, number, string, string][] = [];
  for (const d of values.datasets!.split(','))
    for (const s of range(values.splits!))
      for (const v of values.variants!.split(',')) for (const f of values.folds!.split(',')) tasks.push([d, s, v, f]);
  let i = 0;
  for (const [d, s, vk, f] of tasks) {
    if (i++ % sn !== si) continue;
    const p = cachePath(values.cache!, d, s, vk, f);
    if (existsSync(p)) continue;
    const split = loadSplit('data/uci', d, s);
    const rec = runFold(split, s, parseVariant(vk), f);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, JSON.stringify(rec));
    process.stdout.write(`${d} ${s} ${vk} ${f}: ${(rec.cpuMs / 1000).toFixed(1)} s\n`);
  }
}
