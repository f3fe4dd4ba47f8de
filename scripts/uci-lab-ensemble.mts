/**
 * Lab (development only): would averaging M MC dropout networks (a uniform mixture: each pass one member)
 * beat one, paired on the same UCI splits? For each split it takes the setting a committed UCI run chose
 * (bench/uci-results.json `chosen`), trains M members of the tuner's cross-fitted calibration (5 folds
 * and the refit, member m seeded from the split's seed; member 0 is the tuner's own), calibrates (s, σ)
 * and the conformal scores on the mixture's out-of-fold predictive with the trainer's code, and scores
 * the split's test rows under the first 1 … M members. The reported figures come from `npm run bench -- uci`.
 *
 *   nice -n 19 npx tsx scripts/uci-lab-ensemble.mts --dataset concrete --splits 0-19 --members 3 --out F.jsonl
 */
import { appendFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseCli } from '../src/train/cli-args.js';
import { subset } from '../src/train/data.js';
import { type Predictive, calibrateRegression, mcPredictive, standardise, totalStd } from '../src/train/train.js';
import { assembleOutOfFold, crossFitFolds } from '../src/train/tune-calibrate.js';
import { memberSeed, mixPredictives } from '../src/train/ensemble.js';
import { candidateOptions, networkFromParams, type TuneJob } from '../src/train/tune-job.js';
import { runJobs } from '../src/train/tune-workers.js';
import { conformalQuantile } from '../src/uncertainty/intervals.js';
import { gaussianLogLik } from '../src/uncertainty/scoring.js';
import { stream } from '../src/util/rng.js';
import { loadSplit } from './uci-lab.mjs';

const { values } = parseArgs({
  options: {
    dataset: { type: 'string' },
    splits: { type: 'string', default: '0-19' },
    members: { type: 'string', default: '3' },
    results: { type: 'string', default: 'bench/uci-results.json' },
    threads: { type: 'string', default: '2' },
    'test-samples': { type: 'string', default: '1000' },
    out: { type: 'string' },
  },
});
const range = (s: string): number[] =>
  s.split(',').flatMap((p) => {
    const [a, b] = p.split('-').map(Number);
    return b === undefined ? [a!] : Array.from({ length: b - a! + 1 }, (_, i) => a! + i);
  });

const dataset = values.dataset!;
const M = Number(values.members);
const committed = JSON.parse(readFileSync(values.results!, 'utf8')).datasets.find(
  (d: { name: string }) => d.name === dataset,
);
const K = 5;
for (const split of range(values.splits!)) {
  const t0 = performance.now();
  const { data, test } = loadSplit('data/uci', dataset, split);
  const c = committed.per_split.find((s: { split: number }) => s.split === split).chosen;
  const base = parseCli([
    '--data',
    'x.csv',
    '--target',
    'y',
    '--name',
    'lab',
    '--seed',
    String(split),
    '--tune',
    '--threads',
    '1',
  ]).opts;
  const candidate = {
    dropout: c.dropout,
    inputDropout: c.input_dropout,
    weightDecay: c.weight_decay,
    noise: c.noise,
    hidden: c.hidden,
  };
  const folds = crossFitFolds(data.n, K, stream(base.seed, 'validationSplit'));
  const foldData = folds.map((f) => ({ fit: subset(data, f.rest), held: subset(data, f.held) }));
  const seeds = Array.from({ length: M }, (_, m) => memberSeed(base.seed, m));
  const jobs: TuneJob[] = [];
  for (const seed of seeds)
    for (const fit of [data, ...foldData.map((f) => f.fit)])
      jobs.push({ index: jobs.length, candidate, base: { ...base, seed }, fit, val: null, epochs: [c.epochs] });
  const out = await runJobs(
    jobs,
    Number(values.threads),
    () => {},
    () => {},
  );
  const oof: Predictive[] = [];
  let yStd = 1;
  const onTest: Predictive[] = [];
  seeds.forEach((seed, m) => {
    const b = { ...base, seed };
    const opts = candidateOptions(b, candidate, c.epochs);
    const job = (k: number) => out[m * (K + 1) + k]!.params[0]!;
    const refit = networkFromParams(data, opts, job(0), c.epochs);
    if (m === 0) yStd = refit.yStd;
    const preds = foldData.map((fd, k) => {
      const net = networkFromParams(fd.fit, opts, job(k + 1), c.epochs);
      const xs = standardise(fd.held.x, fd.held.n, fd.held.f, net.xMean, net.xStd);
      return mcPredictive(net, xs, fd.held.n, base.mcSamples, stream(seed, 'crossFitFold', k));
    });
    oof.push(assembleOutOfFold(data.n, folds, preds));
    const xt = standardise(test.x, test.n, test.f, refit.xMean, refit.xStd);
    onTest.push(mcPredictive(refit, xt, test.n, Number(values['test-samples']), stream(12345, 'labTest', m)));
  });
  for (let use = 1; use <= M; use++) {
    const cal = calibrateRegression(mixPredictives(oof.slice(0, use)), data.y, yStd, 'lab');
    const p = mixPredictives(onTest.slice(0, use));
    const std = totalStd(p, cal.aleatoricStd, cal.epistemicScale);
    const scores = Float64Array.from(cal.conformalScores).sort();
    const q = conformalQuantile(scores, 0.9);
    let ll = 0;
    let se = 0;
    let cov = 0;
    let ccov = 0;
    for (let i = 0; i < test.n; i++) {
      const r = test.y[i]! - p.mean[i]!;
      ll += gaussianLogLik(test.y[i]!, p.mean[i]!, std[i]!) / test.n;
      se += (r * r) / test.n;
      cov += Math.abs(r) <= 1.6448536269514722 * std[i]! ? 1 / test.n : 0;
      ccov += Math.abs(r) <= q * std[i]! ? 1 / test.n : 0;
    }
    const row = {
      dataset,
      split,
      members: use,
      ll,
      rmse: Math.sqrt(se),
      cov90: cov,
      conformal90: ccov,
      committed_ll: committed.per_split.find((s: { split: number }) => s.split === split).ll,
      s: cal.epistemicScale,
      sigma: cal.aleatoricStd,
      cpu_s: process.cpuUsage().user / 1e6,
      wall_s: (performance.now() - t0) / 1000,
    };
    console.log(JSON.stringify(row));
    if (values.out) appendFileSync(values.out, `${JSON.stringify(row)}\n`);
  }
}
