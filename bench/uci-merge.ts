/**
 * One UCI table from several runs of `npm run bench -- uci` (each run's file holds the datasets it ran):
 * the datasets of every file in the order given, a later file's dataset replacing an earlier one of the
 * same name, the table made anew, and each run's command, date and wall time kept under `runs`.
 *
 *   npx tsx bench/uci-merge.ts --out bench/uci-results.json SMALL.json LARGE.json
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { type DatasetResult, markdownTable, type UciResult } from './uci.js';

/** What a merged file keeps of each run. */
export interface MergedRun {
  file: string;
  command: string;
  date: string;
  wall_s: number;
  datasets: string[];
}

/** The merged result: every run's datasets (last one wins per name), the table of them, and the runs. */
export function mergeRuns(runs: { file: string; result: UciResult }[]): {
  datasets: DatasetResult[];
  table: string;
  runs: MergedRun[];
} {
  const byName = new Map<string, DatasetResult>();
  for (const { result } of runs) for (const d of result.datasets) byName.set(d.name, d);
  const datasets = [...byName.values()];
  return {
    datasets,
    table: markdownTable(datasets),
    runs: runs.map(({ file, result }) => ({
      file,
      command: result.command,
      date: result.date,
      wall_s: result.wall_s,
      datasets: result.datasets.map((d) => d.name),
    })),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--out');
  const out = at >= 0 ? args.splice(at, 2)[1] : undefined;
  if (!out || args.length === 0) {
    process.stderr.write('usage: npx tsx bench/uci-merge.ts --out OUT.json RUN.json [RUN.json …]\n');
    process.exit(2);
  }
  const runs = args.map((file) => ({ file, result: JSON.parse(readFileSync(file, 'utf8')) as UciResult }));
  const merged = mergeRuns(runs);
  writeFileSync(out, `${JSON.stringify(merged, null, 2)}\n`);
  process.stdout.write(`${merged.table}\n`);
}
