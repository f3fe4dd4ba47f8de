import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseCli, run } from '../../src/train/cli.js';

let stderr = '';
let stdout = '';
beforeEach(() => {
  stderr = '';
  stdout = '';
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    stderr += String(s);
    return true;
  });
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    stdout += String(s);
    return true;
  });
});
afterEach(() => vi.restoreAllMocks());

describe('train CLI', () => {
  it('writes model.onnx, model.json, report.md and report.html; the same seed gives byte-identical ONNX and report page', async () => {
    const a = mkdtempSync(join(tmpdir(), 'cli-a-'));
    const b = mkdtempSync(join(tmpdir(), 'cli-b-'));
    const args = [
      '--data',
      'data/diabetes.csv',
      '--target',
      'target',
      '--name',
      'd',
      '--epochs',
      '15',
      '--seed',
      '9',
      '--test-split',
      '0.2',
      '--mc-samples',
      '20',
    ];
    expect(await run([...args, '--out', a])).toBe(0);
    expect(await run([...args, '--out', b])).toBe(0);
    const onnxA = readFileSync(join(a, 'd', 'model.onnx'));
    expect(onnxA.equals(readFileSync(join(b, 'd', 'model.onnx')))).toBe(true);
    const card = JSON.parse(readFileSync(join(a, 'd', 'model.json'), 'utf8'));
    expect(card).toMatchObject({
      name: 'd',
      task: 'regression',
      target: 'target',
      dropout: [0.3],
      output: 'prediction',
    });
    expect(card.features).toHaveLength(10);
    expect(card.aleatoric_std).toBeGreaterThan(0);
    expect(card.epistemic_scale).toBeGreaterThanOrEqual(0.1);
    expect(card.epistemic_scale).toBeLessThanOrEqual(100);
    expect(card.calibration.method).toContain('epistemic_scale');
    expect(Object.keys(card.metrics.test)).toEqual(expect.arrayContaining(['rmse', 'r2', 'nll', 'coverage_90']));
    expect(card.data.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(card.created_at)).not.toBeNaN();
    expect(stdout).toContain('| coverage_90');
    expect(readFileSync(join(a, 'd', 'report.md'), 'utf8')).toContain('| rmse');
    // the report page: no clock in it, so the same run gives the same bytes (the --out differs: normalised)
    const page = (dir: string): string => readFileSync(join(dir, 'd', 'report.html'), 'utf8').replaceAll(dir, 'OUT');
    expect(page(a)).toBe(page(b));
    expect(page(a)).toContain(`npm run train -- ${args.join(' ')} --out OUT`);
    expect(page(a)).toContain('id="fig-calibration"');
    expect(stdout).toContain('report.md, report.html');
  });
  it('classification with --test-data reports accuracy, NLL, ECE and Brier', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cli-c-'));
    expect(
      await run([
        '--data',
        'data/wine.csv',
        '--target',
        'class',
        '--name',
        'w',
        '--epochs',
        '10',
        '--test-data',
        'data/wine.csv',
        '--out',
        out,
        '--quiet',
      ]),
    ).toBe(0);
    const card = JSON.parse(readFileSync(join(out, 'w', 'model.json'), 'utf8'));
    expect(card.labels).toEqual(['class_0', 'class_1', 'class_2']);
    expect(card.output_kind).toBe('logits');
    expect(Object.keys(card.metrics.test)).toEqual(expect.arrayContaining(['accuracy', 'nll', 'ece', 'brier']));
  });
  it('rejects bad options with a message naming the option', async () => {
    const base = ['--data', 'x.csv', '--target', 'y', '--name', 'n'];
    expect(() => parseCli([...base, '--dropout', '1.5'])).toThrow('--dropout 1.5: expected rates in [0, 1)');
    expect(() => parseCli([...base, '--hidden', '10,x'])).toThrow('--hidden x: expected positive integer widths');
    expect(() => parseCli(['--target', 'y', '--name', 'n'])).toThrow('--data is required');
    expect(() => parseCli([...base, '--activation', 'sigmoid'])).toThrow(
      '--activation sigmoid: expected relu, tanh or gelu',
    );
    expect(() => parseCli([...base.slice(0, 4), '--name', '../evil'])).toThrow('--name ../evil');
    expect(() => parseCli([...base, '--nll-beta', '2'])).toThrow('--nll-beta 2: expected a number in [0, 1]');
    expect(parseCli([...base, '--noise', 'heteroscedastic', '--nll-beta', '0.5']).opts.nllBeta).toBe(0.5);
    expect(await run([...base, '--epochs', '0'])).toBe(2);
    expect(stderr).toContain('--epochs 0: expected a positive integer');
  });
  it('a data error exits 1 with the file and problem', async () => {
    expect(await run(['--data', 'data/diabetes.csv', '--target', 'nope', '--name', 'n', '--out', tmpdir()])).toBe(1);
    expect(stderr).toContain('data/diabetes.csv: unknown target column "nope"');
  });
});
