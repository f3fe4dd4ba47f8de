/**
 * Starting a worker thread on a module that may be TypeScript: the server's MC workers and the tuner's
 * workers start the same way.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * A worker running the module `name` beside `callerUrl` (the caller's `import.meta.url`): `name.js` when
 * the caller runs built (dist/), `name.ts` under tsx or vitest. TypeScript starts from a CommonJS shim
 * (worker-shim.cjs) with `--import tsx`, because tsx's require hook is active in such a worker and its
 * ESM hooks are not. `workerData` reaches the module as given (plus `entry`, the module's path, which
 * the shim requires).
 */
export function startWorker(callerUrl: string, name: string, workerData: Record<string, unknown> = {}): Worker {
  const isTs = callerUrl.endsWith('.ts');
  const entry = new URL(`./${name}.${isTs ? 'ts' : 'js'}`, callerUrl);
  if (!isTs) return new Worker(entry, { workerData });
  return new Worker(new URL('./worker-shim.cjs', import.meta.url), {
    workerData: { ...workerData, entry: fileURLToPath(entry) },
    execArgv: [...process.execArgv.filter((a) => !a.startsWith('--input-type')), '--import', 'tsx'],
  });
}
