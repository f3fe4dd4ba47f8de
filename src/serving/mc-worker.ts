/**
 * Worker-thread entry for Monte Carlo runs off the main thread (pool.ts). onnxruntime's session.run
 * blocks the thread it runs on, so heavy MC work and coalesced batches run here, each worker owning its
 * own copy of each model (loaded through src/model/formats.ts), while the main event loop keeps
 * answering HTTP. Models are keyed by the pool (one key per loaded model object on the main thread), so
 * a swapped-in model and the one it replaces can both be here while requests on the old one finish.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { loadModel } from '../model/formats.js';
import { CancelledError } from '../model/errors.js';
import type { McOptions, Model, ModelSource, RuntimeOptions, RunSignal } from '../model/model.js';
import { packStats } from '../uncertainty/record-wire.js';
import {
  CANCEL_FLAGS,
  type McBatchTask,
  type McTensorTask,
  type TensorPredictTask,
  cancelTag,
  packTensorOutput,
  packTensorResult,
  unpackBatch,
} from './wire.js';
import { measureHeld } from './worker-held.js';
import { exposeGc } from '../util/expose-gc.js';

export interface McTask {
  model: string;
  x: Float32Array;
  rows: number;
  opts: McOptions;
}

/** A model the pool serves: its key in tasks, where to load it from, and options over the pool's. */
export interface PoolModel {
  key: string;
  source: ModelSource;
  /** The main thread's model's copyOptions (its checks are not repeated here). */
  runtime?: Partial<RuntimeOptions>;
}

export interface WorkerRequest {
  id: number;
  /**
   * A single request, a packed batch, a ping (answered once the models are loaded), loading and
   * unloading a model, what the thread holds (`held`, worker-held.ts), `release` (give back what the
   * runs grew, after the Monte Carlo tasks before it: answers [1] when a model could not, and the
   * thread is to be replaced) or `drain` (answered once no Monte Carlo task runs or waits: the pool then
   * ends the worker). Every result comes back packed (packStats) or as a Float64Array.
   */
  task:
    | McTask
    | McBatchTask
    | McTensorTask
    | TensorPredictTask
    | { ping: true }
    | { load: PoolModel }
    | { unload: string }
    | { held: true }
    | { release: true }
    | { drain: true };
}

export type WorkerReply =
  | { id: number; result: Float64Array | null }
  | { id: number; error: string }
  | { id: number; cancelled: { samplesDone: number; samples: number } };

const {
  models: initial,
  runtime,
  cancel,
  nice,
} = workerData as { models: PoolModel[]; runtime: RuntimeOptions; cancel: Int32Array; nice: number };

// a lower CPU priority for this thread only (Linux: setpriority on the thread's id), so that the main
// thread (HTTP, health, predict) wins the CPU when both want it; elsewhere, or if refused, nothing
if (nice > 0) {
  try {
    setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), nice);
  } catch {
    /* not Linux, or not allowed */
  }
}
const models = new Map<string, Promise<Model>>();

function load({ key, source, runtime: own }: PoolModel): Promise<Model> {
  const known = models.get(key);
  if (known) return known; // a replacement worker loads the pool's models at start
  const loading = loadModel(source, { ...runtime, ...own });
  models.set(key, loading);
  loading.catch(() => models.get(key) === loading && models.delete(key)); // reported to the load's sender
  return loading;
}

// loading starts with the worker; no top-level await (tsx cannot load such a worker under vitest)
// (a failed load is reported to the ping or load task that waits for it)
for (const m of initial) void load(m);

/** Task `id` is to stop: the pool set the shared flag to its tag (a single read between chunks). */
class CancelSignal implements RunSignal {
  constructor(
    private readonly flag: number,
    private readonly tag: number,
  ) {}

  get aborted(): boolean {
    return Atomics.load(cancel, this.flag) === this.tag;
  }
}
// a class, not a literal with a getter: V8 makes a map per such literal (request-context.ts)
const signalOf = (id: number): RunSignal => new CancelSignal(id % CANCEL_FLAGS, cancelTag(id));

async function run(id: number, task: WorkerRequest['task']): Promise<Float64Array | null> {
  if ('ping' in task) {
    await Promise.all(models.values());
    return null;
  }
  if ('load' in task) {
    await load(task.load);
    return null;
  }
  if ('held' in task) return measureHeld();
  if ('release' in task) return Float64Array.of((await release()) ? 0 : 1);
  if ('drain' in task) {
    await mcTasks;
    return null;
  }
  if ('unload' in task) {
    const m = models.get(task.unload);
    models.delete(task.unload);
    await (await m?.catch(() => undefined))?.close();
    return null;
  }
  const m = await models.get(task.model);
  if (!m) throw new Error(`worker has no model "${task.model}"`);
  if ('predict' in task) {
    if (!m.predictTensors) throw new Error(`model "${task.model}" is not a tensor model`);
    return packTensorOutput(await m.predictTensors(task.predict, task.rows));
  }
  if ('tensors' in task) {
    if (!m.sampleTensors) throw new Error(`model "${task.model}" is not a tensor model`);
    return packTensorResult(await m.sampleTensors(task.tensors, task.rows, { ...task.opts, signal: signalOf(id) }));
  }
  if ('meta' in task) return packStats(await m.sampleBatch(unpackBatch(task, m.features.length)));
  return packStats([await m.sample(task.x, task.rows, { ...task.opts, signal: signalOf(id) })]);
}

/**
 * Monte Carlo tasks run one after another, never interleaved: the pool may hand over the next task
 * while one runs (so that the worker does not wait for the main thread between tasks), and it waits
 * here. Loading, unloading and pings do not wait for them.
 */
let mcTasks: Promise<unknown> = Promise.resolve();

/** This thread's full collection (fetched once, util/expose-gc.ts); null when refused. */
let gc: (() => void) | null | undefined;

/**
 * Give back what the runs grew, in this thread (issue 20): each model's idle release (an ONNX model's
 * sessions released and created again, which returns onnxruntime's arenas, and its cached mask buffers
 * dropped), then two full collections of this thread's heap: the dropped buffers are freed by the second,
 * and a collection after the load has ended shrinks the young generation the load grew. In place of
 * ending the thread for a fresh one, which freed the same but whose successor could be given another of
 * glibc's heaps (MALLOC_ARENA_MAX=2), leaving this one's freed blocks resident (RSS +4 MB a renewal).
 * false when a model has no such release (the tensor models): the pool then replaces the thread.
 */
async function release(): Promise<boolean> {
  let inPlace = true;
  for (const loading of models.values()) {
    const m = await loading.catch(() => undefined);
    if (m && !m.releaseIdle) inPlace = false;
    await m?.releaseIdle?.();
  }
  gc ??= exposeGc();
  gc?.();
  gc?.();
  return inPlace;
}

parentPort!.on('message', ({ id, task }: WorkerRequest) => {
  // a release waits for the Monte Carlo tasks handed over before it, and they for it
  const isMc = 'model' in task || 'release' in task;
  const started = isMc ? mcTasks.then(() => run(id, task)) : run(id, task);
  if (isMc) mcTasks = started.catch(() => undefined);
  started.then(
    (result) =>
      parentPort!.postMessage({ id, result } satisfies WorkerReply, result ? [result.buffer as ArrayBuffer] : []),
    (err: unknown) =>
      parentPort!.postMessage(
        err instanceof CancelledError
          ? ({ id, cancelled: { samplesDone: err.samplesDone, samples: err.samples } } satisfies WorkerReply)
          : ({ id, error: err instanceof Error ? err.message : String(err) } satisfies WorkerReply),
      ),
  );
});
