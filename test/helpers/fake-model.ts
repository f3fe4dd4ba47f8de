/** A Model without a runtime, for repository and data plane tests: predict answers `value` per row. */
import { CancelledError } from '../../src/model/errors.js';
import type { FeatureStats, McJob, McResult, Model, RunSignal } from '../../src/model/model.js';
import { makeStats } from '../../src/uncertainty/record.js';
import { REGRESSION_STATS } from '../../src/uncertainty/statistics.js';

export interface FakeModel extends Model {
  /** Set by close(). */
  closed: boolean;
  /** Requests running on it now. */
  running: number;
  /** Set to a promise to hold predict and sample until it resolves. */
  gate: Promise<void> | null;
  /** Chunks run by sample() (with the `chunks` option): each checks the signal first, as OnnxModel's do. */
  chunksRun: number;
  /** sample() and sampleBatch() calls that started. */
  runs: number;
}

export interface FakeOptions {
  mc?: boolean;
  features?: number;
  version?: string;
  /** sample() runs this many chunks of `chunkMs` each, checking opts.signal before each. */
  chunks?: number;
  chunkMs?: number;
  /** Statistics of rows with this index are NaN. */
  nanRow?: number;
  featureStats?: FeatureStats;
  /** sample() with this seed throws (so does a sampleBatch that holds it). */
  failSeed?: number;
}

export function fakeModel(name: string, value: number, opts: FakeOptions = {}): FakeModel {
  const F = opts.features ?? 2;
  const hold = async (m: FakeModel): Promise<void> => {
    if (m.closed) throw new Error(`model ${name} (${value}) used after close`);
    m.running++;
    try {
      await m.gate;
    } finally {
      m.running--;
    }
    if (m.closed) throw new Error(`model ${name} (${value}) closed under a running request`);
  };
  const sample = async (
    m: FakeModel,
    rows: number,
    samples: number,
    interval: number,
    seed: number,
    signal?: RunSignal,
  ): Promise<McResult> => {
    m.runs++;
    await hold(m);
    if (seed === opts.failSeed) throw new Error(`seed ${seed} fails`);
    for (let c = 0; c < (opts.chunks ?? 0); c++) {
      if (signal?.aborted) throw new CancelledError(c, opts.chunks);
      await new Promise((r) => setTimeout(r, opts.chunkMs ?? 1));
      m.chunksRun++;
    }
    const n = rows;
    const v = (x: number) => new Float64Array(n).fill(x);
    // every statistic of the table: these six as named, any other 0 (so that a new statistic changes no test)
    const fixed: Record<string, number> = {
      mean: value,
      std: 1,
      epistemicStd: 1,
      aleatoricStd: 0,
      lower: value - 1,
      upper: value + 1,
    };
    const arrays = Object.fromEntries(REGRESSION_STATS.map((d) => [d.key, v(fixed[d.key] ?? 0)]));
    if (opts.nanRow !== undefined && opts.nanRow < rows) arrays.mean![opts.nanRow] = Number.NaN;
    return {
      stats: makeStats('regression', { rows, width: 1, samples, level: interval }, arrays),
      seed,
    };
  };
  const m: FakeModel = {
    name,
    version: opts.version ?? '1',
    task: 'regression',
    features: Array.from({ length: F }, (_, j) => `f${j}`),
    labels: [],
    input: { name: 'x', datatype: 'FP32', shape: [-1, F] },
    output: { name: 'y', datatype: 'FP32', shape: [-1, 1] },
    outputSize: 1,
    outputKind: 'regression',
    mcAvailable: opts.mc ?? true,
    platform: 'fake',
    maxRunRows: 4096,
    featureStats: opts.featureStats ?? null,
    closed: false,
    running: 0,
    gate: null,
    chunksRun: 0,
    runs: 0,
    describe: () => ({
      name,
      task: 'regression',
      features: [...m.features],
      dropout: [],
      inputs: [m.input],
      outputs: [m.output],
      mc_available: m.mcAvailable,
    }),
    async predict(_x, rows) {
      await hold(m);
      return new Float32Array(rows).fill(value);
    },
    sample: (_x, rows, o) => sample(m, rows, o.samples, o.interval, o.seed ?? 0, o.signal),
    fitsOneRun: (rows, samples) => rows * samples <= 4096,
    sampleBatch: (jobs: readonly McJob[]) =>
      Promise.all(jobs.map((j) => sample(m, j.rows, j.opts.samples, j.opts.interval, j.opts.seed ?? 0))),
    loadInfo: () => ({ value }),
    async close() {
      m.closed = true;
    },
  };
  return m;
}
