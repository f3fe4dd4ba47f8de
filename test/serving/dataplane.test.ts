import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { CancelledError, InputError, NoDropoutError, RequestError } from '../../src/model/errors.js';
import type { Model } from '../../src/model/model.js';
import type { RegressionStats } from '../../src/uncertainty/record.js';
import {
  type ClientLink,
  DataPlane,
  type DataPlaneObserver,
  type RowsInput,
  type SampleFields,
} from '../../src/serving/dataplane.js';
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
  const repository = new ModelRepository({
    loader: async (s) => models.find((m) => m.name === s.name && !(m as FakeModel).closed)!,
  });
  const dp = new DataPlane(
    repository,
    loadConfig({ MC_WORKERS: '0', MAX_BATCH_ROWS: '10', MC_MAX_SAMPLES: '500', MC_MAX_WORK: '1000', ...env }),
    observer,
  );
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
      const e = await p.then(
        () => null,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(RequestError);
      return [(e as RequestError).kind, (e as RequestError).status, (e as Error).message];
    };
    expect(await err(dp.predict({ model: 'a', input: rows(11, { valuesRead: fail }) }))).toEqual([
      'too_large',
      413,
      'rows: 11 rows exceed MAX_BATCH_ROWS=10',
    ]);
    expect(
      await err(dp.sample({ model: 'a', input: rows(11, { valuesRead: fail }), samples: 5, fields: FIELDS })),
    ).toEqual(['too_large', 413, 'rows: 11 rows exceed MAX_BATCH_ROWS=10']);
    expect(
      await err(dp.sample({ model: 'a', input: rows(1, { valuesRead: fail }), samples: 501, fields: FIELDS })),
    ).toEqual(['invalid_input', 400, 'opts.samples: 501 exceeds MC_MAX_SAMPLES=500']);
    expect(
      await err(
        dp.sample({
          model: 'a',
          input: rows(3, { valuesRead: fail }),
          samples: 400,
          fields: { ...FIELDS, workAdvice: 'fewer!' },
        }),
      ),
    ).toEqual(['too_large', 413, 'rows × samples = 3 × 400 = 1200 exceeds MC_MAX_WORK=1000; fewer!']);
    expect(await err(dp.sample({ model: 'nodrop', input: rows(1, { valuesRead: fail }), fields: FIELDS }))).toEqual([
      'no_dropout',
      422,
      new NoDropoutError('nodrop').message,
    ]);
    expect(await err(dp.predict({ model: 'zz', input: rows(1) }))).toEqual([
      'model_not_found',
      404,
      'unknown model "zz" (available: a, nodrop)',
    ]);
    expect(await err(dp.predict({ model: 'a', version: '3', input: rows(1) }))).toEqual([
      'model_not_found',
      404,
      'model "a" has no version "3" (versions: 1)',
    ]);
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
    await Promise.all([
      dp.sample({ model: 'a', input: rows(1), samples: 7, fields: FIELDS }),
      dp.sample({ model: 'a', input: rows(1), samples: 7, fields: FIELDS }),
    ]);
    expect(calls).toEqual([
      'batch a 5',
      'predict a 2 true',
      'predict a 3 true',
      'mc batch a 2',
      // the samples drawn, reported after each request's run
      'mc a 1 true',
      'samples a 7',
      'mc a 1 true',
      'samples a 7',
    ]);
  });

  it('a model swapped during requests: those finish on the old model (batched or not), later ones run on the new one', async () => {
    for (const env of [{ BATCH_MAX_ROWS: '0' }, { BATCH_MAX_ROWS: '64' }]) {
      const old = fakeModel('a', 1);
      const { dp, repository } = await plane(env, [old]);
      let open!: () => void;
      old.gate = new Promise((resolve) => (open = resolve));
      const before = [
        dp.predict({ model: 'a', input: rows(1) }),
        dp.sample({ model: 'a', input: rows(1), samples: 5, fields: FIELDS }),
      ];
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
    expect([
      p.inferenceCount,
      p.executionCount,
      p.success.count,
      p.fail.count,
      p.queue.count,
      p.computeInfer.count,
    ]).toEqual([6, 1, 3, 1, 3, 3]);
    expect([...p.batches].map(([n, d]) => [n, d.count])).toEqual([[6, 1]]);
    expect([m.inferenceCount, m.executionCount, m.sampleCount, m.success.count, m.fail.count]).toEqual([
      7, 1, 70, 2, 0,
    ]);
    expect([...m.batches].map(([n, d]) => [n, d.count])).toEqual([[7, 1]]);
    // the requests that waited for the gated run count it as compute, each of them
    expect(p.computeInfer.ns).toBeGreaterThanOrEqual(3 * p.batches.get(6)!.ns - 3);
    expect(dp.modelStatistics()).toEqual([s]);
    expect(() => dp.modelStatistics('zz')).toThrow(ModelNotFoundError);
    expect(() => dp.modelStatistics('a', '2')).toThrow('model "a" has no version "2" (versions: 1)');
  });
});

