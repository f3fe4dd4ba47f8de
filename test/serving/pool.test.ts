import { readFileSync, readdirSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { CancelledError } from '../../src/model/errors.js';
import { DEFAULT_RUNTIME_OPTIONS } from '../../src/model/model.js';
import { OnnxModel } from '../../src/model/onnx/model.js';
import { McPool, sharedBytes } from '../../src/serving/pool.js';

const row = Float32Array.from([59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87]);
const source = { name: 'diabetes', file: 'models/diabetes/model.onnx', card: 'models/diabetes/model.json' };

describe('McPool (worker threads)', () => {
  const pool = new McPool([source], DEFAULT_RUNTIME_OPTIONS, 2);
  afterAll(() => pool.close());

  it('answers single and coalesced tasks exactly as the main thread does', async () => {
    await pool.ready();
    const local = await OnnxModel.load('diabetes', source.file, source.card);
    const opts = { samples: 300, interval: 0.9, seed: 8 };
    expect((await pool.run('diabetes', row, 1, opts)).stats).toEqual((await local.sample(row, 1, opts)).stats);
    const jobs = [0, 1, 2].map((k) => ({ x: row, rows: 1, opts: { samples: 40, interval: 0.8, seed: k } }));
    expect(
      JSON.stringify(await pool.runCoalesced('diabetes', jobs, 10), (_k, v: unknown) =>
        ArrayBuffer.isView(v) ? Array.from(v as Float64Array) : v,
      ),
    ).toBe(
      JSON.stringify(await local.sampleBatch(jobs), (_k, v: unknown) =>
        ArrayBuffer.isView(v) ? Array.from(v as Float64Array) : v,
      ),
    );
    await local.close();
  });

  it('a cancelled task stops between chunks on the worker, and the worker serves the next one', async () => {
    await pool.ready();
    // 1000 rows × 10 000 samples: 2 500 chunks of 4 096 tiled rows, seconds of work
    const rows = 1000;
    const x = new Float32Array(rows * 10);
    for (let i = 0; i < rows; i++) x.set(row, i * 10);
    const opts = { samples: 10_000, interval: 0.9, seed: 1 };
    // cancelled while running: it stops part way (a run whose flag is set before its first chunk
    // runs none: test/model/onnx/model.test.ts)
    const task = pool.start('diabetes', x, rows, opts);
    await new Promise((r) => setTimeout(r, 100));
    task.cancel();
    const e1 = await task.result.then(
      () => null,
      (e: unknown) => e,
    );
    expect(e1).toBeInstanceOf(CancelledError);
    expect((e1 as CancelledError).samples).toBe(10_000);
    expect((e1 as CancelledError).samplesDone).toBeLessThan(10_000);
    // the flag does not stop the next task on that worker
    expect((await pool.run('diabetes', row, 1, { samples: 100, interval: 0.9, seed: 2 })).seed).toBe(2);
  });

  it('a worker runs its Monte Carlo tasks one after the other: a task handed over while another runs waits for it', async () => {
    const one = new McPool([source], DEFAULT_RUNTIME_OPTIONS, 1);
    await one.ready();
    const rows = 1000;
    const x = new Float32Array(rows * 10);
    for (let i = 0; i < rows; i++) x.set(row, i * 10);
    const order: string[] = [];
    const long = one.start('diabetes', x, rows, { samples: 10_000, interval: 0.9 });
    const short = one.start('diabetes', row, 1, { samples: 10, interval: 0.9, seed: 3 });
    const done = [
      long.result.then(
        () => order.push('long'),
        () => order.push('long cancelled'),
      ),
      short.result.then((r) => order.push(`short ${r.seed}`)),
    ];
    await new Promise((r) => setTimeout(r, 100));
    expect(order).toEqual([]);
    long.cancel();
    await Promise.all(done);
    expect(order).toEqual(['long cancelled', 'short 3']);
    await one.close();
  });

  it.runIf(process.platform === 'linux')(
    'nice: the worker threads run at a lower CPU priority, the main thread keeps its own',
    async () => {
      // /proc/self/task/<tid>/stat: field 19 is the thread's nice value
      const niceOf = (tid: string): number =>
        Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ').pop()!.split(' ')[16]);
      const threadsAt = (nice: number): string[] => readdirSync('/proc/self/task').filter((t) => niceOf(t) === nice);
      const mainNice = niceOf(String(process.pid));
      const before = threadsAt(7).length;
      const niced = new McPool([source], DEFAULT_RUNTIME_OPTIONS, 1, 7);
      await niced.ready();
      expect(threadsAt(7).length).toBeGreaterThan(before);
      expect(niceOf(String(process.pid))).toBe(mainNice);
      await niced.close();
    },
  );

  it('a worker error is a rejected task, not a crash', async () => {
    await expect(pool.run('nope', row, 1, { samples: 10, interval: 0.9 })).rejects.toThrow(/no model "nope"/);
  });

  it('a worker that dies is replaced, and the pool keeps serving', async () => {
    // (terminating a worker inside onnxruntime's native run aborts the process, so it dies idle here)
    const slots = (pool as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }).slots;
    const first = slots[0]!.worker;
    await first.terminate();
    await new Promise((r) => setTimeout(r, 50));
    expect(slots[0]!.worker).not.toBe(first);
    await pool.ready();
    const results = await Promise.all(
      [1, 2, 3, 4].map((seed) => pool.run('diabetes', row, 1, { samples: 50, interval: 0.9, seed })),
    );
    expect(results.map((r) => r.seed)).toEqual([1, 2, 3, 4]);
  });

  it('a task for a worker that ended before it answered anything fails at once (no replacement: it would end again)', async () => {
    const empty = new McPool([], DEFAULT_RUNTIME_OPTIONS, 1);
    await (empty as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }).slots[0]!.worker.terminate();
    await new Promise((r) => setTimeout(r, 20));
    await expect(empty.run('diabetes', row, 1, { samples: 10, interval: 0.9 })).rejects.toThrow(/exited/);
    await empty.close();
  });

  it('close waits for running tasks, then refuses new ones', async () => {
    const other = new McPool([source], DEFAULT_RUNTIME_OPTIONS, 1);
    await other.ready();
    const rows4 = Float32Array.from([...row, ...row, ...row, ...row]);
    const running = other.run('diabetes', rows4, 4, { samples: 5000, interval: 0.9 });
    await other.close();
    await expect(running).resolves.toBeDefined();
    await expect(other.run('diabetes', row, 1, { samples: 10, interval: 0.9 })).rejects.toThrow(/closed/);
  });
});

