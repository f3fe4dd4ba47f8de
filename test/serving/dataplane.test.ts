import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { InputError, NoDropoutError, RequestError } from '../../src/model/errors.js';
import type { Model } from '../../src/model/model.js';
import type { RegressionStats } from '../../src/model/stats.js';
import { DataPlane, type DataPlaneObserver, type RowsInput, type SampleFields } from '../../src/serving/dataplane.js';
import { ModelNotFoundError, TooLargeError } from '../../src/serving/errors.js';
import { ModelRepository } from '../../src/serving/repository.js';
import { type FakeModel, fakeModel } from '../helpers/fake-model.js';

const FIELDS: SampleFields = { samples: 'opts.samples', samplesName: 'samples' };

/** Rows that report their count and then fail if their values are read (limits must come first). */
function rows(n: number, opts: { valuesRead?: () => void } = {}): RowsInput {
  return {
    decode: (model, count) => {
      count(n, 'rows');
      opts.valuesRead?.();
      return { x: new Float32Array(n * model.features.length), rows: n };
    },
  };
}

async function plane(env: Record<string, string>, models: Model[], observer?: DataPlaneObserver) {
  const repository = new ModelRepository({ loader: async (s) => models.find((m) => m.name === s.name && !(m as FakeModel).closed)! });
  const dp = new DataPlane(repository, loadConfig({ MC_WORKERS: '0', MAX_BATCH_ROWS: '10', MC_MAX_SAMPLES: '500', MC_MAX_WORK: '1000', ...env }), observer);
  for (const m of models) await repository.load({ name: m.name, file: `${m.name}.fake`, card: null });
  repository.state = 'ready';
  return { dp, repository };
}

