/**
 * Discovery of model folders (discovery.ts): the layouts (MODEL_PATH, MODELS_DIR, version folders),
 * names that cannot be served, the stamps that tell a changed model from an unchanged one, and the
 * report page beside a model file. No model is loaded here.
 */
import { cpSync, mkdirSync, mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelLoadError } from '../../src/model/errors.js';
import { discover, scanModels, scanVersions, stampOf } from '../../src/serving/discovery.js';

/** Write a file through a temporary name and a rename (a new inode: its stamp always changes). */
function put(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, content);
  renameSync(`${path}.tmp`, path);
}

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ds-discovery-'));
  for (const [path, content] of Object.entries(files)) put(join(dir, path), content);
  return dir;
}

describe('model discovery', () => {
  it('MODEL_PATH serves one file, named by its stem, with <stem>.json as its card when present', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-reg-'));
    cpSync('test/fixtures/torch/legacy_train_op13.onnx', join(dir, 'torchnet.onnx'));
    writeFileSync(join(dir, 'torchnet.json'), JSON.stringify({ features: ['a', 'b', 'c', 'd'] }));
    expect(discover({ modelPath: join(dir, 'torchnet.onnx') }).sources).toEqual([
      { name: 'torchnet', version: '1', file: join(dir, 'torchnet.onnx'), card: join(dir, 'torchnet.json') },
    ]);
  });
  it('MODEL_PATH to a folder model.onnx takes the folder name and model.json', () => {
    expect(discover({ modelPath: 'models/diabetes/model.onnx' }).sources).toEqual([
      { name: 'diabetes', version: '1', file: 'models/diabetes/model.onnx', card: 'models/diabetes/model.json' },
    ]);
  });
  it('MODELS_DIR lists <name>/model.onnx folders in order, skips unusable names, and needs at least one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-reg-'));
    for (const name of ['b', 'a', '.hidden']) {
      mkdirSync(join(dir, name));
      cpSync('test/fixtures/torch/eval_op13.onnx', join(dir, name, 'model.onnx'));
    }
    mkdirSync(join(dir, 'empty'));
    const { sources, skipped } = discover({ modelsDir: dir });
    expect(sources.map((s) => [s.name, s.card])).toEqual([
      ['a', null],
      ['b', null],
    ]);
    expect(skipped).toHaveLength(1);
    expect(() => discover({ modelsDir: join(dir, 'empty') })).toThrow(ModelLoadError);
  });
});

describe('version folders', () => {
  it('finds <name>/<version>/model.onnx folders and the flat file as version 1; other folders are ignored', () => {
    const dir = folder({
      'a/1/model.onnx': '1',
      'a/3/model.onnx': '3',
      'a/3/model.json': '{}',
      'a/02/model.onnx': '2', // leading zero: not a version (as Triton)
      'a/0/model.onnx': '0',
      'a/data/model.onnx': '9',
      'a/12/readme.txt': 'no model here',
      'b/model.onnx': '5',
      'b/model.json': '{}',
      'c/model.onnx': '7',
      'c/1/model.onnx': '8',
      'd/2/model.onnx': '2',
      'd/model.onnx': '1',
    });
    const { sources, skipped } = scanModels({ modelsDir: dir });
    expect(
      sources.map((s) => [s.name, s.version, s.file.slice(dir.length + 1), s.card?.slice(dir.length + 1) ?? null]),
    ).toEqual([
      ['a', '1', 'a/1/model.onnx', null],
      ['a', '3', 'a/3/model.onnx', 'a/3/model.json'],
      ['b', '1', 'b/model.onnx', 'b/model.json'],
      ['c', '1', 'c/1/model.onnx', null],
      ['d', '1', 'd/model.onnx', null],
      ['d', '2', 'd/2/model.onnx', null],
    ]);
    expect(skipped).toEqual([
      `${join(dir, 'c/model.onnx')}: version 1 is also in ${join(dir, 'c/1')}/, which is served`,
    ]);
  });
});

describe('stamps and scanVersions', () => {
  it('a stamp changes when the model file or its card is rewritten or touched, and is null once the file is gone', () => {
    const dir = folder({ 'a/model.onnx': '1', 'a/model.json': '{}' });
    const [source] = scanModels({ modelsDir: dir }).sources;
    const first = stampOf(source!);
    expect(first).toMatch(/^\d+:1:[\d.]+\|\d+:2:[\d.]+$/);
    expect(stampOf(source!)).toBe(first);
    put(join(dir, 'a/model.json'), '{}');
    const second = stampOf(source!);
    expect(second).not.toBe(first);
    utimesSync(join(dir, 'a/model.onnx'), new Date(0), new Date(1000));
    expect(stampOf(source!)).not.toBe(second);
    rmSync(join(dir, 'a/model.json'));
    expect(stampOf(source!)).toMatch(/\|-$/);
    rmSync(join(dir, 'a/model.onnx'));
    expect(stampOf(source!)).toBeNull();
  });

  it('scanVersions groups the versions by name with their stamps', () => {
    const dir = folder({ 'a/2/model.onnx': '2', 'a/model.onnx': '1', 'b/model.onnx': '5' });
    const found = scanVersions({ modelsDir: dir });
    expect([...found.keys()]).toEqual(['a', 'b']);
    expect(found.get('a')!.map((f) => [f.source.version, f.stamp === stampOf(f.source)])).toEqual([
      ['1', true],
      ['2', true],
    ]);
  });

  it('an unreadable models folder is a ModelLoadError naming it', () => {
    const missing = join(tmpdir(), 'ds-discovery-missing', 'models');
    expect(() => scanVersions({ modelsDir: missing })).toThrow(
      new ModelLoadError(missing, 'cannot read the models folder (ENOENT)'),
    );
  });
});