describe('McPool: a worker idle after MC work gives back what its runs grew, in its own thread', () => {
  const slots = (p: McPool) => (p as unknown as { slots: { worker: unknown }[] }).slots;

  it('after renewAfterMs without MC tasks, once; the same thread then holds less and answers as before', async () => {
    const pool = new McPool([source], DEFAULT_RUNTIME_OPTIONS, 1, 0, 150);
    try {
      await pool.ready();
      const first = slots(pool)[0]!.worker;
      const opts = { samples: 2000, interval: 0.9, seed: 5 };
      const before = await pool.run('diabetes', row, 1, opts);
      // tasks keep arriving within renewAfterMs: no renewal meanwhile
      for (let i = 0; i < 4; i++) {
        await new Promise((r) => setTimeout(r, 60));
        await pool.run('diabetes', row, 1, { samples: 10, interval: 0.9, seed: i });
      }
      expect(pool.renewals).toBe(0);
      const [grown] = await pool.held(); // a 2000-sample run's mask buffer (1.6 MB) is kept for reuse
      for (let waited = 0; pool.renewals === 0 && waited < 10_000; waited += 50)
        await new Promise((r) => setTimeout(r, 50));
      expect(pool.renewals).toBe(1);
      expect(slots(pool)[0]!.worker).toBe(first);
      expect(pool.threads).toBe(1);
      const [held] = await pool.held();
      expect(held!.heapUsedMb).toBeGreaterThan(1);
      expect(held!.arrayBuffersMb).toBeLessThan(grown!.arrayBuffersMb - 1); // dropped and collected
      // idle with no MC task since: no further renewal
      await new Promise((r) => setTimeout(r, 400));
      expect(pool.renewals).toBe(1);
      expect((await pool.run('diabetes', row, 1, opts)).stats).toEqual(before.stats);
    } finally {
      await pool.close();
    }
  });

  it('tasks that arrive while a worker gives back are answered after it, as before', async () => {
    const pool = new McPool([source], DEFAULT_RUNTIME_OPTIONS, 1, 0, 0);
    const renew = (slot: unknown) => (pool as unknown as { renew(s: unknown): Promise<void> }).renew(slot);
    try {
      await pool.ready();
      const opts = { samples: 3000, interval: 0.9, seed: 7 };
      const alone = await pool.run('diabetes', row, 1, opts);
      const worker = slots(pool)[0]!;
      const tasks = [pool.run('diabetes', row, 1, opts)];
      const renewing = renew(worker); // after the task handed over before it
      tasks.push(pool.run('diabetes', row, 1, opts));
      await new Promise((r) => setTimeout(r, 0));
      tasks.push(pool.run('diabetes', row, 1, opts));
      await renewing;
      tasks.push(pool.run('diabetes', row, 1, opts));
      for (const answer of await Promise.all(tasks)) expect(answer.stats).toEqual(alone.stats);
      expect(pool.renewals).toBe(1);
      expect(slots(pool)[0]).toBe(worker);
      expect(pool.threads).toBe(1);
    } finally {
      await pool.close();
    }
  });

  it('a worker holding a model that cannot give back in place (a tensor model) is replaced whole', async () => {
    const file = 'test/fixtures/tensor/conv1d_regressor.onnx';
    const tensor = { name: 'conv', file, card: null, contents: { model: readFileSync(file), card: null } };
    const pool = new McPool([source, tensor], DEFAULT_RUNTIME_OPTIONS, 1, 0, 0);
    const renew = (slot: unknown) => (pool as unknown as { renew(s: unknown): Promise<void> }).renew(slot);
    try {
      await pool.ready();
      const opts = { samples: 300, interval: 0.9, seed: 3 };
      const before = await pool.run('diabetes', row, 1, opts);
      const old = slots(pool)[0]!;
      await renew(old);
      expect(pool.renewals).toBe(1);
      expect(slots(pool)[0]).not.toBe(old);
      expect((await pool.run('diabetes', row, 1, opts)).stats).toEqual(before.stats);
    } finally {
      await pool.close();
    }
  });

  it('renewAfterMs 0 never renews; models added or removed meanwhile are served as on the others', async () => {
    const never = new McPool([source], DEFAULT_RUNTIME_OPTIONS, 1, 0, 0);
    const soon = new McPool([source], DEFAULT_RUNTIME_OPTIONS, 2, 0, 100);
    try {
      await Promise.all([never.ready(), soon.ready()]);
      const opts = { samples: 100, interval: 0.9, seed: 1 };
      await Promise.all([never.run('diabetes', row, 1, opts), soon.run('diabetes', row, 1, opts)]);
      await soon.add(source, 'second');
      await soon.remove('diabetes');
      for (let waited = 0; soon.renewals === 0 && waited < 10_000; waited += 50)
        await new Promise((r) => setTimeout(r, 50));
      expect(soon.renewals).toBe(1);
      expect(never.renewals).toBe(0);
      for (let i = 0; i < 4; i++) {
        await expect(soon.run('diabetes', row, 1, opts)).rejects.toThrow(/no model "diabetes"/);
        expect((await soon.run('second', row, 1, opts)).seed).toBe(1);
      }
    } finally {
      await Promise.all([never.close(), soon.close()]);
    }
  });
});

describe('McPool: model bytes', () => {
  it('workers load from one shared copy of the bytes and answer as a model loaded from the file does', async () => {
    const bytes = new Uint8Array(readFileSync(source.file));
    const card = readFileSync(source.card, 'utf8');
    const shared = sharedBytes({ ...source, contents: { model: bytes, card } });
    expect(shared.contents!.model.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(shared.contents!.model).toEqual(bytes);
    expect(sharedBytes(shared)).toBe(shared); // already shared: not copied again
    const pool = new McPool([], DEFAULT_RUNTIME_OPTIONS, 2);
    const local = await OnnxModel.load('diabetes', source.file, source.card);
    try {
      await pool.add({ ...source, contents: { model: bytes, card } });
      const held = (pool as unknown as { models: Map<string, { source: typeof shared }> }).models;
      expect(held.get('diabetes')!.source.contents!.model.buffer).toBeInstanceOf(SharedArrayBuffer);
      const opts = { samples: 300, interval: 0.9, seed: 4 };
      const want = (await local.sample(row, 1, opts)).stats;
      for (let i = 0; i < 2; i++) expect((await pool.run('diabetes', row, 1, opts)).stats).toEqual(want);
    } finally {
      await Promise.all([pool.close(), local.close()]);
    }
  });
});