describe('DataPlane', () => {
  it("applies every limit once, before reading a value, with the protocol's field names", async () => {
    const { dp } = await plane({}, [fakeModel('a', 1), fakeModel('nodrop', 2, { mc: false })]);
    const fail = () => {
      throw new Error('values read past a limit');
    };
    const err = async (p: Promise<unknown>): Promise<[string, number, string]> => {
      const e = await p.then(() => null, (x: unknown) => x);
      expect(e).toBeInstanceOf(RequestError);
      return [(e as RequestError).kind, (e as RequestError).status, (e as Error).message];
    };
    expect(await err(dp.predict({ model: 'a', input: rows(11, { valuesRead: fail }) }))).toEqual(['too_large', 413, 'rows: 11 rows exceed MAX_BATCH_ROWS=10']);
    expect(await err(dp.sample({ model: 'a', input: rows(11, { valuesRead: fail }), samples: 5, fields: FIELDS }))).toEqual(['too_large', 413, 'rows: 11 rows exceed MAX_BATCH_ROWS=10']);
    expect(await err(dp.sample({ model: 'a', input: rows(1, { valuesRead: fail }), samples: 501, fields: FIELDS }))).toEqual(['invalid_input', 400, 'opts.samples: 501 exceeds MC_MAX_SAMPLES=500']);
    expect(await err(dp.sample({ model: 'a', input: rows(3, { valuesRead: fail }), samples: 400, fields: { ...FIELDS, workAdvice: 'fewer!' } }))).toEqual([
      'too_large',
      413,
      'rows × samples = 3 × 400 = 1200 exceeds MC_MAX_WORK=1000; fewer!',
    ]);
    expect(await err(dp.sample({ model: 'nodrop', input: rows(1, { valuesRead: fail }), fields: FIELDS }))).toEqual(['no_dropout', 422, new NoDropoutError('nodrop').message]);
    expect(await err(dp.predict({ model: 'zz', input: rows(1) }))).toEqual(['model_not_found', 404, 'unknown model "zz" (available: a, nodrop)']);
    expect(await err(dp.predict({ model: 'a', version: '3', input: rows(1) }))).toEqual(['model_not_found', 404, 'model "a" has no version "3" (versions: 1)']);
    // within the limits: defaults applied, values read
    let read = 0;
    const r = await dp.sample({ model: 'a', input: rows(2, { valuesRead: () => read++ }), fields: FIELDS });
    expect([read, r.samples, r.interval, r.rows, (r.stats as RegressionStats).mean[1]]).toEqual([1, 100, 0.9, 2, 1]);
    expect([ModelNotFoundError, TooLargeError, InputError].every((E) => new E('x') instanceof RequestError)).toBe(true);
  });

  it('reports to its observer: inference time and rows per mode, samples, batch sizes', async () => {
    const calls: string[] = [];
    const observer: DataPlaneObserver = {
      inference: (m, mode, s, n) => calls.push(`${mode} ${m} ${n} ${s >= 0}`),
      mcSamples: (m, n) => calls.push(`samples ${m} ${n}`),
      predictBatch: (m, n) => calls.push(`batch ${m} ${n}`),
      mcBatch: (m, n) => calls.push(`mc batch ${m} ${n}`),
    };
    const { dp } = await plane({ BATCH_MAX_ROWS: '64' }, [fakeModel('a', 1)], observer);
    await Promise.all([dp.predict({ model: 'a', input: rows(2) }), dp.predict({ model: 'a', input: rows(3) })]);
    await Promise.all([dp.sample({ model: 'a', input: rows(1), samples: 7, fields: FIELDS }), dp.sample({ model: 'a', input: rows(1), samples: 7, fields: FIELDS })]);
    expect(calls).toEqual(['batch a 5', 'predict a 2 true', 'predict a 3 true', 'samples a 7', 'samples a 7', 'mc batch a 2', 'mc a 1 true', 'mc a 1 true']);
  });

  it('a model swapped during requests: those finish on the old model (batched or not), later ones run on the new one', async () => {
    for (const env of [{ BATCH_MAX_ROWS: '0' }, { BATCH_MAX_ROWS: '64' }]) {
      const old = fakeModel('a', 1);
      const { dp, repository } = await plane(env, [old]);
      let open!: () => void;
      old.gate = new Promise((resolve) => (open = resolve));
      const before = [dp.predict({ model: 'a', input: rows(1) }), dp.sample({ model: 'a', input: rows(1), samples: 5, fields: FIELDS })];
      await new Promise((resolve) => setImmediate(resolve));
      const next = fakeModel('a', 2);
      await repository.swap(next, { name: 'a', file: 'a2.fake', card: null });
      const after = await dp.predict({ model: 'a', input: rows(1) });
      expect(Array.from(after.output)).toEqual([2]);
      expect(old.closed).toBe(false);
      open();
      const [p, s] = (await Promise.all(before)) as unknown as [{ output: Float32Array }, { stats: RegressionStats }];
      expect([p.output[0], s.stats.mean[0]]).toEqual([1, 1]);
      await new Promise((resolve) => setImmediate(resolve));
      expect(old.closed).toBe(true);
    }
  });

  it('statistics: requests coalesced into one run are one execution of their total rows; each request counts its rows, its wait and the run', async () => {
    const a = fakeModel('a', 1);
    const { dp } = await plane({ BATCH_MAX_ROWS: '256', MAX_BATCH_ROWS: '100' }, [a]);
    let open!: () => void;
    a.gate = new Promise((r) => (open = r));
    const predicts = [1, 2, 3].map((n) => dp.predict({ model: 'a', input: rows(n) }));
    const mcs = [2, 5].map((n) => dp.sample({ model: 'a', input: rows(n), samples: 10, fields: FIELDS }));
    await new Promise((r) => setTimeout(r, 5));
    open();
    await Promise.all([...predicts, ...mcs]);
    await expect(dp.predict({ model: 'a', input: rows(101) })).rejects.toThrow(TooLargeError);
    const [s] = dp.modelStatistics('a');
    const p = s!.modes.predict;
    const m = s!.modes.mc;
    expect([p.inferenceCount, p.executionCount, p.success.count, p.fail.count, p.queue.count, p.computeInfer.count]).toEqual([6, 1, 3, 1, 3, 3]);
    expect([...p.batches].map(([n, d]) => [n, d.count])).toEqual([[6, 1]]);
    expect([m.inferenceCount, m.executionCount, m.sampleCount, m.success.count, m.fail.count]).toEqual([7, 1, 70, 2, 0]);
    expect([...m.batches].map(([n, d]) => [n, d.count])).toEqual([[7, 1]]);
    // the requests that waited for the gated run count it as compute, each of them
    expect(p.computeInfer.ns).toBeGreaterThanOrEqual(3 * p.batches.get(6)!.ns - 3);
    expect(dp.modelStatistics()).toEqual([s]);
    expect(() => dp.modelStatistics('zz')).toThrow(ModelNotFoundError);
    expect(() => dp.modelStatistics('a', '2')).toThrow('model "a" has no version "2" (versions: 1)');
  });
});

describe('DataPlane with worker threads', () => {
  const repository = new ModelRepository();
  const dp = new DataPlane(repository, loadConfig({ MC_WORKERS: '1', MC_WORKER_MIN_WORK: '1000' }));
  afterAll(async () => {
    await repository.close();
    await dp.close();
  });
  const source = { name: 'diabetes', file: 'models/diabetes/model.onnx', card: 'models/diabetes/model.json' };
  const row = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87];
  const input: RowsInput = { decode: (_m, count) => (count(2, 'rows'), { x: Float32Array.from([...row, ...row]), rows: 2 }) };
  const poolKeys = () => [...((dp as unknown as { pool: { models: Map<string, unknown> } }).pool.models.keys())];

  it('a model is on the workers before it is served, and leaves them when it is swapped out', async () => {
    await repository.load(source);
    repository.state = 'ready';
    expect(dp.workerThreads).toBe(1);
    expect(poolKeys()).toEqual(['diabetes#0']);
    const req = { model: 'diabetes', input, samples: 1000, seed: 3, fields: FIELDS };
    const onWorker = await dp.sample(req);
    const inline = await repository.get('diabetes').sample(Float32Array.from([...row, ...row]), 2, { samples: 1000, interval: 0.9, seed: 3 });
    expect(Array.from((onWorker.stats as RegressionStats).mean)).toEqual(Array.from((inline.stats as RegressionStats).mean));
    await repository.load(source);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(poolKeys()).toEqual(['diabetes#1']);
    expect(Array.from(((await dp.sample(req)).stats as RegressionStats).mean)).toEqual(Array.from((inline.stats as RegressionStats).mean));
  });
});
