/**
 * The ONNX model: an eval session and up to two Monte Carlo sessions (plain, and with the shared prefix)
 * of the graphs rewritten by rewrite.ts, behind the Model interface. load.ts builds it (reads the file and
 * card, probes, creates the sessions, self-checks); this file runs it.
 */
import type { Card } from '../card.js';
import { CancelledError, InputError, NoDropoutError } from '../errors.js';
import { ClassificationAccumulator, RegressionAccumulator } from '../../uncertainty/accumulators.js';
import { intervalLevelMessage, isIntervalLevel } from '../../uncertainty/intervals.js';
import type { LogVarianceBounds } from '../../uncertainty/moments.js';
import {
  DEFAULT_RUNTIME_OPTIONS,
  type FeatureStats,
  type McJob,
  type McOptions,
  type McResult,
  type Model,
  type ModelDescription,
  type RuntimeOptions,
  type Task,
  type TensorSpec,
} from '../model.js';
import type { McStats } from '../../uncertainty/record.js';
import { addChecked, autoPlan } from '../../uncertainty/stopping.js';
import { type IntervalSpec, type UncertaintySettings, resolveInterval } from '../uncertainty.js';
import { randomSeed } from '../../util/rng.js';
import { type RowAccumulator, sampleRows } from './auto-rows.js';
import type { GraphInfo } from './inspect.js';
import { loadOnnxModel } from './load.js';
import { MaskStream } from './masks.js';
import type { LiveSessions } from './sessions.js';
import { type GraphIo, MaskBuffers, type MaskSpec, type McGraphSession, runEval, runMcChunk } from './run.js';

/** Everything an OnnxModel is made of, computed by load.ts before the model is constructed. */
export interface OnnxModelInit {
  name: string;
  version: string;
  file: string;
  cardPath: string | null;
  card: Card;
  info: GraphInfo;
  task: Task;
  features: string[];
  labels: string[];
  outputName: string;
  /** A heteroscedastic model's log-variance output (null: homoscedastic, or a classifier). */
  logVarianceName: string | null;
  /** Its clamp in target units² (null when there is none). */
  logVarianceBounds: LogVarianceBounds | null;
  /** Noise model, epistemic scale, temperature, interval default and conformal scores (from the card). */
  uncertainty: UncertaintySettings;
  outputSize: number;
  /** true when the output holds one value per row with no trailing dimension ([batch]). */
  outputIsVector: boolean;
  outputKind: Model['outputKind'];
  /** Per output (one value for all outputs when the card gives one). */
  aleatoricStd: number[];
  masks: MaskSpec[];
  /**
   * The eval session, the MC graph repeating the input rows (mcPlain, null: no live dropout) and the
   * one repeating after the shared prefix (mcShared, null: nothing to share, or switched off), renewable.
   */
  sessions: LiveSessions;
  runtime: RuntimeOptions;
  loadMs: number;
  /** Nodes removed by folding affine steps into Gemm weights at load. */
  foldedNodes: number;
  /** What relaxBatch changed to serve a fixed-batch export (its log line); null when nothing. */
  batchRelaxed: string | null;
  /** Why the shared-prefix MC graph failed the self-check and is not used; null when it passed or was not built. */
  sharedPrefixSkipped: string | null;
}

function checkInterval(interval: number): void {
  if (!isIntervalLevel(interval)) throw new InputError(intervalLevelMessage('interval', interval));
}

export class OnnxModel implements Model {
  readonly name: string;
  readonly version: string;
  readonly task: Task;
  readonly features: readonly string[];
  readonly labels: readonly string[];
  readonly input: TensorSpec;
  readonly output: TensorSpec;
  readonly outputSize: number;
  readonly outputKind: Model['outputKind'];
  // the Open Inference Protocol's name for ONNX models (inference_rest.md, Platforms); Triton says onnxruntime_onnx
  readonly platform = 'onnx_onnxv1';
  readonly maxRunRows: number;
  readonly featureStats: FeatureStats | null;
  readonly file: string;
  readonly cardPath: string | null;
  readonly card: Card;
  readonly info: GraphInfo;
  readonly aleatoricStd: readonly number[];
  readonly uncertainty: UncertaintySettings;
  private readonly logVarianceBounds: LogVarianceBounds | null;
  readonly loadMs: number;
  readonly foldedNodes: number;
  readonly batchRelaxed: string | null;
  readonly sharedPrefixSkipped: string | null;
  private readonly io: GraphIo;
  private readonly live: LiveSessions;
  private readonly maskBuffers: MaskBuffers;
  private readonly runtime: RuntimeOptions;

