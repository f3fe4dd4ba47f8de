import { describe, expect, it } from 'vitest';
import { CancelledError, type RequestError } from '../../src/model/errors.js';
import type { McJob, McResult, Model } from '../../src/model/model.js';
import type { RegressionStats } from '../../src/uncertainty/record.js';
import { DeadlineExceededError, OverloadedError } from '../../src/serving/errors.js';
import {
  type ClientLink,
  type LaneObserver,
  type McEntry,
  McScheduler,
  type McWork,
} from '../../src/serving/scheduler.js';

const A = { name: 'a' } as Model;
const B = { name: 'b' } as Model;
const tick = () => new Promise((r) => setImmediate(r));

/** A client whose connection the test closes. */
function client(): ClientLink & { close(): void } {
  let closed = false;
  const cbs = new Set<() => void>();
  return {
    get closed() {
      return closed;
    },
    onClose(cb) {
      cbs.add(cb);
      return () => cbs.delete(cb);
    },
    close() {
      closed = true;
      for (const cb of cbs) cb();
    },
  };
}

/**
 * A scheduler whose runner records each task's seeds and holds it until the test opens its gate
 * (gates in start order); `stops` counts entries told to stop while running.
 */
function harness(capacity: number, slots = 1, batchRows = 4096) {
  const runs: number[][] = [];
  const gates: (() => void)[] = [];
  const events: string[] = [];
  let stops = 0;
  const runner = (batch: McEntry[]): Promise<void> => {
    runs.push(batch.map((e) => e.job.opts.seed!));
    for (const e of batch) e.stop = () => stops++;
    return new Promise<void>((resolve) =>
      gates.push(() => {
        for (const e of batch) e.resolve({ seed: e.job.opts.seed!, stats: {} as RegressionStats });
        resolve();
      }),
    );
  };
  const observer: LaneObserver = {
    rejected: (lane) => events.push(`rejected ${lane}`),
    timedOut: (lane, stage) => events.push(`timed out ${lane} ${stage}`),
    cancelled: (lane, stage) => events.push(`cancelled ${lane} ${stage}`),
  };
  const s = new McScheduler(
    capacity,
    () => slots,
    () => batchRows,
    runner,
    observer,
  );
  const work = (seed: number, o: Partial<McWork> & { samples?: number; rows?: number } = {}): McWork => {
    const job: McJob = {
      x: new Float32Array(o.rows ?? 1),
      rows: o.rows ?? 1,
      opts: { samples: o.samples ?? 100, interval: 0.9, seed },
    };
    return { model: A, job, coalesce: true, deadline: performance.now() + 60_000, timeoutMs: 60_000, ...o };
  };
  return { s, runs, gates, events, work, stops: () => stops };
}

const errorOf = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => null,
    (e: unknown) => e,
  );

