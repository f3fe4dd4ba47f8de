/**
 * The UCI result of a grid widened by extra candidates, without training the grid again (issue 22):
 * a tuning candidate's run and validation score do not depend on the other candidates (each has its own
 * seeded streams, the validation rows and the score's masks come from the split's seed), so the grid
 * "reference ∪ extra" chooses, on each split, the winner of whichever run's winner scored higher on
 * validation (ties: the reference, whose candidates come first), and that winner's refit and calibration
 * are the ones its run served. Run the extra candidates alone (`npm run bench -- uci … --tune-dropout
 * 0.1,0.3 --tune-weight-decay 0.01 --out EXTRA.json`, or some splits with scripts/uci-lab-split.mts,
 * its JSON lines saved as EXTRA.jsonl), then
 *
 *   npx tsx scripts/uci-lab-union.mts REFERENCE.json EXTRA.json|EXTRA.jsonl … [--out UNION.json]
 *
 * prints the union paired against the reference (bench/uci-paired.ts) and which splits changed winner
 * (the extra files together are one run: the splits of any of them). The union's training CPU is the
 * sum of both runs' where the extra run recorded it (an upper bound: each run also paid a refit and its
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
  process.stderr.write('usage: npx tsx scripts/uci-lab-union.mts REFERENCE.json EXTRA.json|EXTRA.jsonl … [--out F]\n');
  process.exit(2);
}

/** One line of scripts/uci-lab-split.mts as a split of a bench result (the fields the pairing reads). */
function labSplit(line: Record<string, unknown>): Split {
  const cov = (k: string): Record<string, number> => ({ '0.9': line[k] as number });
  return {
    ...(line as unknown as Split),
    coverage: cov('coverage_90'),
    conformal_coverage: cov('conformal_coverage_90'),
    train_cpu_s: (line.train_cpu_s as number | undefined) ?? Number.NaN,
    noise: (line.chosen as { noise?: string } | undefined)?.noise ?? 'homoscedastic',
  } as Split;
}

/** The datasets' splits of a bench result (.json) or of scripts/uci-lab-split.mts's JSON lines (.jsonl). */
function readSplits(f: string): Map<string, Split[]> {
  const text = readFileSync(f, 'utf8');
  const out = new Map<string, Split[]>();
  const add = (name: string, s: Split) => out.set(name, [...(out.get(name) ?? []), s]);
  if (f.endsWith('.jsonl')) {
    for (const l of text.split('\n').filter((x) => x.startsWith('{'))) {
      const line = JSON.parse(l) as Record<string, unknown>;
      add(line.dataset as string, labSplit(line));
    }
  } else for (const d of (JSON.parse(text) as Run).datasets) for (const s of d.per_split) add(d.name, s);
  return out;
}

const refRun = JSON.parse(readFileSync(refFile, 'utf8')) as Run;
const ref = readSplits(refFile);
const extra = new Map<string, Split[]>();
for (const f of extraFiles)
  for (const [name, splits] of readSplits(f)) extra.set(name, [...(extra.get(name) ?? []), ...splits]);

const union: Run = { datasets: [] };
for (const [name, splits] of extra) {
  const refDataset = refRun.datasets.find((x) => x.name === name);
  if (!refDataset) continue;
  const per_split: Split[] = [];
  for (const s of [...splits].sort((a, b) => a.split - b.split)) {
    const r = ref.get(name)?.find((x) => x.split === s.split);
    if (!r) continue;
    const fromExtra = scoreOf(s) > scoreOf(r); // a tie goes to the reference
    const u = fromExtra ? s : r;
    const c = chosenOf(u)!;
    process.stdout.write(
      `${name} split ${s.split}: ${fromExtra ? 'extra' : 'reference'} (p ${c.dropout}, λ ${c.weight_decay.toExponential(2)}, ${c.hidden.join('×')}, ${c.epochs} epochs, val ${c.score.toFixed(4)} against ${scoreOf(fromExtra ? r : s).toFixed(4)}) test LL ${u.ll.toFixed(4)} (reference ${r.ll.toFixed(4)})\n`,
    );
    per_split.push({ ...u, train_cpu_s: r.train_cpu_s + s.train_cpu_s });
  }
  union.datasets.push({ ...refDataset, per_split });
}
process.stdout.write(`${pairedTable(pairedDeltas(union, refRun))}\n`);
if (values.out) writeFileSync(values.out, `${JSON.stringify(union, null, 1)}\n`);
