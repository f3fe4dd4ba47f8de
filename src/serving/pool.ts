/**
 * A pool of worker threads that run Monte Carlo dropout off the main thread. Each worker holds a copy
 * of every model added to the pool (add/remove, by key: the data plane adds a model before it is served
 * and removes it once its last request finished) and answers tasks posted on its port: a large single
 * request, or a coalesced batch packed in transferred typed arrays (wire.ts); results come back packed
 * by the statistics codec (src/uncertainty/record-wire.ts). A task goes to the worker with the
 * fewest tasks in flight. A worker that dies fails its in-flight tasks and is replaced (unless it died
 * before answering anything: a worker that cannot start would only die again).
 *
 * Why not piscina (which this pool replaced): measured with the same tasks, piscina cost the main thread
 * 37 µs per task and 91 µs of wall time per round trip, a bare port 16 µs and 43 µs. Coalesced MC
 * batches are small and frequent, and the main thread is what limits MC throughput under load (bench).
 */
import type { Worker } from 'node:worker_threads';
import { CancelledError } from '../model/errors.js';
import { unpackStats } from '../uncertainty/record-wire.js';
import type {
  InputTensor,
  McJob,
  McOptions,
  McResult,
  ModelSource,
  RuntimeOptions,
  TensorMcResult,
  TensorOutput,
} from '../model/model.js';
import type { McTask, PoolModel, WorkerReply, WorkerRequest } from './mc-worker.js';
import { type WorkerHeld, namedHeld } from './worker-held.js';
import {
  CANCEL_FLAGS,
  cancelTag,
  packBatch,
  packTensorPredictTask,
  packTensorTask,
  unpackTensorOutput,
  unpackTensorResult,
} from './wire.js';
import { startWorker } from '../util/worker.js';
import { IdleRenewal } from './idle-renewal.js';

/**
 * A worker idle this long after Monte Carlo work gives back what the work grew (renew): long enough
 * that a server under load never does it (it costs creating the sessions again, about 8 ms of CPU for
 * the two shipped models, and the next run grows onnxruntime's arena again), short enough that an idle
 * server soon returns what a burst grew (issue 20).
 */
export const RENEW_AFTER_MS = 10_000;

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
  /** Shared with the worker: flag id % CANCEL_FLAGS holds the tag of a task to stop (cancelTag), read between chunks. */
  cancel: Int32Array;
  /** It has answered a message: a worker that dies before that is not restarted (it would again). */
  started: boolean;
  /** When it gives back what its runs grew (renew). */
  idle: IdleRenewal;
  /** The thread has ended: a task posted to it fails at once (it would wait for ever). */
  exited: boolean;
}

/**
 * `source` with its bytes in shared memory: the workers' copies (a worker that dies is replaced by one that
 * loads them again) then hold one copy of a model's file between them, not one each.
 */
export function sharedBytes(source: ModelSource): ModelSource {
  const contents = source.contents;
  if (!contents || contents.model.buffer instanceof SharedArrayBuffer) return source;
  const model = new Uint8Array(new SharedArrayBuffer(contents.model.byteLength));
  model.set(contents.model);
  return { ...source, contents: { ...contents, model } };
}

export class McPool {
  private readonly slots: Slot[] = [];
  private nextId = 0;
  /** Fresh workers loading their models, each to replace one in slots (replace). */
  private readonly starting = new Set<Slot>();
  private renewed = 0;
  private closing = false;

  /** The models every worker holds (a replacement worker loads them at start), by key. */
  private readonly models = new Map<string, PoolModel>();