describe('McScheduler (admission control for Monte Carlo)', () => {
  it('requests of one turn are dispatched together: batches by model and sample count, within batchRows', async () => {
    const { s, runs, gates, work } = harness(100, 3, 400);
    const all = [
      s.submit(work(1)),
      s.submit(work(2, { samples: 50 })),
      s.submit(work(3, { rows: 2 })),
      s.submit(work(4)),
      s.submit(work(5)),
      s.submit(work(6, { model: B })),
    ];
    await tick();
    // T=100: 1 + 2 + 1 rows fill 400 tiled rows; 5 is older than 6, which waits for a free runner
    expect(runs).toEqual([[1, 3, 4], [2], [5]]);
    gates.shift()!();
    await all[0];
    await tick();
    expect(runs[3]).toEqual([6]);
    for (const g of gates.splice(0)) g();
    expect((await Promise.all(all)).map((r: McResult) => r.seed)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('one task per runner: requests arriving while it is busy wait, first come first served, and fill the next batch', async () => {
    const { s, runs, gates, work } = harness(100, 1);
    const first = s.submit(work(1));
    await tick();
    expect(runs).toEqual([[1]]);
    const later = [s.submit(work(2)), s.submit(work(3, { coalesce: false })), s.submit(work(4))];
    await tick();
    expect([runs.length, s.depth, s.running]).toEqual([1, 3, 1]);
    gates.shift()!();
    await first;
    await tick();
    // the oldest (2) goes first, with the one that may share its run (4); 3 runs alone after them
    expect(runs).toEqual([[1], [2, 4]]);
    gates.shift()!();
    await later[0];
    await tick();
    expect(runs).toEqual([[1], [2, 4], [3]]);
    gates.shift()!();
    expect((await Promise.all(later)).map((r) => r.seed)).toEqual([2, 3, 4]);
    expect([s.depth, s.running]).toEqual([0, 0]);
  });

  it('a full queue refuses at once with 503 and a Retry-After; a place freed by a finished task is taken again', async () => {
    const { s, gates, events, work } = harness(2, 1);
    const running = s.submit(work(1));
    await tick();
    const queued = [s.submit(work(2, { coalesce: false })), s.submit(work(3, { coalesce: false }))];
    const refused = await errorOf(s.submit(work(4)));
    expect(refused).toBeInstanceOf(OverloadedError);
    expect([
      (refused as RequestError).status,
      (refused as RequestError).kind,
      (refused as RequestError).message,
    ]).toEqual([503, 'overloaded', 'server busy: 2 Monte Carlo requests are waiting (MAX_QUEUE=2); retry later']);
    expect((refused as RequestError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(events).toEqual(['rejected mc']);
    // the same answer is the same error, counted again
    expect(s.refusal()).toBe(refused);
    expect(events).toEqual(['rejected mc', 'rejected mc']);
    gates.shift()!();
    await running;
    await tick();
    // 2 started: one place is free
    const admitted = s.submit(work(5, { coalesce: false }));
    expect(s.depth).toBe(2);
    for (let i = 0; i < 3; i++) {
      await tick();
      gates.shift()!();
      await tick();
    }
    expect((await Promise.all([...queued, admitted])).map((r) => r.seed)).toEqual([2, 3, 5]);
  });

  it('a request still queued at its deadline is dropped (504) and never runs; its place is freed', async () => {
    const { s, runs, gates, events, work } = harness(1, 1);
    const running = s.submit(work(1));
    await tick();
    const late = s.submit(work(2, { deadline: performance.now() + 20, timeoutMs: 20 }));
    const err = await errorOf(late);
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect([(err as RequestError).status, (err as Error).message]).toEqual([
      504,
      "the request's deadline of 20 ms passed while it was waiting in the queue",
    ]);
    expect([s.depth, events]).toEqual([0, ['timed out mc queued']]);
    // its place is free again
    const next = s.submit(work(3));
    gates.shift()!();
    await running;
    await tick();
    await tick();
    gates.shift()!();
    expect((await next).seed).toBe(3);
    expect(runs).toEqual([[1], [3]]);
  });

  it('a running request at its deadline is answered 504 at once and told to stop', async () => {
    const { s, gates, events, work, stops } = harness(4, 1);
    const p = s.submit(work(1, { deadline: performance.now() + 20, timeoutMs: 20 }));
    const err = await errorOf(p);
    expect((err as Error).message).toBe("the request's deadline of 20 ms passed while it was running");
    expect([stops(), events]).toEqual([1, ['timed out mc running']]);
    // the runner is still busy until its task ends: one task per runner
    expect(s.running).toBe(1);
    gates.shift()!();
    await tick();
    expect(s.running).toBe(0);
  });

  it('a client that leaves: queued work is dropped, running work is told to stop, and later batches skip it', async () => {
    const { s, runs, gates, events, work, stops } = harness(10, 1);
    const c1 = client();
    const c2 = client();
    const running = s.submit(work(1, { client: c1 }));
    await tick();
    const queued = [s.submit(work(2, { client: c2 })), s.submit(work(3))];
    await tick();
    c2.close();
    c1.close();
    expect(await errorOf(queued[0]!)).toBeInstanceOf(CancelledError);
    expect(await errorOf(running)).toBeInstanceOf(CancelledError);
    expect([stops(), s.depth, events]).toEqual([1, 1, ['cancelled mc queued', 'cancelled mc running']]);
    gates.shift()!();
    await tick();
    expect(runs).toEqual([[1], [3]]);
    gates.shift()!();
    expect((await queued[1]!).seed).toBe(3);
    // a client already gone is never queued
    const gone = client();
    gone.close();
    expect(await errorOf(s.submit(work(4, { client: gone })))).toBeInstanceOf(CancelledError);
    expect(s.depth).toBe(0);
  });

  it('MAX_QUEUE_WAIT_MS: refused when the work queued ahead would take too long, from the rate measured while saturated', async () => {
    let t = 0;
    const gates: (() => void)[] = [];
    const runner = (batch: McEntry[]): Promise<void> =>
      new Promise((resolve) =>
        gates.push(() => {
          for (const e of batch) e.resolve({ seed: e.job.opts.seed!, stats: {} as RegressionStats });
          resolve();
        }),
      );
    const s = new McScheduler(
      { requests: 100, waitMs: 50 },
      () => 1,
      () => 4096,
      runner,
      {},
      () => t,
    );
    const w = (seed: number): McWork => ({
      model: A,
      job: { x: new Float32Array(1), rows: 1, opts: { samples: 10, interval: 0.9, seed } },
      coalesce: false,
      deadline: performance.now() + 60_000,
      timeoutMs: 60_000,
    });
    const all = [s.submit(w(1)), s.submit(w(2)), s.submit(w(3))];
    await tick();
    // 1 runs; at t=10 it ends and 2 starts at once (saturated); at t=30 2 ends: 20 ms per request
    t = 10;
    gates.shift()!();
    await all[0];
    await tick();
    expect(s.estimatedWaitMs()).toBe(0);
    t = 30;
    gates.shift()!();
    await all[1];
    await tick();
    expect(s.estimatedWaitMs()).toBe(0); // 3 runs, nothing waits
    const more = [s.submit(w(4)), s.submit(w(5)), s.submit(w(6))];
    expect(s.estimatedWaitMs()).toBe(60);
    const refused = await errorOf(s.submit(w(7)));
    expect((refused as Error).message).toBe(
      'server busy: 3 Monte Carlo requests are waiting (about 60 ms of work ahead, MAX_QUEUE_WAIT_MS=50); retry later',
    );
    expect((refused as RequestError).retryAfterSeconds).toBe(1);
    for (let i = 0; i < 4; i++) {
      gates.shift()!();
      await tick();
      await tick();
    }
    expect((await Promise.all([...all, ...more])).map((r) => r.seed)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('a runner that throws fails its batch; the runner slot is freed', async () => {
    const s = new McScheduler(
      10,
      () => 1,
      () => 4096,
      async () => {
        throw new Error('boom');
      },
    );
    const job: McJob = { x: new Float32Array(1), rows: 1, opts: { samples: 10, interval: 0.9 } };
    const w: McWork = { model: A, job, coalesce: true, deadline: performance.now() + 1000, timeoutMs: 1000 };
    expect(((await errorOf(s.submit(w))) as Error).message).toBe('boom');
    expect(s.running).toBe(0);
  });

  it('under steady load (the queue never runs empty) it does not keep the entries it handed out', async () => {
    const { s, runs, gates, work } = harness(1000, 1, 100);
    const answers: Promise<unknown>[] = [];
    for (let seed = 0; seed < 3; seed++) answers.push(s.submit(work(seed)));
    await tick();
    for (let seed = 3; seed < 600; seed++) {
      answers.push(s.submit(work(seed)));
      gates.shift()!();
      await tick();
      expect(s.depth).toBeGreaterThan(0);
    }
    // the array holds the waiting entries and at most a bounded tail of those already taken
    expect((s as unknown as { queue: McEntry[] }).queue.length).toBeLessThan(140);
    while (gates.length > 0) {
      gates.shift()!();
      await tick();
    }
    await Promise.all(answers);
    expect(runs.flat()).toEqual(Array.from({ length: 600 }, (_, i) => i));
  });
});
