import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SHIPPED_MODELS } from '../../scripts/shipped-models.js';
import { run } from '../../src/train/cli.js';

/** The page without its command section (the test's run adds --out DIR --quiet). */
const withoutCommand = (html: string): string => html.replace(/<section id="command">.*?<\/section>/s, '');

describe('shipped models', () => {
  beforeEach(() => {
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  });
  afterEach(() => vi.restoreAllMocks());

  // The commands of docs/training.md's "Shipped models" section (scripts/shipped-models.ts): they must reproduce
  // models/*/model.onnx and report.html byte for byte (the page has no clock; its command line aside).
  for (const [name, args] of Object.entries(SHIPPED_MODELS)) {
    it(`the docs/training.md command reproduces models/${name}/model.onnx and report.html byte for byte`, async () => {
      const out = mkdtempSync(join(tmpdir(), `shipped-${name}-`));
      expect(await run([...args, '--out', out, '--quiet'])).toBe(0);
      expect(readFileSync(join(out, name, 'model.onnx')).equals(readFileSync(join('models', name, 'model.onnx')))).toBe(
        true,
      );
      const page = readFileSync(join('models', name, 'report.html'), 'utf8');
      expect(withoutCommand(readFileSync(join(out, name, 'report.html'), 'utf8'))).toBe(withoutCommand(page));
      expect(page).toContain(`<section id="command"><h2>Command</h2><pre><code>npm run train -- ${args.join(' ')}`);
      const docs = readFileSync('docs/training.md', 'utf8');
      expect(docs).toContain(`npm run train -- ${args.join(' ')}`);
      expect(docs).toContain(`](report-${name}.png)`);
    });
  }
});
