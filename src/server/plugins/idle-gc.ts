/**
 * Memory back after a burst. V8 collects garbage when the program allocates; a server that goes quiet
 * after a burst (an overload, hundreds of abandoned uploads) allocates nothing, so the burst's garbage
 * stays: heap objects, and the Buffers that held request bodies (external memory: 1 MB per stalled
 * upload). With MAX_BODY_BYTES_IN_FLIGHT bounding the bodies, what this still buys is measured on the
 * heap after an MC overload: RSS 5 s after 15 s at 160 req/s, 214 → 229 MB with it, 218 → 244 MB
 * without (one run each, docs/operating.md). It forces collections, so IDLE_GC=false turns it off.
 *
 * Every second this checks whether the server was quiet (no request arrived, no connection closed);
 * at the first quiet second after activity, if the heap plus external memory exceed the lowest level
 * seen after a collection by more than IDLE_GC_MIN_BYTES, two full collections run (a few ms each
 * on this server's small heap; at most once per IDLE_GC_MIN_INTERVAL_MS). `gc` is not exposed without
 * --expose-gc: it is fetched once through v8.setFlagsFromString (as the expose-gc package does); if
 * that fails, nothing happens. Whether the freed memory leaves the process is the allocator's choice:
 * glibc keeps freed body buffers for reuse (plugins/body-budget.ts).
 *
 * A settling collection: V8 keeps the young generation a load grew (its semi-spaces, 5 MB of RSS after
 * an MC load) until its estimate of the allocation rate, taken over about 5 s, is low, and a quiet
 * server allocates nothing that would make it look again. So at the first quiet second SETTLE_AFTER_MS
 * after the last activity, if the heap's committed size is more than SETTLE_MIN_BYTES over the level the
 * last such collection left, it collects once more (RSS +8.2 → +4.7 MB 10–45 s after an MC load, one
 * run, docs/benchmarks.md; one main-thread collection of 20–40 ms per quiet period after a load).
 *
 * At the same quiet seconds (at most once per IDLE_GC_MIN_INTERVAL_MS) the served models give back what
 * their runs left (Model.releaseIdle: an ONNX model's cached mask buffers and onnxruntime's arenas, by
 * new sessions), which no collection reaches: with MC_WORKERS=0 RSS 20–24 MB above idle
 * after a short MC load without it, 3–6 MB with it (docs/benchmarks.md).
 */
import { getHeapStatistics } from 'node:v8';
import { exposeGc } from '../../util/expose-gc.js';
import type { ModelRepository } from '../../serving/repository.js';
import { appPlugin } from './app-plugin.js';

const CHECK_MS = 1000;
export const IDLE_GC_MIN_BYTES = 16 * 1024 * 1024;
export const IDLE_GC_MIN_INTERVAL_MS = 5000;
export const SETTLE_AFTER_MS = 6000;
export const SETTLE_MIN_BYTES = 2 * 1024 * 1024;

const inUse = (): number => {
  const h = getHeapStatistics();
  return h.used_heap_size + h.external_memory;
};

const committed = (): number => getHeapStatistics().total_heap_size;

/**
 * The decision, apart from timers and V8 (tested with a fake gc): `activity()` on each request and
 * closed connection, `tick(nowMs)` every CHECK_MS.
 */
export class IdleGc {
  private activityCount = 0;
  private dirty = false;
  private floor: number;
  private lastGc = Number.NEGATIVE_INFINITY;
  /** A model was loaded since the last collection (loaded()). */
  private loadPending = false;
  /** Activity since the models last released (the `release` hook). */
  private releaseDue = false;
  private lastRelease = Number.NEGATIVE_INFINITY;
  /** The last second with activity, and whether a settling collection is due since. */
  private lastActive = 0;
  private settleDue = false;
  /** The heap's committed size after the last settling collection. */
  private settledLevel: number;
  collections = 0;
  releases = 0;

  constructor(
    private readonly gc: () => void,
    private readonly bytesInUse: () => number = inUse,
    private readonly release: () => void = () => undefined,
    private readonly heapCommitted: () => number = committed,
  ) {
    this.floor = bytesInUse();
    this.settledLevel = heapCommitted();
  }

  activity(): void {
    this.activityCount++;
  }

  /**
   * A model was loaded: its load left garbage (the self-check's run buffers: 8.6 MB of ArrayBuffers in
   * the main thread for the two shipped models) that the threshold does not see, so the next quiet
   * second collects whatever the size, and the level after it is the new floor (the model is not growth).
   */
  loaded(): void {
    this.activityCount++;
    this.loadPending = true;
  }

  tick(nowMs: number): void {
    if (this.activityCount > 0) {
      this.activityCount = 0;
      this.dirty = true;
      this.releaseDue = true;
      this.settleDue = true;
      this.lastActive = nowMs;
      return;
    }
    if (this.releaseDue && nowMs - this.lastRelease >= IDLE_GC_MIN_INTERVAL_MS) {
      this.releaseDue = false;
      this.lastRelease = nowMs;
      this.releases++;
      this.release();
    }
    if (nowMs - this.lastGc < IDLE_GC_MIN_INTERVAL_MS) return;
    if (this.dirty && (this.loadPending || this.bytesInUse() - this.floor >= IDLE_GC_MIN_BYTES)) {
      this.dirty = false;
      this.collect(nowMs);
      this.floor = this.loadPending ? this.bytesInUse() : Math.min(this.floor, this.bytesInUse());
      this.loadPending = false;
    } else if (this.settleDue && nowMs - this.lastActive >= SETTLE_AFTER_MS) {
      this.settleDue = false;
      if (this.heapCommitted() - this.settledLevel <= SETTLE_MIN_BYTES) return;
      this.collect(nowMs);
      this.settledLevel = this.heapCommitted();
    }
  }

  private collect(nowMs: number): void {
    // the second collection frees the Buffers' memory: V8 sweeps dead ArrayBuffers after the first
    this.gc();
    this.gc();
    this.collections++;
    this.lastGc = nowMs;
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The idle collector (absent with IDLE_GC=false or without gc): plugins/models.ts reports loads to it. */
    idleGc?: IdleGc;
  }
}

export const idleGc = appPlugin(async (app) => {
  const gc = exposeGc();
  if (!gc) return;
  // the repository is decorated after this plugin (plugins/models.ts): read when a quiet second comes
  const served = app as { repository?: ModelRepository };
  const idle = new IdleGc(gc, inUse, () => void served.repository?.releaseIdle());
  app.decorate('idleGc', idle); // each request counts as activity through request-gate.ts
  app.server.on('connection', (socket) => socket.once('close', () => idle.activity()));
  const timer = setInterval(() => idle.tick(performance.now()), CHECK_MS);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));
});
