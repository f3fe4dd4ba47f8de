/**
 * A model's files are read once (readContents) and every loader uses those bytes: the main thread and
 * the worker threads serve the same network even when the files are replaced or removed in between
 * (hot reload writing a new version while a load is under way).
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelLoadError } from '../../src/model/errors.js';
import { loadModel } from '../../src/model/formats.js';
import { DEFAULT_RUNTIME_OPTIONS } from '../../src/model/model.js';
import { McPool } from '../../src/serving/pool.js';
import { readContents } from '../../src/serving/discovery.js';
import { ModelRepository } from '../../src/serving/repository.js';

const row = Float32Array.from([59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87]);
const dir = mkdtempSync(join(tmpdir(), 'ds-contents-'));
const copy = (): { name: string; file: string; card: string } => {
  const file = join(dir, 'model.onnx');
  const card = join(dir, 'model.json');
  copyFileSync('models/diabetes/model.onnx', file);
  copyFileSync('models/diabetes/model.json', card);
  return { name: 'diabetes', file, card };
};

describe('model contents read once', () => {
  const pool = new McPool([], DEFAULT_RUNTIME_OPTIONS, 1);
  afterAll(async () => {
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the main thread and a worker load the bytes read before the files changed', async () => {
    const source = copy();
    const pinned = await readContents(source);
    expect(pinned.contents?.model.byteLength).toBeGreaterThan(1000);
    expect(JSON.parse(pinned.contents!.card!).target).toBeDefined();
    // the files are replaced by something that is not a model at all
    writeFileSync(source.file, 'not onnx');
    writeFileSync(source.card, '{');
    const local = await loadModel(pinned, DEFAULT_RUNTIME_OPTIONS);
    await pool.add(pinned, 'diabetes');
    const opts = { samples: 200, interval: 0.9, seed: 3 };
    expect((await pool.run('diabetes', row, 1, opts)).stats).toEqual((await local.sample(row, 1, opts)).stats);
    // and without the pinned bytes the same source fails, naming the file: the files really did change
    await expect(loadModel(source, DEFAULT_RUNTIME_OPTIONS)).rejects.toBeInstanceOf(ModelLoadError);
    await local.close();
  });

  it('the repository hands its prepare hooks (the worker pool) the bytes its own load used', async () => {
    const source = copy();
    const repo = new ModelRepository();
    const prepared: (Uint8Array | undefined)[] = [];
    repo.use({ prepare: async (_m, s) => void prepared.push(s.contents?.model) });
    await repo.load(source);
    expect(prepared).toHaveLength(1);
    expect(Buffer.from(prepared[0]!).equals(readFileSync('models/diabetes/model.onnx'))).toBe(true);
    // the served entry keeps the paths only
    expect(repo.get('diabetes')).toBeDefined();
    await repo.close();
  });

  it('a missing card is no card; a missing model file is a ModelLoadError naming it', async () => {
    const source = copy();
    rmSync(source.card);
    expect((await readContents(source)).contents?.card).toBeNull();
    rmSync(source.file);
    await expect(readContents(source)).rejects.toThrow(/model\.onnx.*cannot read the file \(ENOENT\)/);
  });
});
