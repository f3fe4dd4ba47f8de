/** Tuning jobs on worker threads (tune-worker.ts), or inline on this thread. */
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../util/worker.js';
import { type Dataset, sharedDataset } from './data.js';
import { runJob, type TuneJob, type TuneJobResult } from './tune-job.js';
import { type StandardisedRows, standardisedTrainRows } from './train.js';

/** Shared copies of datasets that were not in shared memory (built by hand), made once per dataset. */
const sharedCopies = new WeakMap<Dataset, Dataset>();
/** The standardised training rows of a dataset, made once for every job on it. */
const trainRowsOf = new WeakMap<Dataset, StandardisedRows>();

/** `job` with its fit rows standardised once for all the jobs on them (FitHooks.trainRows). */
function withTrainRows(job: TuneJob): TuneJob {
  let rows = trainRowsOf.get(job.fit);
  if (!rows) {
    rows = standardisedTrainRows(job.fit);
    trainRowsOf.set(job.fit, rows);
  }
  return { ...job, trainRows: rows };
}

function shared(ds: Dataset): Dataset {
  let copy = sharedCopies.get(ds);
  if (!copy) {
    copy = sharedDataset(ds);
    sharedCopies.set(ds, copy);
  }
  return copy;
}

/**
 * The message that posts `job` to a worker: its rows, and its fit rows standardised, in shared memory, so
 * that every worker reads the main thread's copy (postMessage clones an ArrayBuffer but shares a
 * SharedArrayBuffer).
 */
export function jobMessage(job: TuneJob): TuneJob {
  return { ...withTrainRows(job), fit: shared(job.fit), val: job.val && shared(job.val) };
}

/** Run the jobs on `threads` workers (or inline), in any order; results by job index. */
export async function runJobs(
  jobs: TuneJob[],
  threads: number,
  onEpoch: (index: number, epoch: number) => void,
  onDone: (r: TuneJobResult) => void,
): Promise<TuneJobResult[]> {
  const results: TuneJobResult[] = new Array(jobs.length);
  if (threads <= 0) {
    for (const job of jobs) {
      const r = runJob(withTrainRows(job), (e) => onEpoch(job.index, e));
      results[job.index] = r;
      onDone(r);
    }
    return results;
  }
  let next = 0;
  const workers: Worker[] = [];
  const retired = new Set<Worker>();
  try {
    await new Promise<void>((resolve, reject) => {
      let running = 0;
      const start = (): void => {
        const worker = startWorker(import.meta.url, 'tune-worker');
        workers.push(worker);
        running++;
        const feed = (): void => {
          if (next < jobs.length) {
            worker.postMessage(jobMessage(jobs[next++]!));
            return;
          }
          retired.add(worker);
          void worker.terminate();
          if (--running === 0) resolve();
        };
        worker.on(
          'message',
          (
            msg:
              | { type: 'epoch'; index: number; epoch: number }
              | { type: 'done'; result: TuneJobResult }
              | { type: 'error'; message: string },
          ) => {
            if (msg.type === 'epoch') return onEpoch(msg.index, msg.epoch);
            if (msg.type === 'error') return reject(new Error(`tuning worker: ${msg.message}`));
            results[msg.result.index] = msg.result;
            onDone(msg.result);
            feed();
          },
        );
        worker.on('error', reject);
        worker.on('exit', (code) => {
          if (!retired.has(worker)) reject(new Error(`a tuning worker exited with code ${code}`));
        });
        feed();
      };
      for (let i = 0; i < Math.min(threads, jobs.length); i++) start();
    });
  } finally {
    for (const w of workers) retired.add(w);
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return results;
}
