/**
 * A Dataset's arrays live in shared memory, so that the tuning workers read the rows the main thread
 * holds instead of a structured-clone copy each (issue 22: bounded memory; postMessage shares a
 * SharedArrayBuffer and copies an ArrayBuffer).
 */

/** A zeroed Float64Array of `length` values in a SharedArrayBuffer. */
export function sharedFloat64(length: number): Float64Array {
  return new Float64Array(new SharedArrayBuffer(length * Float64Array.BYTES_PER_ELEMENT));
}

/** Whether the array's memory is shared (a worker given it reads the same bytes). */
export const isShared = (a: ArrayBufferView): boolean => a.buffer instanceof SharedArrayBuffer;
