/**
 * A tuning worker: receives TuneJobs, trains each candidate (tune.ts runJob) and posts its checkpoint
 * scores and parameters back, with epoch progress in between.
 */
import { parentPort } from 'node:worker_threads';
import { runJob, type TuneJob } from './tune-job.js';

const port = parentPort;
if (!port) throw new Error('tune-worker.ts runs as a worker thread');
port.on('message', (job: TuneJob) => {
  try {
    const last = job.epochs[job.epochs.length - 1]!;
    // progress about every 2% of the run: enough for a smooth bar, few messages
    const every = Math.max(1, Math.floor(last / 50));
    const result = runJob(job, (epoch) => {
      if (epoch % every === 0) port.postMessage({ type: 'epoch', index: job.index, epoch });
    });
    port.postMessage(
      { type: 'done', result },
      result.params.flatMap((p) => (p ? [p.buffer as ArrayBuffer] : [])),
    );
  } catch (err) {
    port.postMessage({ type: 'error', message: (err as Error).stack ?? String(err) });
  }
});
