/**
 * The data plane with tensor models (issue 19): dispatch on model.layout to predictTensors and
 * sampleTensors, the limits (MAX_BATCH_ROWS, MC_MAX_RUN_BYTES, MC_MAX_WORK_BYTES) checked before any
 * value is read, and tensor Monte Carlo and predict sent to the worker pool when the pool holds the model.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { RequestError } from '../../src/model/errors.js';
import type { InputTensor, Model } from '../../src/model/model.js';
import { DataPlane, type RowsInput, type SampleFields } from '../../src/serving/dataplane.js';
import { ModelRepository } from '../../src/serving/repository.js';
import { fakeTensorModel } from '../helpers/fake-tensor-model.js';

const FIELDS: SampleFields = { samples: 'samples', samplesName: 'samples', workAdvice: 'send fewer rows or samples' };

/** `n` rows of a [N,4,8] series (each row all `value`); `read` counts the reads past the limits. */
function series(n: number, value = 1, read = { count: 0 }): RowsInput {
  return {
    decode: () => {
      throw new Error('a tensor model is never decoded as rows');
    },
    tensors: (_m, count) => {
      count(n, 'instances');
      read.count++;
      const inputs: InputTensor[] = [{ name: 'series', dims: [n, 4, 8], data: new Float32Array(n * 32).fill(value) }];
      return { inputs, rows: n };
    },
  };
}

async function plane(env: Record<string, string>, models: Model[]) {
  const repository = new ModelRepository({ loader: async (s) => models.find((m) => m.name === s.name)! });
  const dp = new DataPlane(
    repository,
    loadConfig({
      MC_WORKERS: '0',
      MAX_BATCH_ROWS: '10',
      MC_MAX_WORK_BYTES: '100000',
      MC_MAX_RUN_BYTES: '1048576',
      ...env,
    }),
  );
  for (const m of models) await repository.load({ name: m.name, file: `${m.name}.fake`, card: null });
  repository.state = 'ready';
  return { dp, repository };
}

const failure = async (p: Promise<unknown>): Promise<[number, string]> => {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(RequestError);
  return [(e as RequestError).status, (e as Error).message];
};

describe('DataPlane with tensor models', () => {
  it('predict: the output tensor and its dims; sample: the record and the output dims (inline without a pool)', async () => {
    const m = fakeTensorModel('regression', { runBytesPerRow: 100 });
    const { dp } = await plane({}, [m]);
    const p = await dp.predict({ model: 'regression', input: series(3, 2) });
    expect(p.dims).toEqual([3, 1]);
    expect(Array.from(p.output)).toEqual([2, 2, 2]);
    expect(p.outOfRange).toBeNull();
    const s = await dp.sample({ model: 'regression', input: series(2, 4), samples: 10, seed: 1, fields: FIELDS });
    expect(s.outputDims).toEqual([2, 1]);
    expect(s.stats.kind === 'regression' && Array.from(s.stats.mean)).toEqual([4, 4]);
    expect(s.samples).toBe(10);
    expect(dp.statistics.get('regression', '1').modes.mc.inferenceCount).toBe(2);
  });

  it('limits before any value is read: rows, the work in bytes, one row over the run budget', async () => {
    const read = { count: 0 };
    const light = fakeTensorModel('regression', { runBytesPerRow: 100 });
    const heavy = fakeTensorModel('regression', { name: 'heavy', runBytesPerRow: 2 * 1048576 });
    const { dp } = await plane({}, [light, heavy]);
    expect(await failure(dp.predict({ model: 'regression', input: series(11, 1, read) }))).toEqual([
      413,
      'instances: 11 rows exceed MAX_BATCH_ROWS=10',
    ]);
    // 10 × 101 × 100 = 101 000 bytes > 100 000
    const big = { model: 'regression', input: series(10, 1, read), samples: 101, fields: FIELDS };
    expect(await failure(dp.sample(big))).toEqual([
      413,
      'rows × samples × bytes per row and pass = 10 × 101 × 100 = 101000 bytes of Monte Carlo work exceeds the work budget MC_MAX_WORK_BYTES=100000; send fewer rows or samples',
    ]);
    expect(await failure(dp.sample({ ...big, model: 'heavy', input: series(1, 1, read), samples: 1 }))).toEqual([
      413,
      'one row of model "heavy" needs about 2097152 bytes of activations per Monte Carlo pass, over the run budget MC_MAX_RUN_BYTES=1048576',
    ]);
    expect(read.count).toBe(0);
    // exactly at the budget: served
    await dp.sample({ ...big, samples: 100 });
    expect(read.count).toBe(1);
  });

  it('a protocol input without a tensor form is a 400', async () => {
    const { dp } = await plane({}, [fakeTensorModel('regression')]);
    const rowsOnly: RowsInput = { decode: () => ({ x: new Float32Array(0), rows: 0 }) };
    expect(await failure(dp.predict({ model: 'regression', input: rowsOnly }))).toEqual([
      400,
      'model "regression" takes tensor inputs, which this request cannot carry',
    ]);
  });
});

describe('DataPlane with worker threads and a tensor model', () => {
  // the workers load their copy from the source's files: here a tabular model's, so a task that reaches
  // a worker fails there, naming it; a request that runs inline would succeed on the fake. That tells
  // which way the request went (test/server/tensor-fixtures-http.test.ts serves real tensor models on a worker).
  const fake = fakeTensorModel('regression', { name: 'diabetes', runBytesPerRow: 100 });
  const repository = new ModelRepository({ loader: async () => fake });
  const dp = new DataPlane(repository, loadConfig({ MC_WORKERS: '1' }));
  afterAll(async () => {
    await repository.close();
    await dp.close();
  });

  it('tensor Monte Carlo and predict go to the worker (never coalesced, whatever their size)', async () => {
    await repository.load({ name: 'diabetes', file: 'models/diabetes/model.onnx', card: 'models/diabetes/model.json' });
    repository.state = 'ready';
    expect(dp.workerThreads).toBe(1);
    const req = { model: 'diabetes', input: series(1), samples: 2, fields: FIELDS };
    await expect(dp.sample(req)).rejects.toThrow('model "diabetes#0" is not a tensor model');
    await expect(dp.predict({ model: 'diabetes', input: series(1, 3) })).rejects.toThrow(
      'model "diabetes#0" is not a tensor model',
    );
    expect(fake.calls).toHaveLength(0);
  });
});
