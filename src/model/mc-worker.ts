/**
 * Worker-thread entry for large Monte Carlo runs (piscina). onnxruntime's session.run blocks the
 * thread it runs on, so heavy MC work runs here, each worker owning its own sessions, while the main
 * event loop keeps answering health checks and small requests.
 */
import { workerData } from 'node:worker_threads';
import { move } from 'piscina';
import { packStats } from './mc.js';
import { LoadedModel, type McOptions, type McResult, type RuntimeOptions } from './model.js';
import { type McBatchTask, unpackBatch } from './wire.js';
import type { ModelSource } from './registry.js';

export interface McTask {
  model: string;
  x: Float32Array;
  rows: number;
  opts: McOptions;
}

const { sources, runtime } = workerData as { sources: ModelSource[]; runtime: RuntimeOptions };
// loading starts with the worker; no top-level await (tsx cannot load such a worker under vitest)
const loaded: Promise<Map<string, LoadedModel>> = Promise.all(sources.map((s) => LoadedModel.load(s.name, s.onnx, s.card, runtime))).then(
  (ms) => new Map(ms.map((m) => [m.name, m])),
);
loaded.catch(() => undefined); // reported by the first task

/** Runs one MC task or batch; a task with no model is a ping (answers once the models are loaded). */
export default async function run(task: McTask | McBatchTask | { ping: true }): Promise<McResult | Float64Array | null> {
  const models = await loaded;
  if ('ping' in task) return null;
  const m = models.get(task.model);
  if (!m) throw new Error(`worker has no model "${task.model}"`);
  if ('meta' in task) return move(packStats(await m.mcCoalesced(unpackBatch(task, m.features.length)))) as Float64Array;
  return m.mc(task.x, task.rows, task.opts);
}
