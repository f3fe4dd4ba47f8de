/**
 * Monte Carlo dropout for a tensor model (any inputs, any Dropout, any output): the sampler the tensor
 * OnnxModel delegates to. At load it probes the graph's shapes on the check's inputs
 * (tensor-mc-shapes.ts), plans the MC graph (tensor-mc-graph.ts: masks of each Dropout input's own
 * shape, the shared prefix run once, the frontier tiled) and creates its session. A request is cut into
 * runs that fit the byte budget (tensor-mc-run.ts), masks come from the request's seeded MaskStream
 * (masks.ts) in run order, and the outputs go, class axis last, into the uncertainty core's
 * accumulators (tensor-mc-stats.ts). An input shape not seen before (a free dimension) is probed and
 * planned once, then cached.
 */
import { CancelledError, InputError } from '../errors.js';
import { intervalLevelMessage, isIntervalLevel } from '../../uncertainty/intervals.js';
import { addChecked, autoPlan } from '../../uncertainty/stopping.js';
import type { Model as OnnxProto } from '../../onnx-proto/proto.js';
import type { InputTensor, McOptions, OutputLayout, RuntimeOptions, TensorMcResult, TensorSpec } from '../model.js';
import { type IntervalSpec, resolveInterval } from '../uncertainty.js';
import { randomSeed } from '../../util/rng.js';
import { type DropoutInfo, ModelFormatError } from './inspect.js';
import { MaskStream } from './masks.js';
import { type OrtSession, createSession } from './ort.js';
import { type Agreement, magnitude } from './self-check.js';
import { type McPlan, type PlanInput, mcGraphOf, planMc } from './tensor-mc-graph.js';
import {
  DEFAULT_MAX_RUN_BYTES,
  MaskBufs,
  type MaskFill,
  type RunContext,
  type RunSize,
  rowBlock,
  runMc,
  runSize,
} from './tensor-mc-run.js';
import { type DimLaw, ShapeProbe, dimsAt } from './tensor-mc-shapes.js';
import {
  type RecordShape,
  type StatsSettings,
  finishStats,
  recordShape,
  type TensorAccumulator,
  tensorAccumulator,
  toRecordOrder,
  worstError,
} from './tensor-mc-stats.js';

/** What the sampler is made from (see /work contract: t1 builds it from its load). */
export interface TensorSamplerInit extends StatsSettings {
  /** The decoded model as served (not the eval graph); not mutated. */
  model: OnnxProto;
  /** GraphInfo.dropouts and .controlInputs (inspect.ts), in node order. */
  dropouts: readonly DropoutInfo[];
  controlInputs: readonly string[];
  /** The data inputs, batch first (Model.inputs). */
  inputs: readonly TensorSpec[];
  outputName: string;
  layout: OutputLayout;
  runtime: Pick<RuntimeOptions, 'intraOpThreads' | 'sharedPrefix'> & { maxRunBytes?: number };
  /** The model's name, for error messages (e.g. a conformal interval it cannot serve); absent: the output's. */
  name?: string;
  /** Inputs like real ones (≥ 1 row; the load check's): the load-time probe learns shapes and bytes from them. */
  probeInputs: readonly InputTensor[];
}

/** How a sampler runs, for the loader's log line and the tests. */
export interface SamplerShape {
  /** Nodes that run once per row (the shared prefix) and once per sample. */
  prefixNodes: number;
  repeatedNodes: number;
  /** The tensors tiled per sample, each with its batch axis. */
  tiles: { tensor: string; axis: number }[];
  /** Prefix nodes moved into the repeated part (a tensor they make has no clear batch axis). */
  movedNodes: number;
}

/** One input shape's plan and the session of its graph. */
interface ShapeState {
  plan: McPlan;
  session: OrtSession;
  /** The output's dims law (rows first). */
  output: DimLaw[];
}

/** What one request's runs share. */
interface RequestRuns {
  shape: RecordShape;
  records: number;
  size: RunSize;
  acc: TensorAccumulator;
  bufs: MaskBufs;
  seed: number;
  interval: IntervalSpec | null;
  outputDims: number[];
}

