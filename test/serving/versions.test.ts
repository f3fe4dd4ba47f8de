/**
 * Versions, refresh (the work behind the management load and hot reload) and the watcher, on real
 * folders with a fake loader: a "model file" holds a number (the value the model answers) or "broken".
 */
import { appendFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { VersionPolicy } from '../../src/config.js';
import { InputError, ModelLoadError } from '../../src/model/errors.js';
import type { Model } from '../../src/model/model.js';
import { ModelLoadFailedError, ModelNotFoundError } from '../../src/serving/errors.js';
import { ModelRepository, selectVersions } from '../../src/serving/repository.js';
import { RepositoryWatcher } from '../../src/serving/watcher.js';
import { type FakeModel, fakeModel } from '../helpers/fake-model.js';

/** Write a file through a temporary name and a rename (a new inode: its stamp always changes). */
function put(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, content);
  renameSync(`${path}.tmp`, path);
}

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ds-versions-'));
  for (const [path, content] of Object.entries(files)) put(join(dir, path), content);
  return dir;
}

/** A repository over `dir` whose loader reads the number in the file; it counts loads and records events. */
function repository(dir: string, policy?: VersionPolicy) {
  const loads: string[] = [];
  const events: string[] = [];
  const r = new ModelRepository({
    modelsDir: dir,
    versionPolicy: policy,
    loader: async (s) => {
      const text = readFileSync(s.file, 'utf8');
      loads.push(`${s.name}/${s.version}`);
      if (!/^\d+$/.test(text)) throw new ModelLoadError(s.file, `not a model (${text.slice(0, 20)})`);
      return fakeModel(s.name, Number(text), { version: s.version });
    },
    events: {
      loaded: (m) => events.push(`loaded ${m.name}/${m.version}`),
      failed: (s) => events.push(`failed ${s.name}/${s.version}`),
      unloaded: (m, why) => events.push(`${why} ${m.name}/${m.version}`),
      closed: (m) => events.push(`closed ${m.name}/${m.version}`),
    },
  });
  return { r, loads, events };
}

const answer = async (r: ModelRepository, name: string, version?: string): Promise<number> =>
  (await r.get(name, version).predict(new Float32Array(2), 1))[0]!;
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('version layout and policy', () => {
  it('selectVersions: the N highest by number, or all', () => {
    expect(selectVersions(['10', '9', '2', '1'], { kind: 'latest', count: 1 })).toEqual(['10']);
    expect(selectVersions(['10', '9', '2', '1'], { kind: 'latest', count: 2 })).toEqual(['9', '10']);
    expect(selectVersions(['3'], { kind: 'latest', count: 5 })).toEqual(['3']);
    expect(selectVersions(['2', '10', '1'], { kind: 'all' })).toEqual(['1', '2', '10']);
  });

  it('latest:1 serves the highest version; latest:2 two, a request without a version gets the highest', async () => {
    const files = { 'a/1/model.onnx': '10', 'a/2/model.onnx': '20', 'a/10/model.onnx': '100' };
    const one = repository(folder(files));
    await one.r.loadAll();
    expect([one.r.versions('a'), await answer(one.r, 'a'), one.loads]).toEqual([['10'], 100, ['a/10']]);
    expect(() => one.r.get('a', '2')).toThrow(new ModelNotFoundError('model "a" has no version "2" (versions: 10)'));
    const two = repository(folder(files), { kind: 'latest', count: 2 });
    await two.r.loadAll();
    expect([
      two.r.versions('a'),
      await answer(two.r, 'a'),
      await answer(two.r, 'a', '2'),
      await answer(two.r, 'a', '10'),
    ]).toEqual([['2', '10'], 100, 20, 100]);
    expect(two.r.list().map((m) => m.version)).toEqual(['10']);
    await Promise.all([one.r.close(), two.r.close()]);
  });
});

