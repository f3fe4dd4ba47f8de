/**
 * This thread's full garbage collection. `gc` is not exposed without --expose-gc: it is fetched through
 * v8.setFlagsFromString (as the expose-gc package does); null when that fails. Used by the server's idle
 * collector (src/server/plugins/idle-gc.ts) and by an MC worker giving back its runs' memory.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export function exposeGc(): (() => void) | null {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    setFlagsFromString('--no-expose-gc');
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}
