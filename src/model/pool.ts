/**
 * A pool of worker threads (piscina) that run Monte Carlo dropout off the main thread. Each worker
 * loads every served model once at start; tasks carry only the rows and options.
 */
import { Piscina } from 'piscina';
import type { McStats } from './mc.js';
import type { McJob, McOptions, McResult, RuntimeOptions } from './model.js';
import type { ModelSource } from './registry.js';
import type { McTask } from './mc-worker.js';
import { packBatch } from './wire.js';
import { unpackStats } from './mc.js';

export class McPool {
  private readonly pool: Piscina;

  constructor(sources: ModelSource[], runtime: RuntimeOptions, threads: number) {
    // under tsx/vitest the worker is TypeScript: load it through tsx; the built dist/ has the .js file
    const isTs = import.meta.url.endsWith('.ts');
    const filename = new URL(isTs ? './mc-worker.ts' : './mc-worker.js', import.meta.url).href;
    this.pool = new Piscina({
      filename,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      recordTiming: false,
      workerData: { sources, runtime },
      ...(isTs ? { execArgv: [...process.execArgv.filter((a) => !a.startsWith('--input-type')), '--import', 'tsx'] } : {}),
    });
  }

  get threads(): number {
    return this.pool.threads.length;
  }

  /** Resolves once workers have loaded the models (rejects with the load error of a worker). */
  async ready(): Promise<void> {
    await Promise.all(Array.from({ length: this.pool.options.maxThreads }, () => this.pool.run({ ping: true })));
  }

  run(model: string, x: Float32Array, rows: number, opts: McOptions): Promise<{ stats: McStats; seed: number }> {
    return this.pool.run({ model, x, rows, opts } satisfies McTask);
  }

  /** Coalesced requests of one sample count in one run on a worker (LoadedModel.mcCoalesced). */
  async runCoalesced(model: string, jobs: McJob[], features: number): Promise<McResult[]> {
    const { task, transfer } = packBatch(model, jobs, features);
    return unpackStats(await this.pool.run(task, { transferList: transfer }));
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
