import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { run } from '../../src/train/cli.js';

// The commands of the README's "Shipped models" section: they must reproduce models/*/model.onnx byte for byte.
const COMMANDS: Record<string, string[]> = {
  diabetes: ['--data', 'data/diabetes.csv', '--target', 'target', '--name', 'diabetes', '--tune', '--test-split', '0.2', '--seed', '0'],
  wine: ['--data', 'data/wine.csv', '--target', 'class', '--name', 'wine', '--hidden', '64,64', '--tune', '--test-split', '0.2', '--seed', '0'],
};

describe('shipped models', () => {
  beforeEach(() => {
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  });
  afterEach(() => vi.restoreAllMocks());

  for (const [name, args] of Object.entries(COMMANDS)) {
    it(`the README command reproduces models/${name}/model.onnx byte for byte`, async () => {
      const out = mkdtempSync(join(tmpdir(), `shipped-${name}-`));
      expect(await run([...args, '--out', out, '--quiet'])).toBe(0);
      expect(readFileSync(join(out, name, 'model.onnx')).equals(readFileSync(join('models', name, 'model.onnx')))).toBe(true);
      const readme = readFileSync('README.md', 'utf8');
      expect(readme).toContain(`npm run train -- ${args.join(' ')}`);
    });
  }
});
