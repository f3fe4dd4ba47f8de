/**
 * Issue 22, bounded memory: the tuning workers read the rows the main thread holds (shared memory)
 * instead of a structured-clone copy each.
 */
import { writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { type Dataset, readDataset, splitRows, subset } from '../../src/train/data.js';
import { DEFAULT_TRAIN_OPTIONS } from '../../src/train/options.js';
import { runJob, type TuneJob } from '../../src/train/tune-job.js';
import { jobMessage } from '../../src/train/tune-workers.js';
import { isShared } from '../../src/train/shared-memory.js';

function csvDataset(): Dataset {
  const dir = mkdtempSync(join(tmpdir(), 'shared-rows-'));
  const file = join(dir, 'd.csv');
  const lines = ['a,b,y', ...Array.from({ length: 40 }, (_, i) => `${i},${i % 7},${(i * 0.37).toFixed(3)}`)];
  writeFileSync(file, `${lines.join('\n')}\n`);
  return readDataset(file, { target: 'y', task: 'regression' }).data;
}

/** What a worker receives: the message through a port, as postMessage delivers it. */
async function delivered(msg: TuneJob): Promise<TuneJob> {
  const { port1, port2 } = new MessageChannel();
  const got = new Promise<TuneJob>((resolve) => (port2 as MessagePort).once('message', resolve));
  port1.postMessage(msg);
  const job = await got;
  port1.close();
  return job;
}

function job(fit: Dataset, val: Dataset | null): TuneJob {
  const candidate = { dropout: 0.05, inputDropout: 0, weightDecay: 0, noise: 'homoscedastic' as const };
  return { index: 0, candidate, base: DEFAULT_TRAIN_OPTIONS, fit, val, epochs: [2] };
}

describe('rows in shared memory', () => {
  it('a CSV read, its splits and subsets keep their numbers in shared memory', () => {
    const data = csvDataset();
    const [fit, val] = splitRows(data, 0.25, 1, 'validation split');
    for (const ds of [data, fit, val, subset(data, [3, 1, 2])]) {
      expect(isShared(ds.x)).toBe(true);
      expect(isShared(ds.y)).toBe(true);
    }
    expect(Array.from(subset(data, [3, 1]).x)).toEqual([3, 3, 1, 1]);
  });

  it('a job posted to a worker carries the same memory, not a copy', async () => {
    const data = csvDataset();
    const [fit, val] = splitRows(data, 0.25, 1, 'validation split');
    const msg = jobMessage(job(fit, val));
    expect(msg.fit).toBe(fit);
    const got = await delivered(msg);
    expect(got.fit.x).not.toBe(fit.x);
    got.fit.x[0] = 12345;
    got.val!.y[1] = -7;
    // the worker's write is the main thread's row: one copy of the rows for every thread
    expect(fit.x[0]).toBe(12345);
    expect(val.y[1]).toBe(-7);
  });

  it('rows built by hand outside shared memory are shared once, then reused for every job', async () => {
    const fit: Dataset = {
      task: 'regression',
      features: ['a'],
      target: 'y',
      x: Float64Array.from([1, 2, 3]),
      y: Float64Array.from([4, 5, 6]),
      labels: [],
      n: 3,
      f: 1,
    };
    const first = jobMessage(job(fit, null));
    expect(first.fit).not.toBe(fit);
    expect(isShared(first.fit.x)).toBe(true);
    expect(Array.from(first.fit.y)).toEqual([4, 5, 6]);
    expect(jobMessage(job(fit, null)).fit).toBe(first.fit);
    const got = await delivered(first);
    got.fit.y[0] = 9;
    expect(first.fit.y[0]).toBe(9);
  });

  it('the standardised fit rows are made once, shared, and train exactly as the rows a run makes itself', async () => {
    const data = csvDataset();
    const [fit, val] = splitRows(data, 0.25, 1, 'validation split');
    const a = jobMessage(job(fit, val));
    const b = jobMessage({ ...job(fit, val), index: 1 });
    expect(a.trainRows).toBeDefined();
    expect(b.trainRows).toBe(a.trainRows);
    expect(isShared(a.trainRows!.x)).toBe(true);
    expect(isShared(a.trainRows!.y)).toBe(true);
    expect(a.trainRows!.x.length).toBe(fit.n * fit.f);
    const own = runJob(job(fit, val));
    const given = runJob(a);
    expect(given.scores).toEqual(own.scores);
    expect(Buffer.from(given.params[0]!.buffer).equals(Buffer.from(own.params[0]!.buffer))).toBe(true);
    const got = await delivered(a);
    got.trainRows!.x[0] = 42;
    expect(a.trainRows!.x[0]).toBe(42);
  });
});
