/**
 * Per-model inference statistics, protocol-neutral: what Triton's statistics extension reports
 * (docs/protocol/extension_statistics.md: counts and cumulative nanoseconds per model and version),
 * kept apart for the two modes this server runs, predict (dropout off) and Monte Carlo. The data plane
 * records every request and every model execution here; the V2 codec (src/server/protocol/v2.ts
 * encodeStatistics) shapes them for GET /v2/models[/{name}[/versions/{v}]]/stats.
 *
 * What is measured, per request that reached a model (an unknown model or version is not counted):
 * - success / fail: count and time from the data plane taking the request (model looked up) to its
 *   result or error (HTTP parsing and response encoding are outside);
 * - compute_input: reading the request's values into float32 rows (decode, with validation);
 * - queue: from then until the request's run starts (waiting in the predict batcher or the Monte Carlo
 *   coalescer for the batch to form or for a run slot; 0 when it runs at once);
 * - compute_infer: from the run's start to its result (a coalesced request counts its batch's run; a
 *   request on a worker thread counts the hand-off and any wait behind the worker's other tasks);
 * - compute_output: no time of its own: onnxruntime hands the output over inside its run, and the Monte
 *   Carlo statistics are accumulated between runs, so both are in compute_infer (count only, ns 0);
 * - inference_count: rows of successful requests (Triton counts each row of a batch);
 * - execution_count and batch_stats: calls into the model (Model.predict, sample, sampleBatch), by
 *   rows; a coalesced batch is one execution, and a Monte Carlo execution may be several onnxruntime
 *   runs (chunks of MC_MAX_RUN_ROWS);
 * - sample_count (Monte Carlo): rows × samples of successful requests.
 */

export type InferenceMode = 'predict' | 'mc';
export const INFERENCE_MODES: readonly InferenceMode[] = ['predict', 'mc'];

/** A count and a cumulative duration in nanoseconds (Triton's $duration_stat). */
export interface DurationStat {
  count: number;
  ns: number;
}

export interface ModeStatistics {
  inferenceCount: number;
  executionCount: number;
  sampleCount: number;
  success: DurationStat;
  fail: DurationStat;
  queue: DurationStat;
  computeInput: DurationStat;
  computeInfer: DurationStat;
  computeOutput: DurationStat;
  /** Executions by batch rows: count and cumulative compute time. */
  batches: Map<number, DurationStat>;
}

export interface ModelStatistics {
  name: string;
  version: string;
  /** Milliseconds since the epoch of the last request's end (0: none yet). */
  lastInference: number;
  modes: Record<InferenceMode, ModeStatistics>;
}

interface Entry {
  name: string;
  version: string;
  /** performance.now() of the last request's end (converted to the epoch when read). */
  lastEnded: number;
  modes: Record<InferenceMode, ModeStatistics>;
}

/** The moments of one request, from performance.now() (ms). */
export interface RequestTiming {
  /** The data plane took the request. */
  received: number;
  /** Its values were decoded (undefined when it failed before). */
  decoded?: number;
  /** Its run started (undefined when it failed before). */
  started?: number;
  /** Result or error. */
  ended: number;
  /** The run served this request alone: it is also an execution of `rows` rows (no separate timing). */
  solo?: boolean;
}

const ns = (ms: number): number => Math.max(0, Math.round(ms * 1e6));
const add = (d: DurationStat, ms: number): void => {
  d.count++;
  d.ns += ns(ms);
};
const zero = (): DurationStat => ({ count: 0, ns: 0 });

function emptyMode(): ModeStatistics {
  return {
    inferenceCount: 0,
    executionCount: 0,
    sampleCount: 0,
    success: zero(),
    fail: zero(),
    queue: zero(),
    computeInput: zero(),
    computeInfer: zero(),
    computeOutput: zero(),
    batches: new Map(),
  };
}

export class InferenceStatistics {
  private readonly models = new Map<string, Entry>();
  /** The entry used last (most traffic goes to one model at a time: no key to build then). */
  private last: Entry | null = null;

  private entry(name: string, version: string): Entry {
    const last = this.last;
    if (last !== null && last.name === name && last.version === version) return last;
    const key = `${name}\u0000${version}`;
    let e = this.models.get(key);
    if (!e) {
      e = { name, version, lastEnded: Number.NaN, modes: { predict: emptyMode(), mc: emptyMode() } };
      this.models.set(key, e);
    }
    this.last = e;
    return e;
  }

  /** A request that ended; `ok` false for an error. `samples`: Monte Carlo samples per row (1 for predict). */
  request(
    name: string,
    version: string,
    mode: InferenceMode,
    ok: boolean,
    rows: number,
    samples: number,
    t: RequestTiming,
  ): void {
    const e = this.entry(name, version);
    const m = e.modes[mode];
    e.lastEnded = t.ended;
    if (!ok) {
      add(m.fail, t.ended - t.received);
      return;
    }
    add(m.success, t.ended - t.received);
    const decoded = t.decoded ?? t.received;
    const started = t.started ?? decoded;
    add(m.computeInput, decoded - t.received);
    add(m.queue, started - decoded);
    add(m.computeInfer, t.ended - started);
    m.computeOutput.count++;
    m.inferenceCount += rows;
    if (mode === 'mc') m.sampleCount += rows * samples;
    if (t.solo) addExecution(m, rows, t.ended - started);
  }

  /** One call into the model on `rows` rows that took `ms` (for runs shared by several requests). */
  execution(name: string, version: string, mode: InferenceMode, rows: number, ms: number): void {
    addExecution(this.entry(name, version).modes[mode], rows, ms);
  }

  /** The statistics of a model version (all zero when it has served nothing yet). */
  get(name: string, version: string): ModelStatistics {
    const e = this.models.get(`${name}\u0000${version}`);
    if (!e) return { name, version, lastInference: 0, modes: { predict: emptyMode(), mc: emptyMode() } };
    return {
      name,
      version,
      lastInference: Number.isNaN(e.lastEnded) ? 0 : Math.round(performance.timeOrigin + e.lastEnded),
      modes: e.modes,
    };
  }
}

function addExecution(m: ModeStatistics, rows: number, ms: number): void {
  m.executionCount++;
  let b = m.batches.get(rows);
  if (!b) {
    b = zero();
    m.batches.set(rows, b);
  }
  add(b, ms);
}
