/**
 * Some splits of a UCI dataset the way `npm run bench -- uci` runs them, for paired comparisons on large
 * sets where the bench's all-or-nothing run per dataset does not fit the time (issue 22): train each split
 * with the built CLI (`dist/train/cli.js`, the bench's arguments and seed) unless DIR/NAME-S/model.json
 * exists, then serve DIR with the real server and score the test rows as the bench does (1000 samples,
 * seed 12345; RMSE, test LL and 90% coverage of the served gaussian and conformal intervals).
 *
 *   nice -n 19 npx tsx scripts/uci-lab-split.mts --dataset power-plant --splits 0,1 --models DIR [-- --tune --tune-hidden 200]
 *
 * Prints one JSON line per split (training CPU seconds when it trained).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadUci, scoreSplit, splitCsv } from '../bench/uci.js';

const { values, positionals } = parseArgs({
  options: {
    dataset: { type: 'string', default: 'power-plant' },
    splits: { type: 'string', default: '0' },
    models: { type: 'string' },
    port: { type: 'string', default: '18931' },
  },
  allowPositionals: true,
});
const name = values.dataset!;
const dir = values.models!;
const splits = values.splits!.split(',').map(Number);
const ds = loadUci('data/uci', name);
mkdirSync(dir, { recursive: true });

const trainCpu = new Map<number, number>();
for (const s of splits) {
  if (existsSync(join(dir, `${name}-${s}`, 'model.json'))) continue;
  const csv = join(dir, `train_${s}.csv`);
  writeFileSync(csv, splitCsv(ds, ds.train(s)));
  const args = ['--data', csv, '--target', 'y', '--task', 'regression', '--name', `${name}-${s}`, '--out', dir];
  const out = execFileSync(
    process.execPath,
    ['dist/train/cli.js', ...args, '--seed', String(s), '--quiet', ...positionals],
    {
      encoding: 'utf8',
    },
  );
  trainCpu.set(s, Number(/\(([\d.]+) s CPU\)/.exec(out)?.[1]));
}

const url = `http://127.0.0.1:${values.port}`;
const server = spawn(process.execPath, ['dist/server/server.js'], {
  env: {
    ...process.env,
    MODELS_DIR: dir,
    PORT: values.port,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    MC_MAX_WORK: '10000000',
  },
  stdio: 'ignore',
});
try {
  for (;;) {
    const ok = await fetch(`${url}/health/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const s of splits) {
    const idx = ds.test(s);
    const x = idx.map((r) => ds.features.map((c) => Number(ds.rows[r]![c])));
    const y = idx.map((r) => Number(ds.rows[r]![ds.target]));
    const ask = async (method: string) => {
      const body = { instances: x, samples: 1000, seed: 12345, interval: 0.9, interval_method: method };
      const res = await fetch(`${url}/v1/models/${name}-${s}/uncertainty`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const j = (await res.json()) as {
        predictions: { mean: number; std: number; interval: { lower: number; upper: number } }[];
      };
      return j.predictions.map((r) => ({ mean: r.mean, std: r.std, lower: r.interval.lower, upper: r.interval.upper }));
    };
    const g = await ask('gaussian');
    const c = await ask('conformal');
    // scoreSplit scores every card level; the other levels are not asked here, so give it the 90% rows for each
    const levels = Object.fromEntries(['0.5', '0.8', '0.9', '0.95'].map((l) => [l, g]));
    const sc = scoreSplit(y, levels, { '0.9': c });
    const card = JSON.parse(readFileSync(join(dir, `${name}-${s}`, 'model.json'), 'utf8'));
    const chosen = card.tuning.candidates[card.tuning.chosen];
    const line = {
      dataset: name,
      split: s,
      rmse: sc.rmse,
      ll: sc.ll,
      coverage_90: sc.coverage['0.9'],
      conformal_coverage_90: sc.conformal_coverage['0.9'],
      chosen,
      ...(trainCpu.has(s) ? { train_cpu_s: trainCpu.get(s) } : {}),
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  }
} finally {
  server.kill('SIGTERM');
}
