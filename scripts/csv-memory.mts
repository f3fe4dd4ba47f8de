/**
 * Peak memory and time of reading a large CSV into a Dataset (issue 22, "bounded memory").
 * `npx tsx scripts/csv-memory.mts [--rows 500000] [--features 10] [--via stream|table]`
 * writes a synthetic regression CSV to the temp folder once (seeded), then reads it in this process:
 * `stream` with readDataset (chunks straight into typed arrays), `table` with readCsvFile + toDataset
 * (the whole text and an array of rows of strings first). Run each in its own process: the peak RSS is
 * the process's (process.resourceUsage().maxRSS).
 */
import { createWriteStream, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as data from '../src/train/data.js';
import { Rng } from '../src/util/rng.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '500000' },
    features: { type: 'string', default: '10' },
    via: { type: 'string', default: 'stream' },
  },
});
const rows = Number(values.rows);
const features = Number(values.features);

async function writeCsv(file: string): Promise<void> {
  const out = createWriteStream(file);
  const rng = new Rng(22);
  const header = [...Array.from({ length: features }, (_, j) => `x${j}`), 'y'].join(',');
  out.write(`${header}\n`);
  for (let i = 0; i < rows; i++) {
    const x = Array.from({ length: features }, () => rng.normal());
    const y = x.reduce((a, v, j) => a + v * (j + 1), 0) + rng.normal();
    const line = `${[...x, y].map((v) => v.toPrecision(8)).join(',')}\n`;
    if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r) => out.end(() => r()));
}

const file = join(tmpdir(), `ds-csv-${rows}x${features}.csv`);
if (!existsSync(file)) await writeCsv(file);
const before = process.memoryUsage().rss;
const started = performance.now();
const cpu = process.cpuUsage();
let n: number;
if (values.via === 'table') {
  n = data.toDataset(data.readCsvFile(file).table, { target: 'y' }).n;
} else {
  n = data.readDataset(file, { target: 'y' }).data.n;
}
const ms = performance.now() - started;
const c = process.cpuUsage(cpu);
const mb = (b: number): string => (b / 2 ** 20).toFixed(0);
process.stdout.write(
  `${values.via}: ${n} rows × ${features} features from ${file}: ${(ms / 1000).toFixed(2)} s wall, ${((c.user + c.system) / 1e6).toFixed(2)} s CPU, ` +
    `peak RSS ${mb(process.resourceUsage().maxRSS * 1024)} MB (${mb(before)} MB before reading)\n`,
);