describe('refresh: bring a model in line with its files', () => {
  it('reads nothing when nothing changed; a changed file is loaded and swapped in, the old object closes', async () => {
    const dir = folder({ 'a/model.onnx': '1', 'b/model.onnx': '5' });
    const { r, loads, events } = repository(dir);
    await r.loadAll();
    expect(await r.refresh('a')).toEqual({ name: 'a', loaded: [], failed: [], unloaded: [] });
    expect(loads).toEqual(['a/1', 'b/1']);
    const old = r.get('a') as FakeModel;
    put(join(dir, 'a/model.onnx'), '2');
    expect(await r.refresh('a')).toEqual({ name: 'a', loaded: ['1'], failed: [], unloaded: [] });
    expect(await answer(r, 'a')).toBe(2);
    await settle();
    expect(old.closed).toBe(true);
    expect(events.slice(2)).toEqual(['loaded a/1', 'replaced a/1', 'closed a/1']);
    // a card that appears or changes is a change too
    put(join(dir, 'a/model.json'), '{}');
    expect((await r.refresh('a')).loaded).toEqual(['1']);
    await r.close();
  });

  it('a broken new file leaves the served version serving and is not loaded again until it changes', async () => {
    const dir = folder({ 'a/model.onnx': '1' });
    const { r, loads } = repository(dir);
    await r.loadAll();
    put(join(dir, 'a/model.onnx'), 'garbage');
    const report = await r.refresh('a');
    expect(report.failed).toEqual([{ version: '1', error: `${join(dir, 'a/model.onnx')}: not a model (garbage)` }]);
    expect(await answer(r, 'a')).toBe(1);
    expect(r.index()).toEqual([
      {
        name: 'a',
        version: '1',
        state: 'READY',
        reason: `loading changed files failed, the files loaded before keep serving: ${join(dir, 'a/model.onnx')}: not a model (garbage)`,
      },
    ]);
    const before = loads.length;
    expect(await r.refresh('a')).toEqual({ name: 'a', loaded: [], failed: [], unloaded: [] });
    expect(loads.length).toBe(before); // the same broken file is not read again
    put(join(dir, 'a/model.onnx'), '3');
    expect((await r.refresh('a')).loaded).toEqual(['1']);
    expect([await answer(r, 'a'), r.index()[0]!.reason]).toEqual([3, '']);
    await r.close();
  });

  it('a new version is served before the old one leaves (latest:1); a broken new version unloads nothing', async () => {
    const dir = folder({ 'a/model.onnx': '1' });
    const { r, events } = repository(dir);
    await r.loadAll();
    put(join(dir, 'a/2/model.onnx'), 'half a file');
    expect(await r.refresh('a')).toMatchObject({ loaded: [], unloaded: [], failed: [{ version: '2' }] });
    expect([r.versions('a'), await answer(r, 'a')]).toEqual([['1'], 1]);
    expect(r.index().map((e) => [e.version, e.state])).toEqual([
      ['1', 'READY'],
      ['2', 'UNAVAILABLE'],
    ]);
    put(join(dir, 'a/2/model.onnx'), '2');
    expect(await r.refresh('a')).toEqual({ name: 'a', loaded: ['2'], failed: [], unloaded: ['1'] });
    expect([r.versions('a'), await answer(r, 'a')]).toEqual([['2'], 2]);
    expect(events.slice(1)).toEqual(['failed a/2', 'loaded a/2', 'unloaded a/1', 'closed a/1']);
    expect(r.index()).toEqual([
      { name: 'a', version: '1', state: 'UNAVAILABLE', reason: 'not picked by MODEL_VERSION_POLICY=latest:1' },
      { name: 'a', version: '2', state: 'READY', reason: '' },
    ]);
    // the version folder removed: version 1 is served again; the model folder removed: unloaded
    rmSync(join(dir, 'a/2'), { recursive: true });
    expect(await r.refresh('a')).toEqual({ name: 'a', loaded: ['1'], failed: [], unloaded: ['2'] });
    rmSync(join(dir, 'a'), { recursive: true });
    expect(await r.refresh('a')).toEqual({ name: 'a', loaded: [], failed: [], unloaded: ['1'] });
    expect(() => r.get('a')).toThrow(ModelNotFoundError);
    expect(r.index()).toEqual([]);
    await r.close();
  });

  it('unload by request: refreshes leave the name alone until loadByName; loadByName reloads even unchanged files', async () => {
    const dir = folder({ 'a/model.onnx': '1', 'b/model.onnx': '5' });
    const { r, loads } = repository(dir);
    await r.loadAll();
    await r.unload('a');
    expect(r.names()).toEqual(['b']);
    expect(await r.refresh('a')).toEqual({ name: 'a', loaded: [], failed: [], unloaded: [] });
    expect(r.index()[0]).toEqual({ name: 'a', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' });
    await expect(r.unload('a')).rejects.toThrow(new ModelNotFoundError('unknown model "a" (available: b)'));
    expect(await r.loadByName('a')).toEqual(['1']);
    expect(await r.loadByName('a')).toEqual(['1']);
    expect(loads).toEqual(['a/1', 'b/1', 'a/1', 'a/1']);
    await expect(r.loadByName('zz')).rejects.toThrow(
      new ModelNotFoundError('no model "zz" in the repository (MODELS_DIR has: a, b)'),
    );
    await expect(r.loadByName('../b')).rejects.toThrow(InputError);
    put(join(dir, 'a/model.onnx'), 'broken');
    const err = await r.loadByName('a').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadFailedError);
    expect([(err as ModelLoadFailedError).status, (err as Error).message]).toEqual([
      400,
      `failed to load "a" version 1: ${join(dir, 'a/model.onnx')}: not a model (broken) (served: version 1)`,
    ]);
    expect(await answer(r, 'a')).toBe(1);
    await r.close();
  });

  it('operations on one name run one at a time (a load and an unload racing end unloaded, nothing leaks)', async () => {
    const dir = folder({ 'a/model.onnx': '1' });
    const { r } = repository(dir);
    await r.loadAll();
    const loaded: Model[] = [];
    const loading = r.loadByName('a').then(() => loaded.push(r.get('a')));
    const unloading = r.unload('a');
    await Promise.all([loading.catch(() => undefined), unloading]);
    expect(r.names()).toEqual([]);
    for (const m of loaded) expect((m as FakeModel).closed).toBe(true);
    await r.close();
  });
});

describe('RepositoryWatcher', () => {
  it('acts on a model only when its files look the same in two polls in a row (a file being written is not loaded)', async () => {
    const dir = folder({ 'a/model.onnx': '1' });
    const { r, loads } = repository(dir);
    await r.loadAll();
    const w = new RepositoryWatcher(r, { intervalMs: 3_600_000 });
    expect(await w.poll()).toEqual([]); // first sight
    expect(await w.poll()).toEqual([]); // unchanged: nothing to do
    writeFileSync(join(dir, 'a/model.onnx'), '2'); // being written: 2…
    expect(await w.poll()).toEqual([]);
    appendFileSync(join(dir, 'a/model.onnx'), '0'); // …20, still growing
    expect(await w.poll()).toEqual([]);
    expect(loads).toEqual(['a/1']);
    expect(await w.poll()).toEqual([{ name: 'a', loaded: ['1'], failed: [], unloaded: [] }]); // stable: loaded once
    expect(await answer(r, 'a')).toBe(20);
    // a new model folder is loaded, a removed one unloaded, each after two polls
    put(join(dir, 'b/3/model.onnx'), '7');
    expect(await w.poll()).toEqual([]);
    expect(await w.poll()).toEqual([{ name: 'b', loaded: ['3'], failed: [], unloaded: [] }]);
    rmSync(join(dir, 'a'), { recursive: true });
    expect(await w.poll()).toEqual([]);
    expect(await w.poll()).toEqual([{ name: 'a', loaded: [], failed: [], unloaded: ['1'] }]);
    expect([r.names(), await answer(r, 'b')]).toEqual([['b'], 7]);
    await r.close();
  });

  it('an unreadable models folder unloads nothing; start/stop poll on a timer', async () => {
    const dir = folder({ 'a/model.onnx': '1' });
    const { r } = repository(dir);
    await r.loadAll();
    const errors: string[] = [];
    const w = new RepositoryWatcher(r, { intervalMs: 20, onError: (e) => errors.push(e.message) });
    renameSync(dir, `${dir}.moved`);
    expect(await w.poll()).toEqual([]);
    expect(await w.poll()).toEqual([]);
    expect(r.names()).toEqual(['a']);
    expect(errors[0]).toMatch(/cannot read the models folder \(ENOENT\)/);
    renameSync(`${dir}.moved`, dir);
    put(join(dir, 'a/model.onnx'), '4');
    w.start();
    for (let i = 0; i < 200 && (await answer(r, 'a')) !== 4; i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    await w.stop();
    expect(await answer(r, 'a')).toBe(4);
    await r.close();
  });
});
