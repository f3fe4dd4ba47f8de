/**
 * The training cost of each architecture of the tuner's grid on a UCI split (issue 22: what the depth in
 * the search costs): CPU seconds per 1000 optimiser steps of one candidate's run (batch 128, as --tune),
 * measured on this thread after a warm-up.
 *
 *   flock /tmp/perf.lock npx tsx scripts/uci-lab-cost.mts --dataset concrete [--hidden 200/50,50] [--epochs 200]
 *
 * Prints one JSON line per architecture.
 */
import { parseArgs } from 'node:util';
import { loadUci, splitCsv } from '../bench/uci.js';
import { parseCsv, toDataset } from '../src/train/data.js';
import { RUN_OPTIONS, TUNE_DEEP, TUNE_HIDDEN, trainDefaults } from '../src/train/options.js';
import { fitNetwork } from '../src/train/train.js';
import { stepsPerEpoch } from '../src/train/tune.js';

const { values } = parseArgs({
  options: {
    dataset: { type: 'string', default: 'concrete' },
    hidden: { type: 'string' },
    epochs: { type: 'string', default: '200' },
  },
});
const ds = loadUci('data/uci', values.dataset!);
const data = toDataset(parseCsv(splitCsv(ds, ds.train(0)), 'train'), { target: 'y', task: 'regression' });
const architectures = values.hidden
  ? RUN_OPTIONS.tuneHidden.parse!(values.hidden, 'hidden')!
  : [[TUNE_HIDDEN], TUNE_DEEP];
const epochs = Number(values.epochs);
for (const hidden of architectures) {
  const opts = { ...trainDefaults(true), hidden, dropout: [0.05], patience: 0 };
  fitNetwork(data, null, { ...opts, epochs: 5 }); // warm-up
  const cpu = process.cpuUsage();
  fitNetwork(data, null, { ...opts, epochs });
  const c = process.cpuUsage(cpu);
  const steps = epochs * stepsPerEpoch(data.n, opts.batchSize);
  const cpuS = (c.user + c.system) / 1e6;
  const line = {
    dataset: values.dataset,
    hidden,
    rows: data.n,
    steps,
    cpu_s: cpuS,
    cpu_ms_per_1000_steps: (1000 * cpuS * 1000) / steps,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