  constructor(init: OnnxModelInit) {
    this.name = init.name;
    this.version = init.version;
    this.task = init.task;
    this.features = init.features;
    this.labels = init.labels;
    this.outputSize = init.outputSize;
    this.outputKind = init.outputKind;
    this.input = { name: init.info.input.name, datatype: 'FP32', shape: [-1, init.features.length] };
    this.output = {
      name: init.outputName,
      datatype: 'FP32',
      shape: init.outputIsVector ? [-1] : [-1, init.outputSize],
    };
    this.maxRunRows = init.runtime.maxRunRows;
    this.runtime = init.runtime;
    this.featureStats = init.card.feature_stats ?? null;
    this.file = init.file;
    this.cardPath = init.cardPath;
    this.card = init.card;
    this.info = init.info;
    this.aleatoricStd = init.aleatoricStd;
    this.uncertainty = init.uncertainty;
    this.logVarianceBounds = init.logVarianceBounds;
    this.loadMs = init.loadMs;
    this.foldedNodes = init.foldedNodes;
    this.batchRelaxed = init.batchRelaxed;
    this.sharedPrefixSkipped = init.sharedPrefixSkipped;
    this.io = {
      inputName: init.info.input.name,
      outputName: init.outputName,
      logVarianceName: init.logVarianceName,
      features: init.features.length,
      masks: init.masks,
    };
    this.live = init.sessions;
    this.maskBuffers = new MaskBuffers(init.masks);
  }

  /**
   * Load `file` (and `cardPath` when it exists). Throws ModelLoadError naming the file and the problem;
   * a model that loads has passed a self-check (MC graph with all-ones masks = eval graph).
   */
  static load(
    name: string,
    file: string,
    cardPath: string | null,
    runtime: RuntimeOptions = DEFAULT_RUNTIME_OPTIONS,
    version = '1',
  ): Promise<OnnxModel> {
    return loadOnnxModel({ name, file, card: cardPath, version }, runtime).then((init) => new OnnxModel(init));
  }

  get mcAvailable(): boolean {
    return this.live.sessions.mcPlain !== null;
  }

  /** Whether MC runs the layers before the first dropout once per row (see rewrite.ts sharedPrefixPoint). */
  get sharedPrefix(): boolean {
    return this.live.sessions.mcShared !== null;
  }

  get dropoutRates(): number[] {
    return this.info.dropouts.map((d) => d.ratio);
  }

  predict(x: Float32Array, rows: number): Promise<Float32Array> {
    return this.live.use((s) => runEval(this.io, s.evalSession, x, rows));
  }

  /**
   * Monte Carlo dropout on validated rows: T samples with dropout on, in as few runs as possible (the
   * rows, or the shared prefix's outputs, are tiled s times into one batch of s·N rows, s chosen so a
   * run stays ≤ maxRunRows rows).
   * The masks come from a generator seeded with `seed` (a fresh random seed when absent): the same seed
   * gives the same answer, across calls and restarts, and the seed used is returned. Drawing masks in
   * JS and feeding them to Mul nodes measured faster than onnxruntime's own Dropout kernel (bench).
   * `opts.signal` is checked before every chunk (a chunk is at most maxRunRows tiled rows).
   * With `opts.tolerance` (`samples: "auto"`), each row stops on its own (auto-rows.ts sampleRows): at
   * the first check (AUTO_MIN_SAMPLES, then every eighth more: stopping.ts nextAutoCheck) where its MC
   * errors are within the tolerance, `opts.samples` at most, with its own mask stream.
   */
  sample(x: Float32Array, rows: number, opts: McOptions): Promise<McResult> {
    if (!this.mcAvailable) return Promise.reject(new NoDropoutError(this.name));
    return this.live.use((s) => this.sampleOn(s.mcShared ?? s.mcPlain!, x, rows, opts));
  }

  /** sample() on the MC graph `graph`. */
  private async sampleOn(graph: McGraphSession, x: Float32Array, rows: number, opts: McOptions): Promise<McResult> {
    const interval = this.interval(opts);
    const T = opts.samples;
    const seed = opts.seed ?? randomSeed();
    if (opts.tolerance !== undefined) {
      const ctx = {
        io: this.io,
        graph,
        maskBuffers: this.maskBuffers,
        maxRunRows: this.maxRunRows,
        accumulator: (n: number, samples: number) => this.rowAccumulator(n, samples, opts, interval),
      };
      return { stats: await sampleRows(ctx, x, rows, opts, seed), seed };
    }
    const masks = new MaskStream(seed);
    const acc = this.accumulator(rows, T, opts);
    const perRun = Math.max(1, Math.min(T, Math.floor(this.maxRunRows / rows)));
    // mask buffers serve every chunk of this request, then go back for the next one
    const maskBufs = this.maskBuffers.take(perRun * rows);
    const fill = (buf: Float32Array, ratio: number): Float32Array => {
      masks.fill(buf, 0, buf.length, ratio);
      return buf;
    };
    // a fixed T has one check, at T
    const plan = autoPlan(false, T);
    const add = (out: Float32Array, s: number, logVar?: Float32Array) => acc.add(out, s, rows, 0, logVar);
    const worst = () => this.worstError(acc, rows);
    try {
      for (let done = 0; done < T && !plan.stopped; ) {
        // a request whose client left or whose deadline passed stops here, between chunks
        if (opts.signal?.aborted) throw new CancelledError(done, T);
        const s = Math.min(perRun, plan.end - done);
        const { out, logVar } = await runMcChunk(this.io, graph, x, maskBufs, s, rows, fill);
        done = addChecked(plan, { out, logVar, samples: s }, { done, maxSamples: T }, add, worst);
      }
    } finally {
      this.maskBuffers.give(maskBufs);
    }
    return { stats: this.finishStats(acc, rows, interval), seed };
  }

