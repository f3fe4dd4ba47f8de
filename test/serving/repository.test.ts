import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelLoadError } from '../../src/model/errors.js';
import { DEFAULT_RUNTIME_OPTIONS } from '../../src/model/model.js';
import { discover, loadAll } from '../../src/serving/repository.js';

describe('model discovery', () => {
  it('MODEL_PATH serves one file, named by its stem, with <stem>.json as its card when present', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-reg-'));
    cpSync('test/fixtures/torch/legacy_train_op13.onnx', join(dir, 'torchnet.onnx'));
    writeFileSync(join(dir, 'torchnet.json'), JSON.stringify({ features: ['a', 'b', 'c', 'd'] }));
    expect(discover({ modelPath: join(dir, 'torchnet.onnx') }).sources).toEqual([{ name: 'torchnet', file: join(dir, 'torchnet.onnx'), card: join(dir, 'torchnet.json') }]);
    const { models } = await loadAll({ modelPath: join(dir, 'torchnet.onnx') }, DEFAULT_RUNTIME_OPTIONS);
    expect([...models.keys()]).toEqual(['torchnet']);
    expect(models.get('torchnet')!.features).toEqual(['a', 'b', 'c', 'd']);
    await models.get('torchnet')!.close();
  });
  it('MODEL_PATH to a folder model.onnx takes the folder name and model.json', () => {
    expect(discover({ modelPath: 'models/diabetes/model.onnx' }).sources).toEqual([{ name: 'diabetes', file: 'models/diabetes/model.onnx', card: 'models/diabetes/model.json' }]);
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
