/**
 * What an MC worker thread holds, as its `held` task answers it (McPool.held): the figures' names in
 * their order on the wire, the worker side that measures them and the pool side that names them.
 */

/** The figures, in this order: the worker's V8 heap and its buffers, MB. */
export const WORKER_HELD = ['heapTotalMb', 'heapUsedMb', 'externalMb', 'arrayBuffersMb'] as const;

export type WorkerHeld = Record<(typeof WORKER_HELD)[number], number>;

/** This thread's figures (process.memoryUsage's heap and buffers are the calling thread's). */
export function measureHeld(): Float64Array {
  const { heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage();
  const mb = (bytes: number) => bytes / 2 ** 20;
  return Float64Array.of(mb(heapTotal), mb(heapUsed), mb(external), mb(arrayBuffers));
}

/** The figures by name. */
export const namedHeld = (figures: Float64Array): WorkerHeld =>
  Object.fromEntries(WORKER_HELD.map((name, i) => [name, figures[i]!])) as WorkerHeld;