/** Mask buffer sets kept for the next requests, each of at most MAX_KEPT_MASK_BYTES (a large request's are dropped). */
const MAX_FREE_BUFS = 4;
const MAX_KEPT_MASK_BYTES = 16 * 1024 * 1024;
/** At most this many input shapes keep their probed plan (free dimensions). */
const MAX_SHAPES = 64;
/** The load check's largest run, in samples of one row (bounded by the byte budget too). */
const CHECK_MAX_SAMPLES = 128;

/**
 * The sampler of a tensor model: probes, plans and creates the MC session for `probeInputs`' shape.
 * Throws ModelFormatError (no live Dropout reaches the output, a Dropout input whose shape the probe
 * cannot tell, onnxruntime refusing the graph).
 */
export async function createTensorSampler(init: TensorSamplerInit): Promise<TensorSampler> {
  const sampler = new TensorSampler(init);
  try {
    await sampler.prepare(init.probeInputs);
    return sampler;
  } catch (err) {
    await sampler.close();
    throw err;
  }
}

export class TensorSampler {
  private readonly states = new Map<string, Promise<ShapeState>>();
  private readonly sessions = new Map<string, Promise<OrtSession>>();
  private readonly planInput: PlanInput;
  private readonly maxRunBytes: number;
  private first: ShapeState | null = null;
  private readonly freeBufs: MaskBufs[] = [];

  constructor(private readonly init: TensorSamplerInit) {
    this.planInput = {
      model: init.model,
      info: { dropouts: [...init.dropouts], controlInputs: [...init.controlInputs] },
      dataInputs: init.inputs.map((i) => i.name),
      outputName: init.outputName,
      sharedPrefix: init.runtime.sharedPrefix,
    };
    this.maxRunBytes = init.runtime.maxRunBytes ?? DEFAULT_MAX_RUN_BYTES;
  }

  /** Probe and plan the load-time input shape. */
  async prepare(inputs: readonly InputTensor[]): Promise<void> {
    this.first = await this.stateFor(inputs);
  }

  /** Activation bytes of one row in one MC pass of the repeated part, for the load-time input shape (an upper bound). */
  get runBytesPerRow(): number {
    return this.loaded().plan.bytesPerRow.repeated;
  }

  /** Whether some computation runs once per row (a frontier tensor other than a data input is tiled). */
  get sharedPrefix(): boolean {
    const inputs = new Set(this.planInput.dataInputs);
    return this.loaded().plan.tiles.some((t) => !inputs.has(t.tensor));
  }

  get shape(): SamplerShape {
    const { plan } = this.loaded();
    return {
      prefixNodes: plan.prefix.length,
      repeatedNodes: plan.repeated.length,
      tiles: plan.tiles.map((t) => ({ tensor: t.tensor, axis: t.axis })),
      movedNodes: plan.moved,
    };
  }

  /** Samples and rows of one run of a request of `rows` rows and `samples` samples (the load-time shape). */
  runSize(rows: number, samples: number): RunSize {
    return runSize(rows, samples, this.loaded().plan.bytesPerRow, this.maxRunBytes);
  }

  /**
   * Monte Carlo dropout over `rows` rows of validated inputs: `opts.samples` passes (or fewer with
   * `opts.tolerance`), in runs that fit the byte budget, masks from `opts.seed` (a fresh seed when
   * absent): the same seed and budget give the same answer. `opts.signal` is checked before each run.
   */
  async sample(inputs: readonly InputTensor[], rows: number, opts: McOptions): Promise<TensorMcResult> {
    const interval = this.interval(opts);
    const st = await this.stateFor(inputs);
    const outputDims = dimsAt(st.output, rows);
    const shape = recordShape(this.init.layout, outputDims);
    const records = rows * shape.positions;
    const T = opts.samples;
    const seed = opts.seed ?? randomSeed();
    const size = runSize(rows, T, st.plan.bytesPerRow, this.maxRunBytes);
    const acc = tensorAccumulator(this.init, records, shape.width, T, opts);
    // a request's mask buffers serve all its runs, then the next request's (allocating them measured 0.15 ms per 400 kB)
    const bufs = this.freeBufs.pop() ?? new MaskBufs();
    try {
      return await this.sampleRuns(st, inputs, rows, opts, {
        shape,
        records,
        size,
        acc,
        bufs,
        seed,
        interval,
        outputDims,
      });
    } finally {
      if (this.freeBufs.length < MAX_FREE_BUFS && bufs.bytes <= MAX_KEPT_MASK_BYTES) this.freeBufs.push(bufs);
    }
  }