  /**
   * `sources`: models to load at start, keyed by name. `nice`: the workers' CPU priority (Linux nice,
   * 0..19; 0 leaves it), so that the main thread wins the CPU when both want it. `renewAfterMs`: a
   * worker idle that long after MC work gives back what its runs grew (renew; 0: never). It would keep
   * it: onnxruntime's arenas stay at the largest run's peak (the arena-shrinkage run option is not passed
   * on by onnxruntime-node 1.30), the mask buffers are kept for reuse, V8's young generation stays grown
   * and garbage waits for allocations that an idle thread does not make.
   */
  constructor(
    sources: ModelSource[],
    private readonly runtime: RuntimeOptions,
    threads: number,
    private readonly nice = 0,
    private readonly renewAfterMs = RENEW_AFTER_MS,
  ) {
    for (const s of sources) this.models.set(s.name, { key: s.name, source: sharedBytes(s) });
    for (let i = 0; i < threads; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const models: PoolModel[] = [...this.models.values()];
    const cancel = new Int32Array(new SharedArrayBuffer(4 * CANCEL_FLAGS));
    const worker = startWorker(import.meta.url, 'mc-worker', {
      models,
      runtime: this.runtime,
      cancel,
      nice: this.nice,
    });
    const slot: Slot = {
      worker,
      pending: new Map(),
      cancel,
      started: false,
      exited: false,
      idle: new IdleRenewal(this.renewAfterMs, () => void this.renew(slot)),
    };
    worker.unref(); // an idle pool never keeps the process alive
    worker.on('message', (reply: WorkerReply) => {
      slot.started = true;
      const p = slot.pending.get(reply.id);
      if (!p) return;
      slot.pending.delete(reply.id);
      if (slot.pending.size === 0) worker.unref();
      if ('cancelled' in reply) p.reject(new CancelledError(reply.cancelled.samplesDone, reply.cancelled.samples));
      else if ('error' in reply) p.reject(new Error(reply.error));
      else p.resolve(reply.result);
    });
    const fail = (err: Error): void => {
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
    };
    worker.on('error', (err) => fail(err instanceof Error ? err : new Error(String(err))));
    worker.on('exit', (code) => {
      slot.exited = true;
      fail(new Error(`MC worker exited (code ${code})`));
      const i = this.slots.indexOf(slot);
      if (!this.closing && slot.started && i >= 0) this.slots[i] = this.spawn();
    });
    return slot;
  }

  get threads(): number {
    return this.slots.length;
  }

  /** How many times a worker gave back what its runs grew after going idle (renewAfterMs). */
  get renewals(): number {
    return this.renewed;
  }

  /** The workers, with those starting to replace one (they get every load and unload too). */
  private everySlot(): Slot[] {
    return [...this.slots, ...this.starting];
  }

  /**
   * The worker gives back what its runs grew (mc-worker.ts `release`: its models' sessions created
   * again, its mask buffers dropped, its heap collected), after the tasks handed to it before. In the
   * worker's own thread: a fresh thread in its place freed the same, but glibc (MALLOC_ARENA_MAX=2) could
   * give the fresh thread the other heap, and the old one's freed blocks then stayed resident (RSS +4 to
   * +6 MB a renewal, bench/idle-memory.ts), and it cost a thread's start. A worker holding a model that
   * cannot give back in place (no Model.releaseIdle: the tensor models) is still replaced whole.
   */
  private async renew(slot: Slot): Promise<void> {
    if (this.closing || slot.exited) return;
    const done = this.post<Float64Array>(slot, { release: true });
    slot.idle.started(done, false);
    const whole = await done.then(
      (kept) => kept[0] === 1,
      () => false,
    );
    if (whole) await this.replace(slot);
    else if (!slot.exited) this.renewed++;
  }

  /** `old` replaced by a fresh worker once that has loaded the models; then `old` is ended. */
  private async replace(old: Slot): Promise<void> {
    if (this.closing || !this.slots.includes(old)) return;
    const fresh = this.spawn();
    this.starting.add(fresh);
    const ready = await this.post(fresh, { ping: true }).then(
      () => true,
      () => false,
    );
    this.starting.delete(fresh);
    if (this.closing) return; // close() ends both
    const i = this.slots.indexOf(old);
    if (!ready || i < 0) return this.retire(fresh);
    this.slots[i] = fresh;
    this.renewed++;
    await this.retire(old);
  }

  /**
   * End a worker no task can reach any more, once what it was given has finished (ending it inside
   * onnxruntime's native code aborts the process).
   */
  private async retire(slot: Slot): Promise<void> {
    slot.idle.stop();
    await this.post(slot, { drain: true }).catch(() => undefined);
    while (slot.pending.size > 0) await new Promise((r) => setTimeout(r, 5));
    await slot.worker.terminate();
  }

  /** Models each worker holds now (by key: a swapped-out model stays until its last request finished). */
  get modelCount(): number {
    return this.models.size;
  }

  private post<T>(
    slot: Slot,
    task: WorkerRequest['task'],
    transfer: ArrayBuffer[] = [],
    id = this.nextId++,
  ): Promise<T> {
    if (this.closing) return Promise.reject(new Error('the MC worker pool is closed'));
    if (slot.exited) return Promise.reject(new Error('the MC worker exited'));
    return new Promise<T>((resolve, reject) => {
      slot.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      if (slot.pending.size === 1) slot.worker.ref();
      slot.worker.postMessage({ id, task } satisfies WorkerRequest, transfer);
    });
  }

  /** The worker with the fewest tasks in flight. */
  private pick(): Slot {
    let best = this.slots[0]!;
    for (const s of this.slots) if (s.pending.size < best.pending.size) best = s;
    return best;
  }

  /** Resolves once every worker has loaded the models (rejects with a worker's load error). */
  async ready(): Promise<void> {
    await Promise.all(this.slots.map((s) => this.post(s, { ping: true })));
  }

  /**
   * Load a model on every worker under `key` (default: its name), with `runtime` over the pool's
   * options (the main thread's model's copyOptions: its checks are not repeated); resolves once all
   * have it, rejects (and removes it again) when a worker cannot load it.
   */
  async add(source: ModelSource, key = source.name, runtime?: Partial<RuntimeOptions>): Promise<void> {
    const model: PoolModel = { key, source: sharedBytes(source), ...(runtime ? { runtime } : {}) };
    this.models.set(key, model);
    try {
      await Promise.all(this.everySlot().map((s) => this.post(s, { load: model })));
    } catch (err) {
      await this.remove(key).catch(() => undefined);
      throw err;
    }
  }

  /** Unload a model from every worker (no task on it may be running). */
  async remove(key: string): Promise<void> {
    this.models.delete(key);
    await Promise.all(this.everySlot().map((s) => this.post(s, { unload: key })));
  }

  /** What each worker's thread holds: its V8 heap and buffers. */
  async held(): Promise<WorkerHeld[]> {
    const figures = await Promise.all(this.slots.map((s) => this.post<Float64Array>(s, { held: true })));
    return figures.map(namedHeld);
  }

  /** A single request on a worker (Model.sample). */
  async run(model: string, x: Float32Array, rows: number, opts: McOptions): Promise<McResult> {
    return this.start(model, x, rows, opts).result;
  }

  /**
   * A single request on a worker, stoppable: `cancel()` sets the worker's shared flag to this task's
   * tag, and the worker's Model.sample stops before its next chunk (the result then rejects with a
   * CancelledError saying how many samples were done). `opts.signal` stays here (it cannot cross).
   */
  start(
    model: string,
    x: Float32Array,
    rows: number,
    opts: McOptions,
  ): { result: Promise<McResult>; cancel: () => void } {
    const slot = this.pick();
    const id = this.nextId++;
    const { signal: _signal, ...plain } = opts;
    const posted = this.post<Float64Array>(slot, { model, x, rows, opts: plain } satisfies McTask, [], id);
    slot.idle.started(posted);
    const result = posted.then((data) => unpackStats(data)[0]!);
    return { result, cancel: () => Atomics.store(slot.cancel, id % CANCEL_FLAGS, cancelTag(id)) };
  }

  /**
   * A tensor model's request on a worker (Model.sampleTensors), stoppable as `start`'s: the input
   * tensors' buffers are transferred (wire.ts packTensorTask), so the caller must not use them after.
   */
  startTensors(
    model: string,
    tensors: readonly InputTensor[],
    rows: number,
    opts: McOptions,
  ): { result: Promise<TensorMcResult>; cancel: () => void } {
    const slot = this.pick();
    const id = this.nextId++;
    const { task, transfer } = packTensorTask(model, tensors, rows, opts);
    const posted = this.post<Float64Array>(slot, task, transfer, id);
    slot.idle.started(posted);
    const result = posted.then(unpackTensorResult);
    return { result, cancel: () => Atomics.store(slot.cancel, id % CANCEL_FLAGS, cancelTag(id)) };
  }

  /**
   * A tensor model's predict on a worker (Model.predictTensors): an image or text model's eval run is
   * heavy, and onnxruntime's run blocks its thread. The input buffers are transferred.
   */
  async predictTensors(model: string, tensors: readonly InputTensor[], rows: number): Promise<TensorOutput> {
    const { task, transfer } = packTensorPredictTask(model, tensors, rows);
    const slot = this.pick();
    const posted = this.post<Float64Array>(slot, task, transfer);
    slot.idle.started(posted);
    return unpackTensorOutput(await posted);
  }

  /** Coalesced requests of one sample count in one run on a worker (Model.sampleBatch). */
  async runCoalesced(model: string, jobs: McJob[], features: number): Promise<McResult[]> {
    const { task, transfer } = packBatch(model, jobs, features);
    const slot = this.pick();
    const posted = this.post<Float64Array>(slot, task, transfer);
    slot.idle.started(posted);
    return unpackStats(await posted);
  }

  /**
   * Stop accepting tasks, let the running ones finish (terminating a worker inside onnxruntime's native
   * run aborts the process) and the fresh workers load their models, then end the workers.
   */
  async close(): Promise<void> {
    const all = this.everySlot();
    for (const s of all) s.idle.stop();
    const drained = Promise.all(all.map((s) => this.post(s, { drain: true }).catch(() => undefined)));
    this.closing = true;
    while (all.some((s) => s.pending.size > 0)) await new Promise((r) => setTimeout(r, 5));
    await drained;
    await Promise.all(all.map((s) => s.worker.terminate()));
  }
}
