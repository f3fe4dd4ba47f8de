/**
 * `npm run docs:options`: writes the trainer's option table (src/train/usage.ts optionsMarkdown, from the
 * tables in src/train/options.ts) into docs/training.md between its train-options markers.
 * test/train/options.test.ts fails when the file and the tables disagree.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { withOptionsTable } from '../src/train/usage.js';

const file = 'docs/training.md';
const before = readFileSync(file, 'utf8');
const after = withOptionsTable(before);
if (after !== before) writeFileSync(file, after);
process.stdout.write(
  after === before ? `${file}: the option table is up to date\n` : `${file}: option table written\n`,
);