  private async sampleRuns(
    st: ShapeState,
    inputs: readonly InputTensor[],
    rows: number,
    opts: McOptions,
    r: RequestRuns,
  ): Promise<TensorMcResult> {
    const { shape, records, size, acc, bufs } = r;
    const T = opts.samples;
    const stream = new MaskStream(r.seed);
    const fill: MaskFill = (buf, ratio) => stream.fill(buf, 0, buf.length, ratio);
    // a fixed T has one check, at T; "auto" checks at nextAutoCheck's sample counts, one run per check
    // (maxExtra 0: longer runs measured no faster here, where the work grows with the samples)
    const plan = autoPlan(opts.tolerance !== undefined, T);
    const add = (out: Float32Array, s: number) => acc.add(out, s);
    const worst = () => worstError(this.init, acc, records, shape.width);
    const at = { done: 0, maxSamples: T, tolerance: opts.tolerance, maxExtra: 0 };
    while (at.done < T && !plan.stopped) {
      if (opts.signal?.aborted) throw new CancelledError(at.done, T);
      const s = Math.min(size.samples, plan.end - at.done);
      const out = await this.chunk(st, inputs, rows, { rows: size.rows, samples: s }, shape, fill, bufs);
      at.done = addChecked(plan, { out, samples: s }, at, add, worst);
    }
    return {
      stats: finishStats(this.init, acc, records, shape.width, r.interval),
      seed: r.seed,
      outputDims: r.outputDims,
    };
  }

  /**
   * The load-time check: the MC graph with every mask 1, at the run shapes requests produce (one row,
   * all `rows`, several samples, the largest run the budget allows up to CHECK_MAX_SAMPLES), equals
   * `evalOut` (the eval outputs of the `rows` rows) within `agree`. Throws ModelFormatError naming the
   * first disagreeing value.
   */
  async check(inputs: readonly InputTensor[], rows: number, evalOut: Float32Array, agree: Agreement): Promise<void> {
    const st = await this.stateFor(inputs);
    const ctx = this.context(st);
    const width = evalOut.length / rows;
    const scale = magnitude(evalOut);
    const largest = runSize(1, CHECK_MAX_SAMPLES, st.plan.bytesPerRow, this.maxRunBytes).samples;
    for (const run of checkRuns(rows, largest)) {
      const block = inputs.map((t) => rowBlock(t, 0, run.rows));
      const { data } = await runMc(ctx, block, run.samples, (b) => b.fill(1), new MaskBufs()).catch((err: Error) => {
        throw new ModelFormatError(
          `the Monte Carlo graph fails for ${run.rows} rows × ${run.samples} samples: ${err.message.split('\n')[0]}`,
        );
      });
      for (let r = 0; r < run.samples * run.rows; r++) {
        for (let j = 0; j < width; j++) {
          const a = data[r * width + j]!;
          const b = evalOut[(r % run.rows) * width + j]!;
          if (agree(a, b, scale)) continue;
          throw new ModelFormatError(
            `the Monte Carlo graph for ${run.rows} rows × ${run.samples} samples, every mask 1, gives ${a} at row ${r % run.rows} value ${j} where the eval graph gives ${b}`,
          );
        }
      }
    }
  }

  async close(): Promise<void> {
    const sessions = await Promise.all([...this.sessions.values()].map((s) => s.catch(() => null)));
    await Promise.all(sessions.map((s) => s?.release()));
    this.sessions.clear();
    this.states.clear();
  }

  private loaded(): ShapeState {
    if (!this.first) throw new Error('the tensor sampler is not prepared');
    return this.first;
  }

