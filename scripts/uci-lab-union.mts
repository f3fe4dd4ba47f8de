/**
 * The UCI result of a grid widened by extra candidates, without training the grid again (issue 22):
 * a tuning candidate's run and validation score do not depend on the other candidates (each has its own
 * seeded streams, the validation rows and the score's masks come from the split's seed), so the grid
 * "reference ∪ extra" chooses, on each split, the winner of whichever run's winner scored higher on
 * validation (ties: the reference, whose candidates come first), and that winner's refit and calibration
 * are the ones its run served. Run the extra candidates alone (`npm run bench -- uci … --tune-dropout
 * 0.1,0.3 --tune-weight-decay 0.01 --out EXTRA.json`), then
 *
 *   npx tsx scripts/uci-lab-union.mts REFERENCE.json EXTRA.json [EXTRA2.json …] [--out UNION.json]
 *
 * prints the union paired against the reference (bench/uci-paired.ts) and which splits changed winner.
 * The union's training CPU is the sum of the runs' (an upper bound: each run also paid a refit and its
 * calibration, which the union pays once).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pairedDeltas, pairedTable } from '../bench/uci-paired.js';
import type { DatasetResult } from '../bench/uci.js';

type Run = { datasets: DatasetResult[] };
type Split = DatasetResult['per_split'][number];
/** The card's tuning candidate the bench copies into a split's result. */
interface Chosen {
  dropout: number;
  weight_decay: number;
  hidden: number[];
  epochs: number;
  score: number;
}
const chosenOf = (s: Split): Chosen | undefined => s.chosen as Chosen | undefined;
const scoreOf = (s: Split): number => chosenOf(s)?.score ?? -Infinity;

const { values, positionals } = parseArgs({ options: { out: { type: 'string' } }, allowPositionals: true });
const [refFile, ...extraFiles] = positionals;
if (!refFile || !extraFiles.length) {
  process.stderr.write(
    'usage: npx tsx scripts/uci-lab-union.mts REFERENCE.json EXTRA.json [EXTRA2.json …] [--out F]\n',
  );
  process.exit(2);
}
const read = (f: string): Run => JSON.parse(readFileSync(f, 'utf8'));
const ref = read(refFile);
const extras = extraFiles.map(read);

/** The split of the run whose winner scored best on validation (the first run on a tie), with every run's CPU. */
function unionSplit(candidates: Split[]): Split {
  let best = candidates[0]!;
  for (const s of candidates.slice(1)) if (scoreOf(s) > scoreOf(best)) best = s;
  return { ...best, train_cpu_s: candidates.reduce((a, s) => a + s.train_cpu_s, 0) };
}

const union: Run = { datasets: [] };
for (const d of extras[0]!.datasets) {
  if (!ref.datasets.some((x) => x.name === d.name)) continue;
  const per_split: Split[] = [];
  for (const s of d.per_split) {
    const all = [ref, ...extras].map((run) =>
      run.datasets.find((x) => x.name === d.name)?.per_split.find((x) => x.split === s.split),
    );
    if (all.some((x) => x === undefined)) continue;
    const u = unionSplit(all as Split[]);
    const from = all.findIndex((x) => scoreOf(x!) === scoreOf(u) && x!.ll === u.ll);
    const c = chosenOf(u)!;
    process.stdout.write(
      `${d.name} split ${s.split}: ${from === 0 ? 'reference' : `extra ${from}`} (p ${c.dropout}, λ ${c.weight_decay.toExponential(2)}, ${c.hidden.join('×')}, ${c.epochs} epochs, val ${c.score.toFixed(4)}) test LL ${u.ll.toFixed(4)}\n`,
    );
    per_split.push(u);
  }
  union.datasets.push({ ...d, per_split });
}
process.stdout.write(`${pairedTable(pairedDeltas(union, ref))}\n`);
if (values.out) writeFileSync(values.out, `${JSON.stringify(union, null, 1)}\n`);