  fitsOneRun(rows: number, samples: number): boolean {
    return this.mcAvailable && rows * samples <= this.maxRunRows;
  }

  /**
   * Monte Carlo for several requests with one sample count T in a single run: their rows are
   * concatenated, the graph repeats them T times, and each request draws its own masks from its own
   * seeded generator, in the order a run of that request alone draws them (MaskStream.fillBatch; the
   * stream ignores call boundaries). So a request's answer does not depend on its neighbours; it equals
   * sample() with the same seed.
   */
  async sampleBatch(jobs: readonly McJob[]): Promise<McResult[]> {
    if (!this.mcAvailable) throw new NoDropoutError(this.name);
    const T = jobs[0]!.opts.samples;
    let total = 0;
    const intervals = jobs.map((j) => this.interval(j.opts));
    for (const j of jobs) {
      if (j.opts.samples !== T) throw new Error('coalesced MC requests must share the sample count');
      total += j.rows;
    }
    if (total * T > this.maxRunRows) throw new Error(`coalesced MC of ${total} rows × ${T} samples exceeds one run`);
    const f = this.features.length;
    let x = jobs[0]!.x;
    if (jobs.length > 1 && adjacent(jobs, f)) x = new Float32Array(x.buffer, x.byteOffset, total * f);
    else if (jobs.length > 1) {
      x = new Float32Array(total * f);
      let at = 0;
      for (const j of jobs) {
        x.set(j.x.subarray(0, j.rows * f), at * f);
        at += j.rows;
      }
    }
    const seeds = jobs.map((j) => j.opts.seed ?? randomSeed());
    const streams = seeds.map((seed) => new MaskStream(seed));
    const rows = jobs.map((j) => j.rows);
    const maskBufs = this.maskBuffers.take(T * total);
    // with one dropout input the run reads its masks where they were made (no copy; issue 20)
    const lend = this.io.masks.length === 1;
    let lent: Float32Array | null = null;
    try {
      const fill = (buf: Float32Array, ratio: number, rowSize: number) => {
        const masks = MaskStream.fillBatch(streams, rows, T, rowSize, ratio, buf, lend);
        if (masks !== buf) lent = masks;
        return masks;
      };
      const { out, logVar } = await this.live.use((s) =>
        runMcChunk(this.io, s.mcShared ?? s.mcPlain!, x, maskBufs, T, total, fill),
      );
      let offset = 0;
      return jobs.map((j, k) => {
        const acc = this.accumulator(j.rows, T, j.opts);
        acc.add(out, T, total, offset, logVar ?? undefined);
        offset += j.rows;
        return { stats: this.finishStats(acc, j.rows, intervals[k]!), seed: seeds[k]! };
      });
    } finally {
      if (lent) MaskStream.release(lent);
      this.maskBuffers.give(maskBufs);
    }
  }

  /**
   * A request's interval (regression; null for a classifier): its level checked, its method (the card's
   * default when absent) resolved to a multiplier. Throws InputError or IntervalUnavailableError.
   */
  interval(opts: Pick<McOptions, 'interval' | 'intervalMethod'>): IntervalSpec | null {
    checkInterval(opts.interval);
    return this.task === 'regression'
      ? resolveInterval(this.name, this.uncertainty, opts.interval, opts.intervalMethod)
      : null;
  }

  private accumulator(
    rows: number,
    samples: number,
    opts: McOptions,
  ): RegressionAccumulator | ClassificationAccumulator {
    const K = this.outputSize;
    const trackError = opts.tolerance !== undefined;
    return this.task === 'regression'
      ? new RegressionAccumulator(
          rows,
          K,
          samples,
          !!opts.returnSamples,
          this.logVarianceBounds,
          trackError,
          opts.statistics,
        )
      : new ClassificationAccumulator(
          rows,
          K,
          samples,
          !!opts.returnSamples,
          this.outputKind === 'logits',
          this.uncertainty.temperature,
          trackError,
          opts.statistics,
        );
  }

