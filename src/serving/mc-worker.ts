/**
 * Worker-thread entry for Monte Carlo runs off the main thread (pool.ts). onnxruntime's session.run
 * blocks the thread it runs on, so heavy MC work and coalesced batches run here, each worker owning its
 * own sessions, while the main event loop keeps answering HTTP.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { packStats } from '../model/stats.js';
import { loadModel } from '../model/formats.js';
import type { McOptions, McResult, Model, ModelSource, RuntimeOptions } from '../model/model.js';
import { type McBatchTask, unpackBatch } from './wire.js';

export interface McTask {
  model: string;
  x: Float32Array;
  rows: number;
  opts: McOptions;
}

export interface WorkerRequest {
  id: number;
  /** A single request, a packed batch, or a ping (answered once the models are loaded). */
  task: McTask | McBatchTask | { ping: true };
}

export type WorkerReply = { id: number; result: McResult | Float64Array | null } | { id: number; error: string };

const { sources, runtime } = workerData as { sources: ModelSource[]; runtime: RuntimeOptions };
// loading starts with the worker; no top-level await (tsx cannot load such a worker under vitest)
const loaded: Promise<Map<string, Model>> = Promise.all(sources.map((s) => loadModel(s, runtime))).then(
  (ms) => new Map(ms.map((m) => [m.name, m])),
);
loaded.catch(() => undefined); // reported by the first task

async function run(task: WorkerRequest['task']): Promise<McResult | Float64Array | null> {
  const models = await loaded;
  if ('ping' in task) return null;
  const m = models.get(task.model);
  if (!m) throw new Error(`worker has no model "${task.model}"`);
  if ('meta' in task) return packStats(await m.sampleBatch(unpackBatch(task, m.features.length)));
  return m.sample(task.x, task.rows, task.opts);
}

parentPort!.on('message', ({ id, task }: WorkerRequest) => {
  run(task).then(
    (result) => parentPort!.postMessage({ id, result } satisfies WorkerReply, result instanceof Float64Array ? [result.buffer as ArrayBuffer] : []),
    (err: unknown) => parentPort!.postMessage({ id, error: err instanceof Error ? err.message : String(err) } satisfies WorkerReply),
  );
});