/** Rows with the given values (row-major, the model's feature count per row). */
function values(data: number[], field = 'instances'): RowsInput {
  return {
    decode: (model, count) => {
      const rows = data.length / model.features.length;
      count(rows, field);
      return { x: Float32Array.from(data), rows };
    },
  };
}

/** A client whose connection the test closes. */
function client(): ClientLink & { close(): void } {
  let closed = false;
  const cbs = new Set<() => void>();
  return {
    get closed() {
      return closed;
    },
    onClose: (cb) => (cbs.add(cb), () => cbs.delete(cb)),
    close() {
      closed = true;
      for (const cb of cbs) cb();
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const failure = async (p: Promise<unknown>): Promise<[string, number, string]> => {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(RequestError);
  return [(e as RequestError).kind, (e as RequestError).status, (e as Error).message];
};

describe('DataPlane under overload: queue, deadlines, cancellation', () => {
  it('Monte Carlo at its deadline: 504 at once, and the run stops between chunks', async () => {
    const slow = fakeModel('slow', 1, { chunks: 100, chunkMs: 5 });
    const events: string[] = [];
    const { dp } = await plane({}, [slow], { timedOut: (lane, stage) => events.push(`${lane} ${stage}`) });
    expect(
      await failure(dp.sample({ model: 'slow', input: rows(1), samples: 10, fields: FIELDS, timeoutMs: 40 })),
    ).toEqual(['deadline_exceeded', 504, "the request's deadline of 40 ms passed while it was running"]);
    await sleep(20);
    const stoppedAt = slow.chunksRun;
    await sleep(60);
    expect(slow.chunksRun).toBe(stoppedAt);
    expect(stoppedAt).toBeLessThan(100);
    expect(events).toEqual(['mc running']);
  });

  it('MAX_REQUEST_MS caps a longer timeout (and is the default)', async () => {
    const slow = fakeModel('slow', 1, { chunks: 100, chunkMs: 5 });
    const { dp } = await plane({ MAX_REQUEST_MS: '30' }, [slow]);
    expect(
      (await failure(dp.sample({ model: 'slow', input: rows(1), samples: 10, fields: FIELDS, timeoutMs: 60_000 })))[2],
    ).toBe("the request's deadline of 30 ms passed while it was running");
    expect((await failure(dp.sample({ model: 'slow', input: rows(1), samples: 10, fields: FIELDS })))[0]).toBe(
      'deadline_exceeded',
    );
  });

  it('a client that leaves cancels its running Monte Carlo (the chunks stop) and its queued work (never run)', async () => {
    const slow = fakeModel('slow', 1, { chunks: 100, chunkMs: 5 });
    const events: string[] = [];
    const { dp } = await plane({}, [slow], { cancelled: (lane, stage) => events.push(`${lane} ${stage}`) });
    const c1 = client();
    const c2 = client();
    const running = dp.sample({ model: 'slow', input: rows(1), samples: 10, fields: FIELDS, client: c1 });
    const queued = dp.sample({ model: 'slow', input: rows(1), samples: 20, fields: FIELDS, client: c2 });
    await sleep(30);
    expect(slow.runs).toBe(1);
    c2.close();
    c1.close();
    expect((await failure(running))[0]).toBe('cancelled');
    expect(
      await queued.then(
        () => null,
        (e: unknown) => e,
      ),
    ).toBeInstanceOf(CancelledError);
    await sleep(20);
    const stoppedAt = slow.chunksRun;
    await sleep(60);
    expect([slow.chunksRun, slow.runs]).toEqual([stoppedAt, 1]);
    expect(stoppedAt).toBeLessThan(100);
    expect(events).toEqual(['mc queued', 'mc running']);
  });

  it('a full Monte Carlo queue answers 503 with Retry-After; predict has its own lane and still runs', async () => {
    const m = fakeModel('a', 1);
    let open!: () => void;
    m.gate = new Promise<void>((resolve) => (open = resolve));
    const { dp } = await plane({ MAX_QUEUE: '2' }, [m]);
    // two of one turn wait together, then run as one batch
    const admitted = [1, 2].map((seed) => dp.sample({ model: 'a', input: rows(1), samples: 10, seed, fields: FIELDS }));
    await sleep(5);
    expect(dp.queueDepth()).toEqual({ mc: 0, predict: 0 });
    const waiting = [4, 5].map((seed) => dp.sample({ model: 'a', input: rows(1), samples: 10, seed, fields: FIELDS }));
    const refused = await failure(dp.sample({ model: 'a', input: rows(1), samples: 10, seed: 6, fields: FIELDS }));
    expect(
      await dp
        .sample({ model: 'a', input: rows(1), samples: 10, fields: FIELDS })
        .catch((e: RequestError) => e.retryAfterSeconds),
    ).toBe(1);
    expect(refused).toEqual([
      'overloaded',
      503,
      'server busy: 2 Monte Carlo requests are waiting (MAX_QUEUE=2); retry later',
    ]);
    expect(dp.queueDepth()).toEqual({ mc: 2, predict: 0 });
    m.gate = null;
    expect(Array.from((await dp.predict({ model: 'a', input: rows(1) })).output)).toEqual([1]);
    open();
    expect((await Promise.all([...admitted, ...waiting])).map((r) => r.seed)).toEqual([1, 2, 4, 5]);
  });

  it('predict: beyond MAX_QUEUE waiting requests a 503; a request whose deadline passed or whose client left before its batch ran is left out', async () => {
    const m = fakeModel('a', 1);
    let open!: () => void;
    m.gate = new Promise<void>((resolve) => (open = resolve));
    const events: string[] = [];
    const observer: DataPlaneObserver = {
      rejected: (lane) => events.push(`rejected ${lane}`),
      timedOut: (lane, s) => events.push(`timed out ${lane} ${s}`),
      cancelled: (lane, s) => events.push(`cancelled ${lane} ${s}`),
    };
    const { dp } = await plane({ MAX_QUEUE: '1', BATCH_MAX_ROWS: '0' }, [m], observer);
    const first = dp.predict({ model: 'a', input: rows(1) });
    expect(await failure(dp.predict({ model: 'a', input: rows(1) }))).toEqual([
      'overloaded',
      503,
      'server busy: 1 predict requests are waiting (MAX_QUEUE=1); retry later',
    ]);
    open();
    await first;
    m.gate = null;
    // batched: the batch waits 30 ms; one request's deadline is 5 ms, another's client leaves
    const batched = await plane({ BATCH_MAX_ROWS: '64', BATCH_MAX_WAIT_US: '30000' }, [fakeModel('b', 2)], observer);
    const c = client();
    const results = [
      batched.dp.predict({ model: 'b', input: rows(1), timeoutMs: 5 }),
      batched.dp.predict({ model: 'b', input: rows(2) }),
      batched.dp.predict({ model: 'b', input: rows(1), client: c }),
    ];
    c.close();
    expect((await failure(results[0]!))[0]).toBe('deadline_exceeded');
    expect(Array.from((await results[1]!).output)).toEqual([2, 2]);
    expect((await failure(results[2]!))[0]).toBe('cancelled');
    expect(events).toEqual(['rejected predict', 'timed out predict queued', 'cancelled predict queued']);
  });

  it('a coalesced run that fails is retried request by request: only the bad one fails', async () => {
    const { dp } = await plane({}, [fakeModel('a', 1, { failSeed: 13 })]);
    const out = await Promise.allSettled(
      [12, 13, 14].map((seed) => dp.sample({ model: 'a', input: rows(1), samples: 10, seed, fields: FIELDS })),
    );
    expect(out.map((r) => (r.status === 'fulfilled' ? r.value.seed : (r.reason as Error).message))).toEqual([
      12,
      'seed 13 fails',
      14,
    ]);
  });
});

describe('DataPlane: finite answers and the training range', () => {
  const featureStats = { rows: 100, min: [0, 10], max: [1, 20], mean: [0.5, 15], std: [0.25, 2] };

  it('a statistic or a predict output that is not finite is a 422 naming the rows and statistics', async () => {
    const { dp } = await plane({}, [fakeModel('a', 1, { nanRow: 1 }), fakeModel('inf', Number.POSITIVE_INFINITY)]);
    expect(await failure(dp.sample({ model: 'a', input: rows(3), samples: 10, fields: FIELDS }))).toEqual([
      'non_finite',
      422,
      'statistics are not finite for row 1 (mean): the inputs drive the model beyond what float32 can represent; check them against the training range (GET the model: feature_stats)',
    ]);
    expect((await dp.sample({ model: 'a', input: rows(1), samples: 10, fields: FIELDS })).rows).toBe(1);
    expect((await failure(dp.predict({ model: 'inf', input: rows(2) })))[2]).toMatch(
      /^the output is not finite for row 0 \(output\), row 1 \(output\): /,
    );
    expect((await failure(dp.sample({ model: 'inf', input: rows(1), samples: 10, fields: FIELDS })))[2]).toMatch(
      /^statistics are not finite for row 0 \(mean, lower, upper\): /,
    );
  });

  it('inputs far outside the training range (beyond min/max by k training std) are flagged per row', async () => {
    const { dp } = await plane({}, [fakeModel('ranged', 1, { featureStats }), fakeModel('plain', 1)]);
    // k = 3: f0 in [−0.75, 1.75], f1 in [4, 26]
    const data = [0.5, 15, 1.75, 4, 1.76, 15, -5, 27];
    const p = await dp.predict({ model: 'ranged', input: values(data) });
    expect(p.outOfRange).toEqual([[], [], ['f0'], ['f0', 'f1']]);
    const s = await dp.sample({ model: 'ranged', input: values(data), samples: 10, fields: FIELDS });
    expect(s.outOfRange).toEqual(p.outOfRange);
    expect((await dp.predict({ model: 'ranged', input: values([0, 10]) })).outOfRange).toBeNull();
    expect((await dp.predict({ model: 'plain', input: values([1e30, -1e30]) })).outOfRange).toBeNull();
    const k1 = await plane({ OUT_OF_RANGE_STDS: '0.5' }, [fakeModel('ranged', 1, { featureStats })]);
    expect((await k1.dp.predict({ model: 'ranged', input: values([1.2, 20]) })).outOfRange).toEqual([['f0']]);
    const off = await plane({ OUT_OF_RANGE: 'off' }, [fakeModel('ranged', 1, { featureStats })]);
    expect((await off.dp.predict({ model: 'ranged', input: values(data) })).outOfRange).toBeNull();
  });

  it('OUT_OF_RANGE=reject: a 422 naming the row, the feature, its value and the range, before anything runs', async () => {
    const m = fakeModel('ranged', 1, { featureStats });
    const { dp } = await plane({ OUT_OF_RANGE: 'reject' }, [m]);
    expect(
      await failure(
        dp.sample({ model: 'ranged', input: values([0.5, 15, 0.5, 99], 'inputs[0]'), samples: 10, fields: FIELDS }),
      ),
    ).toEqual([
      'out_of_range',
      422,
      'inputs[0][1]: f1 = 99 is far outside the training range [10, 20] (beyond 3 training std 2); the server refuses such inputs (OUT_OF_RANGE=reject)',
    ]);
    expect(m.runs).toBe(0);
    expect((await dp.predict({ model: 'ranged', input: values([0.5, 15]) })).outOfRange).toBeNull();
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
  const input: RowsInput = {
    decode: (_m, count) => (count(2, 'rows'), { x: Float32Array.from([...row, ...row]), rows: 2 }),
  };
  const poolKeys = () => [...(dp as unknown as { pool: { models: Map<string, unknown> } }).pool.models.keys()];

  it('a model is on the workers before it is served, and leaves them when it is swapped out', async () => {
    await repository.load(source);
    repository.state = 'ready';
    expect(dp.workerThreads).toBe(1);
    expect(poolKeys()).toEqual(['diabetes#0']);
    const req = { model: 'diabetes', input, samples: 1000, seed: 3, fields: FIELDS };
    const onWorker = await dp.sample(req);
    const inline = await repository
      .get('diabetes')
      .sample(Float32Array.from([...row, ...row]), 2, { samples: 1000, interval: 0.9, seed: 3 });
    expect(Array.from((onWorker.stats as RegressionStats).mean)).toEqual(
      Array.from((inline.stats as RegressionStats).mean),
    );
    await repository.load(source);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(poolKeys()).toEqual(['diabetes#1']);
    expect(Array.from(((await dp.sample(req)).stats as RegressionStats).mean)).toEqual(
      Array.from((inline.stats as RegressionStats).mean),
    );
  });
});