  private interval(opts: McOptions): IntervalSpec | null {
    if (!isIntervalLevel(opts.interval)) throw new InputError(intervalLevelMessage('interval', opts.interval));
    return this.init.task === 'regression'
      ? resolveInterval(
          this.init.name ?? this.init.outputName,
          this.init.uncertainty,
          opts.interval,
          opts.intervalMethod,
        )
      : null;
  }

  private context(st: ShapeState): RunContext {
    return { session: st.session, plan: st.plan, specs: this.init.inputs, outputName: this.init.outputName };
  }

  /**
   * One chunk of `size.samples` samples of all the rows, in record order (samples × records × width):
   * one run, or one per block of `size.rows` rows when the rows do not fit one run together.
   */
  private async chunk(
    st: ShapeState,
    inputs: readonly InputTensor[],
    rows: number,
    size: RunSize,
    shape: RecordShape,
    fill: MaskFill,
    bufs: MaskBufs,
  ): Promise<Float32Array> {
    const s = size.samples;
    const ctx = this.context(st);
    const per = shape.positions * shape.width;
    const out = size.rows >= rows ? null : new Float32Array(s * rows * per);
    for (let r0 = 0; r0 < rows; r0 += size.rows) {
      const n = Math.min(size.rows, rows - r0);
      const run = await runMc(
        ctx,
        inputs.map((t) => rowBlock(t, r0, n)),
        s,
        fill,
        bufs,
      );
      const want = [s * n, ...dimsAt(st.output, n).slice(1)];
      if (run.dims.join() !== want.join())
        throw new ModelFormatError(
          `the Monte Carlo output is [${run.dims.join(', ')}], not the probed [${want.join(', ')}]`,
        );
      const rec = toRecordOrder(run.data, s * n, shape);
      if (!out) return rec;
      for (let t = 0; t < s; t++) out.set(rec.subarray(t * n * per, (t + 1) * n * per), (t * rows + r0) * per);
    }
    return out!;
  }

  /** The probed plan and session of the inputs' shape (their dims after the batch), cached. */
  private stateFor(inputs: readonly InputTensor[]): Promise<ShapeState> {
    const key = inputs.map((t) => `${t.name}:${t.dims.slice(1).join('x')}`).join(';');
    let st = this.states.get(key);
    if (st) return st;
    if (this.states.size >= MAX_SHAPES) this.states.delete(this.states.keys().next().value!);
    st = this.newState(inputs);
    this.states.set(key, st);
    st.catch(() => this.states.delete(key));
    return st;
  }

  private async newState(inputs: readonly InputTensor[]): Promise<ShapeState> {
    // the probe session fetches every tensor: made for each new input shape and released, not kept
    const probe = await ShapeProbe.create(this.init.model, this.planInput.info, this.init.inputs, this.init.runtime);
    const laws = await probe.laws(inputs).finally(() => probe.release());
    const plan = planMc(this.planInput, laws);
    const output = laws.get(this.init.outputName)?.dims;
    if (!output || output.length === 0 || output[0]!.c !== 0 || output[0]!.k !== 1)
      throw new ModelFormatError(`output "${this.init.outputName}" does not have the batch as its first dimension`);
    let session = this.sessions.get(plan.key);
    if (!session) {
      session = createSession(mcGraphOf(this.planInput, plan), this.init.runtime).catch((err: Error) => {
        this.sessions.delete(plan.key);
        throw new ModelFormatError(`onnxruntime cannot load the Monte Carlo graph: ${err.message.split('\n')[0]}`);
      });
      this.sessions.set(plan.key, session);
    }
    return { plan, session: await session, output };
  }
}

/** The check's runs: one row; all the rows; two samples; a few rows × three samples; the largest run of one row. */
function checkRuns(rows: number, largest: number): RunSize[] {
  const runs: RunSize[] = [
    { rows: 1, samples: 1 },
    { rows, samples: 1 },
    { rows: 1, samples: 2 },
    { rows: Math.min(rows, 3), samples: 3 },
    { rows: 1, samples: largest },
  ];
  return runs.filter((r, i) => runs.findIndex((q) => q.rows === r.rows && q.samples === r.samples) === i);
}