  /** An "auto" request's accumulator row by row (auto-rows.ts), its errors and record by this model's settings. */
  private rowAccumulator(
    rows: number,
    samples: number,
    opts: McOptions,
    interval: IntervalSpec | null,
  ): RowAccumulator {
    const acc = this.accumulator(rows, samples, opts);
    const finish = () => this.finishStats(acc, rows, interval);
    if (!(acc instanceof RegressionAccumulator))
      return {
        addRow: (out, s, b, k, row) => acc.addRow(out, s, b, k, row),
        rowError: (row) => acc.rowError(row),
        finish,
      };
    const alea = this.aleatoricStds(rows);
    const scale = this.uncertainty.epistemicScale;
    return {
      addRow: (out, s, b, k, row, logVar) => acc.addRow(out, s, b, k, row, logVar),
      rowError: (row) => acc.rowError(row, alea, scale),
      finish,
    };
  }

  /** The card's σ per row and output (rows × outputs): the same for every row. */
  private aleatoricStds(rows: number): Float64Array {
    const K = this.outputSize;
    const alea = new Float64Array(rows * K);
    for (let i = 0; i < alea.length; i++) alea[i] = this.aleatoricStd[i % K] ?? this.aleatoricStd[0] ?? 0;
    return alea;
  }

  /** The accumulator's worst MC error of a served value so far (stopping.ts). */
  private worstError(acc: RegressionAccumulator | ClassificationAccumulator, rows: number): number {
    return acc instanceof RegressionAccumulator
      ? acc.worstError(this.aleatoricStds(rows), this.uncertainty.epistemicScale)
      : acc.worstError();
  }

  private finishStats(
    acc: RegressionAccumulator | ClassificationAccumulator,
    rows: number,
    interval: IntervalSpec | null,
  ): McStats {
    if (!(acc instanceof RegressionAccumulator)) return acc.finish();
    // the card's σ is per output: the same for every row (a heteroscedastic model adds its predicted variance per row)
    return acc.finish(this.aleatoricStds(rows), interval!, this.uncertainty.epistemicScale);
  }

  describe(): ModelDescription {
    return {
      ...this.card,
      name: this.name,
      task: this.task,
      features: [...this.features],
      ...(this.task === 'classification' ? { labels: [...this.labels] } : {}),
      dropout: this.dropoutRates,
      aleatoric_std:
        this.task === 'regression'
          ? this.aleatoricStd.length === 1
            ? this.aleatoricStd[0]
            : [...this.aleatoricStd]
          : undefined,
      inputs: [{ ...this.input, shape: [...this.input.shape] }],
      outputs: [{ ...this.output, shape: [...this.output.shape] }],
      mc_available: this.mcAvailable,
      shared_prefix: this.sharedPrefix,
      opset: this.info.opset,
      producer: this.info.producer,
    };
  }

  /**
   * This model's options: the self-check passed with them, so a copy skips it, and serves the shared
   * prefix only if it passed here.
   */
  copyOptions(): Partial<RuntimeOptions> {
    return { ...this.runtime, selfCheck: false, sharedPrefix: this.sharedPrefix };
  }

  loadInfo(): Record<string, unknown> {
    return {
      path: this.file,
      input: this.info.input.name,
      features: this.features.length,
      dropout_nodes: this.info.dropouts.length,
      mc_available: this.mcAvailable,
      shared_prefix: this.sharedPrefix,
      ...(this.sharedPrefixSkipped ? { shared_prefix_skipped: this.sharedPrefixSkipped } : {}),
      ...(this.batchRelaxed ? { batch_relaxed: this.batchRelaxed } : {}),
      folded_nodes: this.foldedNodes,
      ms: Math.round(this.loadMs),
    };
  }

  /**
   * Give back what runs left (called at a quiet moment, server/plugins/idle-gc.ts): the cached mask
   * buffers, and onnxruntime's arenas by new sessions (LiveSessions.renew; not while a run is running).
   */
  async releaseIdle(): Promise<void> {
    this.maskBuffers.clear();
    await this.live.renew();
  }

  close(): Promise<void> {
    return this.live.close();
  }
}

/** The jobs' rows follow one another in one buffer (as a worker's unpackBatch hands them over). */
function adjacent(jobs: readonly McJob[], features: number): boolean {
  const buffer = jobs[0]!.x.buffer;
  let end = jobs[0]!.x.byteOffset;
  for (const j of jobs) {
    if (j.x.buffer !== buffer || j.x.byteOffset !== end) return false;
    end += j.rows * features * Float32Array.BYTES_PER_ELEMENT;
  }
  return true;
}
