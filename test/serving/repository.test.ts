import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelLoadError } from '../../src/model/errors.js';
import { DEFAULT_RUNTIME_OPTIONS, type Model, type ModelSource } from '../../src/model/model.js';
import { ModelNotFoundError } from '../../src/serving/errors.js';
import { ModelRepository } from '../../src/serving/repository.js';
import { type FakeModel, fakeModel } from '../helpers/fake-model.js';

describe('ModelRepository: MODEL_PATH', () => {
  it('loads the one file with <stem>.json as its card', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-reg-'));
    cpSync('test/fixtures/torch/legacy_train_op13.onnx', join(dir, 'torchnet.onnx'));
    writeFileSync(join(dir, 'torchnet.json'), JSON.stringify({ features: ['a', 'b', 'c', 'd'] }));
    const repository = new ModelRepository({ modelPath: join(dir, 'torchnet.onnx'), runtime: DEFAULT_RUNTIME_OPTIONS });
    await repository.loadAll();
    expect(repository.names()).toEqual(['torchnet']);
    expect(repository.get('torchnet').features).toEqual(['a', 'b', 'c', 'd']);
    await repository.close();
  });
});

describe('ModelRepository: load, swap, unload', () => {
  const source = (name: string, file = `${name}.fake`): ModelSource => ({ name, file, card: null });
  /** A repository whose loader makes fake models: the value of the n-th load of a name is n. */
  const repo = (hooks?: { prepare?: (m: Model) => Promise<void> }) => {
    const loads = new Map<string, number>();
    const events: string[] = [];
    const r = new ModelRepository({
      loader: async (s) => {
        if (s.file.endsWith('.broken')) throw new ModelLoadError(s.file, 'not a model');
        const n = (loads.get(s.name) ?? 0) + 1;
        loads.set(s.name, n);
        return fakeModel(s.name, n);
      },
      events: {
        loaded: (m) => events.push(`loaded ${m.name}`),
        unloaded: (m) => events.push(`unloaded ${m.name}`),
        served: (n) => events.push(`served ${n}`),
      },
    });
    if (hooks) r.use(hooks);
    return { r, events };
  };

  it('a swapped-out model serves its running requests to the end, then closes; new requests get the new one', async () => {
    const { r, events } = repo();
    const first = (await r.load(source('a'))) as FakeModel;
    const lease = r.acquire('a');
    let open!: () => void;
    first.gate = new Promise((resolve) => (open = resolve));
    const running = lease.model.predict(new Float32Array(2), 1);
    const second = (await r.load(source('a'))) as FakeModel;
    expect(r.get('a')).toBe(second);
    expect(first.closed).toBe(false); // a request is still running on it
    open();
    expect(Array.from(await running)).toEqual([1]);
    r.release(lease);
    await new Promise((resolve) => setImmediate(resolve));
    expect(first.closed).toBe(true);
    expect(second.closed).toBe(false);
    expect(Array.from(await r.get('a').predict(new Float32Array(2), 1))).toEqual([2]);
    expect(events).toEqual(['loaded a', 'served 1', 'loaded a', 'unloaded a']);
  });

  it('unload resolves once the last request finished and the model is closed; the name is gone at once', async () => {
    const { r } = repo();
    const a = (await r.load(source('a'))) as FakeModel;
    await r.load(source('b'));
    const lease = r.acquire('a');
    let unloaded = false;
    const unloading = r.unload('a').then(() => (unloaded = true));
    expect(() => r.get('a')).toThrow(new ModelNotFoundError('unknown model "a" (available: b)'));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect([unloaded, a.closed]).toEqual([false, false]);
    r.release(lease);
    await unloading;
    expect(a.closed).toBe(true);
    await expect(r.unload('a')).rejects.toThrow('unknown model "a" (available: b)');
  });

  it('a new version that fails to load or to prepare leaves the old one serving', async () => {
    let failPrepare = false;
    const { r } = repo({
      prepare: async () => {
        if (failPrepare) throw new Error('worker cannot load it');
      },
    });
    const old = await r.load(source('a'));
    await expect(r.load(source('a', 'a.broken'))).rejects.toThrow(ModelLoadError);
    expect(r.get('a')).toBe(old);
    failPrepare = true;
    await expect(r.load(source('a'))).rejects.toThrow('worker cannot load it');
    expect(r.get('a')).toBe(old);
    expect((old as FakeModel).closed).toBe(false);
  });

  it('versions: "1" is the model, another version is unknown', async () => {
    const { r } = repo();
    const a = await r.load(source('a'));
    expect(r.get('a', '1')).toBe(a);
    expect(r.versions('a')).toEqual(['1']);
    expect(() => r.acquire('a', '2')).toThrow('model "a" has no version "2" (versions: 1)');
  });

  it('close waits for running requests, closes every model (swapped-out ones too) and refuses new loads', async () => {
    const { r } = repo();
    const a1 = (await r.load(source('a'))) as FakeModel;
    const lease = r.acquire('a');
    const a2 = (await r.load(source('a'))) as FakeModel;
    let closed = false;
    const closing = r.close().then(() => (closed = true));
    expect(r.state).toBe('closing');
    expect(r.list()).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect([closed, a1.closed, a2.closed]).toEqual([false, false, true]);
    r.release(lease);
    await closing;
    expect(a1.closed).toBe(true);
    await expect(r.load(source('b'))).rejects.toThrow('closing');
  });

  it('loadAll: one bad model stops the load and closes the others; skipInvalid leaves it out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ds-reg-'));
    for (const name of ['a', 'b']) {
      mkdirSync(join(dir, name));
      cpSync('test/fixtures/torch/eval_op13.onnx', join(dir, name, 'model.onnx'));
    }
    writeFileSync(join(dir, 'b', 'model.onnx'), 'garbage');
    const strict = new ModelRepository({ modelsDir: dir });
    await expect(strict.loadAll()).rejects.toThrow(/b\/model.onnx: not an ONNX model/);
    expect(strict.list()).toEqual([]);
    expect(strict.state).toBe('loading');
    const lenient = new ModelRepository({ modelsDir: dir, skipInvalid: true });
    const report = await lenient.loadAll();
    expect(report.failed.map((f) => f.source.name)).toEqual(['b']);
    expect([lenient.names(), lenient.state]).toEqual([['a'], 'ready']);
    await lenient.close();
  });
});
