/**
 * A loaded model: card + graph inspection + two onnxruntime sessions (eval and MC, see graph.ts),
 * with predict and Monte Carlo dropout on validated rows. No HTTP here.
 */
import { readFile } from 'node:fs/promises';
import type { Model } from '../onnx/proto.js';
import { z } from 'zod';
import { Rng, randomSeed } from '../util/rng.js';
import { MaskStream } from './onnx/masks.js';
import { InputError, ModelLoadError, NoDropoutError } from './errors.js';
import { type GraphInfo, ModelFormatError, evalGraph, foldAffine, inputTilePoint, inspect, maskInputName, mcGraph, probeGraph, repeatsInputName, sharedPrefixPoint } from './onnx/graph.js';
import { ClassificationAccumulator, RegressionAccumulator, toProbabilities } from './mc.js';
import type { McStats } from './stats.js';
import { type OrtSession, type SessionOptions, createSession } from './onnx/ort.js';
import { toMatrix } from './rows.js';

/** The card fields the runtime reads; any other field is kept and passed through to clients. */
export const CardSchema = z.looseObject({
  name: z.string().optional(),
  task: z.enum(['regression', 'classification']).optional(),
  features: z.array(z.string().min(1)).min(1).optional(),
  target: z.string().optional(),
  labels: z.array(z.string()).min(2).optional(),
  output: z.string().optional(),
  output_kind: z.enum(['regression', 'logits', 'probabilities']).optional(),
  dropout: z.array(z.number().min(0).lt(1)).optional(),
  aleatoric_std: z.union([z.number().nonnegative(), z.array(z.number().nonnegative())]).optional(),
});
export type Card = z.infer<typeof CardSchema>;

export interface RuntimeOptions extends SessionOptions {
  /** Largest batch (tiled rows) of one MC run; larger work is split into chunks of samples. */
  maxRunRows: number;
  /** Run the layers before the first dropout once per row instead of once per sample (see graph.ts). */
  sharedPrefix: boolean;
  /** Fold constant affine steps next to a Gemm into its weights (see graph.ts foldAffine). */
  foldAffine: boolean;
}

export const DEFAULT_RUNTIME_OPTIONS: RuntimeOptions = { intraOpThreads: 1, maxRunRows: 4096, sharedPrefix: true, foldAffine: true };

/** An MC session and the rank of each tensor it repeats (the length of its repeats input). */
interface McGraphSession {
  session: OrtSession;
  tileRanks: number[];
}

export interface McOptions {
  samples: number;
  /** Central interval level in (0, 1) (regression). */
  interval: number;
  seed?: number;
  returnSamples?: boolean;
}

/** One MC request: validated rows (rows × features) and its options. */
export interface McJob {
  x: Float32Array;
  rows: number;
  opts: McOptions;
}

export interface McResult {
  stats: McStats;
  /** The seed the masks came from (the request's, or a fresh one). */
  seed: number;
}

function checkInterval(interval: number): void {
  if (!(interval > 0 && interval < 1)) throw new InputError(`interval: expected a number strictly between 0 and 1, got ${interval}`);
}

interface MaskSpec {
  input: string;
  /** Shape of one row's mask (dims after batch) and its element count. */
  rowDims: number[];
  rowSize: number;
  ratio: number;
}

export class LoadedModel {
  private constructor(
    readonly name: string,
    readonly file: string,
    readonly cardPath: string | null,
    readonly card: Card,
    readonly info: GraphInfo,
    readonly task: 'regression' | 'classification',
    readonly features: string[],
    readonly labels: string[],
    readonly outputName: string,
    /** Values per row of the output read (classes for a classifier). */
    readonly outputSize: number,
    /** true when the output holds one value per row with no trailing dimension ([batch]). */
    readonly outputIsVector: boolean,
    readonly aleatoricStd: number[],
    private readonly logits: boolean,
    private readonly masks: MaskSpec[],
    private readonly evalSession: OrtSession,
    /** MC graph repeating the input rows (null: no live dropout). */
    private readonly mcPlain: McGraphSession | null,
    /** MC graph repeating after the shared prefix (null: nothing to share, or switched off). */
    private readonly mcShared: McGraphSession | null,
    private readonly opts: RuntimeOptions,
    readonly loadMs: number,
    /** Nodes removed by folding affine steps into Gemm weights at load. */
    readonly foldedNodes = 0,
  ) {}

  get mcAvailable(): boolean {
    return this.mcPlain !== null;
  }

  get dropoutRates(): number[] {
    return this.info.dropouts.map((d) => d.ratio);
  }

  /**
   * Load `onnxPath` (and `cardPath` when it exists). Throws ModelLoadError naming the file and the
   * problem; a model that loads has passed a self-check (MC graph with all-ones masks = eval graph).
   */
  static async load(name: string, onnxPath: string, cardPath: string | null, opts: RuntimeOptions = DEFAULT_RUNTIME_OPTIONS): Promise<LoadedModel> {
    const started = performance.now();
    let bytes: Uint8Array;
    try {
      bytes = await readFile(onnxPath);
    } catch (err) {
      throw new ModelLoadError(onnxPath, `cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    let inspected;
    try {
      inspected = inspect(bytes);
    } catch (err) {
      if (err instanceof ModelFormatError) throw new ModelLoadError(onnxPath, err.message);
      throw err;
    }
    const { model, info } = inspected;
    const { card, source } = await readCard(cardPath, info);
    const fail = (msg: string): never => {
      throw new ModelLoadError(onnxPath, source ? `${msg} (card: ${source})` : msg);
    };

    const graphF = info.input.dims?.[1] ?? null;
    if (card.features && graphF !== null && card.features.length !== graphF) {
      fail(`the card lists ${card.features.length} features but the graph input "${info.input.name}" has ${graphF}`);
    }
    const featureCount = card.features?.length ?? graphF;
    if (featureCount === null) fail(`the feature dimension of input "${info.input.name}" is not fixed and no model.json lists the features`);
    const features = card.features ?? Array.from({ length: featureCount! }, (_, j) => `x${j}`);
    // rate-0 layers need no Dropout node, so only the live rates are compared
    const cardLive = card.dropout?.filter((p) => p > 0);
    const graphLive = info.dropouts.map((d) => d.ratio).filter((p) => p > 0);
    if (cardLive && (cardLive.length !== graphLive.length || cardLive.some((p, k) => Math.abs(p - graphLive[k]!) > 1e-6))) {
      fail(`the card's dropout rates [${card.dropout!.join(', ')}] do not match the graph's Dropout nodes [${info.dropouts.map((d) => d.ratio).join(', ')}]`);
    }
    const outputName = card.output ?? info.outputs[0]!.name;
    if (!info.outputs.some((o) => o.name === outputName)) fail(`the card names output "${outputName}", the graph has ${info.outputs.map((o) => o.name).join(', ')}`);

    const sessions: OrtSession[] = [];
    const tryCreate = async (graph: () => Uint8Array): Promise<OrtSession | null> => {
      try {
        const s = await createSession(graph(), opts);
        sessions.push(s);
        return s;
      } catch {
        return null;
      }
    };
    const create = async (what: string, graphBytes: Uint8Array): Promise<OrtSession> => {
      try {
        const s = await createSession(graphBytes, opts);
        sessions.push(s);
        return s;
      } catch (err) {
        throw new ModelLoadError(onnxPath, `onnxruntime cannot load the ${what} graph: ${firstLine((err as Error).message)}`);
      }
    };
    try {
      // Probe with two rows: the batch dimension must come first in the output and every dropout input.
      const probe = await create('probe', probeGraph(model, info));
      const zeros = { data: new Float32Array(2 * features.length), dims: [2, features.length] };
      let probeOut;
      try {
        probeOut = await probe.run({ [info.input.name]: zeros }, [outputName, ...new Set(info.dropouts.map((d) => d.input))]);
      } catch (err) {
        throw new ModelLoadError(onnxPath, `a test run with ${features.length} features failed: ${firstLine((err as Error).message)}`);
      }
      await probe.release();
      sessions.splice(sessions.indexOf(probe), 1);
      const outDims = probeOut[outputName]!.dims;
      if (outDims[0] !== 2 || outDims.length > 2) fail(`output "${outputName}" has shape [${outDims.join(', ')}] for 2 rows; [batch] or [batch, outputs] is required`);
      const outputIsVector = outDims.length === 1;
      const outputSize = outputIsVector ? 1 : outDims[1]!;
      // masks for the live dropouts (rate > 0), in graph order, as graph.ts numbers them
      const masks: MaskSpec[] = info.dropouts
        .filter((d) => d.ratio > 0)
        .map((d, k) => {
          const dims = probeOut[d.input]!.dims;
          if (dims[0] !== 2) fail(`Dropout ${d.name}: its input "${d.input}" does not have the batch as first dimension ([${dims.join(', ')}] for 2 rows)`);
          const rowDims = dims.slice(1);
          return { input: maskInputName(k), rowDims, rowSize: rowDims.reduce((a, b) => a * b, 1), ratio: d.ratio };
        });

      const task = card.task ?? (card.labels ? 'classification' : 'regression');
      let labels: string[] = [];
      if (task === 'classification') {
        if (outputSize < 2) fail(`a classifier needs an output with at least 2 classes; "${outputName}" has ${outputSize}`);
        labels = card.labels ?? Array.from({ length: outputSize }, (_, k) => String(k));
        if (labels.length !== outputSize) fail(`the card lists ${labels.length} labels but output "${outputName}" has ${outputSize} classes`);
      }
      const alea = card.aleatoric_std === undefined ? [0] : Array.isArray(card.aleatoric_std) ? card.aleatoric_std : [card.aleatoric_std];
      if (task === 'regression' && alea.length !== 1 && alea.length !== outputSize) fail(`aleatoric_std has ${alea.length} values for ${outputSize} outputs`);
      const logits = card.output_kind ? card.output_kind === 'logits' : true;

      // Sub/Div before and Mul/Add after a Gemm fold into its weights (graph.ts foldAffine)
      const folded = opts.foldAffine ? foldAffine(model) : 0;
      const evalSession = await create('eval', evalGraph(model, info));
      let mcPlain: McGraphSession | null = null;
      let mcShared: McGraphSession | null = null;
      if (masks.length) {
        mcPlain = { session: await create('Monte Carlo', mcGraph(model, info, inputTilePoint(info))), tileRanks: [2] };
        const point = opts.sharedPrefix ? sharedPrefixPoint(model, info) : null;
        if (point) {
          // the tensors repeated after the prefix must be float32 with the batch first; a graph that
          // fails that, or that onnxruntime rejects, is skipped: the plain MC graph serves instead
          const ranks = await tensorRanks(model, info, point.tensors, zeros, opts);
          const session = ranks ? await tryCreate(() => mcGraph(model, info, point)) : null;
          if (ranks && session) mcShared = { session, tileRanks: ranks };
        }
      }
      const loaded = new LoadedModel(name, onnxPath, cardPath, { ...card, name }, info, task, features, labels, outputName, outputSize, outputIsVector, alea, logits, masks, evalSession, mcPlain, mcShared, opts, 0);
      await loaded.selfCheck();
      (loaded as { loadMs: number }).loadMs = performance.now() - started;
      (loaded as { foldedNodes: number }).foldedNodes = folded;
      return loaded;
    } catch (err) {
      await Promise.all(sessions.map((s) => s.release().catch(() => undefined)));
      throw err;
    }
  }

  /**
   * Before a model is served, the MC graphs (plain and shared-prefix) with every mask = 1 must reproduce
   * the eval graph: proves the rewrites are sound.
   */
  private async selfCheck(): Promise<void> {
    const f = this.features.length;
    const rows = 3;
    const x = new Float32Array(rows * f);
    const rng = new Rng(12345);
    for (let i = 0; i < x.length; i++) x[i] = rng.normal();
    const evalOut = await this.runEval(x, rows);
    for (const g of [this.mcPlain, this.mcShared]) {
      if (!g) continue;
      const ones = this.masks.map((m) => new Float32Array(rows * m.rowSize));
      const out = await this.runChunk(g, x, ones, 1, rows, (buf) => buf.fill(1));
      for (let i = 0; i < evalOut.length; i++) {
        if (!(Math.abs(evalOut[i]! - out[i]!) <= 1e-4 * Math.max(1, Math.abs(evalOut[i]!)))) {
          throw new ModelLoadError(this.file, `self-check failed: the ${g === this.mcShared ? 'shared-prefix ' : ''}Monte Carlo graph with dropout masks of 1 gives ${out[i]} where the eval graph gives ${evalOut[i]}`);
        }
      }
    }
  }

  private readonly freeMasks: Float32Array[][] = [];

  /** One buffer per live dropout, each for at least `batchRows` rows. */
  private takeMaskBuffers(batchRows: number): Float32Array[] {
    const i = this.freeMasks.findIndex((set) => set.every((b, k) => b.length >= batchRows * this.masks[k]!.rowSize));
    if (i >= 0) return this.freeMasks.splice(i, 1)[0]!;
    return this.masks.map((m) => new Float32Array(batchRows * m.rowSize));
  }

  /** Whether MC runs the layers before the first dropout once per row (see graph.ts sharedPrefixPoint). */
  get sharedPrefix(): boolean {
    return this.mcShared !== null;
  }

  /** One run of s samples of the rows: x goes in once, the graph repeats it [s, 1, …]; masks cover all s·rows rows. */
  private async runChunk(g: McGraphSession, x: Float32Array, maskBufs: Float32Array[], s: number, rows: number, fillMask: (buf: Float32Array, ratio: number, rowSize: number) => void): Promise<Float32Array> {
    const f = this.features.length;
    const batch = s * rows;
    const feeds: Record<string, { data: Float32Array | BigInt64Array; dims: number[] }> = {
      [this.info.input.name]: { data: x.subarray(0, rows * f), dims: [rows, f] },
    };
    g.tileRanks.forEach((rank, j) => {
      const repeats = new BigInt64Array(rank).fill(1n);
      repeats[0] = BigInt(s);
      feeds[repeatsInputName(j)] = { data: repeats, dims: [rank] };
    });
    this.masks.forEach((m, k) => {
      const buf = maskBufs[k]!.subarray(0, batch * m.rowSize);
      fillMask(buf, m.ratio, m.rowSize);
      feeds[m.input] = { data: buf, dims: [batch, ...m.rowDims] };
    });
    return (await g.session.run(feeds, [this.outputName]))[this.outputName]!.data;
  }

  private async runEval(x: Float32Array, rows: number): Promise<Float32Array> {
    const res = await this.evalSession.run({ [this.info.input.name]: { data: x, dims: [rows, this.features.length] } }, [this.outputName]);
    return res[this.outputName]!.data;
  }

  /** Validate client rows (arrays or objects keyed by feature). */
  rows(instances: unknown, field = 'instances'): { data: Float32Array; rows: number } {
    return toMatrix(instances, this.features, field);
  }

  /** Eval-mode (dropout off) raw outputs, rows × outputSize. */
  async predictRaw(x: Float32Array, rows: number): Promise<Float32Array> {
    return this.runEval(x, rows);
  }

  /** Eval-mode predictions as JSON: regression a number (or array) per row; classification {label, probabilities}. */
  async predict(instances: unknown): Promise<unknown[]> {
    const { data, rows } = this.rows(instances);
    return this.formatPredictions(await this.predictRaw(data, rows), rows);
  }

  formatPredictions(out: Float32Array, rows: number): unknown[] {
    const K = this.outputSize;
    const result: unknown[] = [];
    if (this.task === 'regression') {
      for (let i = 0; i < rows; i++) result.push(K === 1 ? out[i]! : Array.from(out.subarray(i * K, (i + 1) * K)));
      return result;
    }
    const p = new Float64Array(K);
    for (let i = 0; i < rows; i++) {
      toProbabilities(out, i * K, K, this.logits, p);
      let best = 0;
      for (let k = 1; k < K; k++) if (p[k]! > p[best]!) best = k;
      result.push({ label: this.labels[best], probabilities: Object.fromEntries(this.labels.map((l, k) => [l, p[k]!])) });
    }
    return result;
  }

  /**
   * Monte Carlo dropout on validated rows: T samples with dropout on, in as few runs as possible (the
   * rows, or the shared prefix's outputs, are tiled s times into one batch of s·N rows, s chosen so a
   * run stays ≤ maxRunRows rows).
   * The masks come from a generator seeded with `seed` (a fresh random seed when absent): the same seed
   * gives the same answer, across calls and restarts, and the seed used is returned. Drawing masks in
   * JS and feeding them to Mul nodes measured faster than onnxruntime's own Dropout kernel (bench).
   */
  async mc(x: Float32Array, rows: number, opts: McOptions): Promise<McResult> {
    if (!this.mcPlain) throw new NoDropoutError(this.name);
    checkInterval(opts.interval);
    const T = opts.samples;
    const graph = this.mcShared ?? this.mcPlain;
    const seed = opts.seed ?? randomSeed();
    const masks = new MaskStream(seed);
    const acc = this.accumulator(rows, T, opts);
    const perRun = Math.max(1, Math.min(T, Math.floor(this.opts.maxRunRows / rows)));
    // mask buffers serve every chunk of this request, then go back to a free list for the next one
    // (a buffer is never shared by two requests in flight: onnxruntime reads it after an await)
    const maskBufs = this.takeMaskBuffers(perRun * rows);
    const fill = (buf: Float32Array, ratio: number): void => masks.fill(buf, 0, buf.length, ratio);
    try {
      for (let done = 0; done < T; ) {
        const s = Math.min(perRun, T - done);
        acc.add(await this.runChunk(graph, x, maskBufs, s, rows, fill), s);
        done += s;
      }
    } finally {
      if (this.freeMasks.length < 8) this.freeMasks.push(maskBufs);
    }
    return { stats: this.finishStats(acc, rows, opts), seed };
  }

  /** Largest batch (tiled rows) of one MC run. */
  get maxRunRows(): number {
    return this.opts.maxRunRows;
  }

  /** Whether MC on `rows` rows × `samples` fits one run, and so may share a run with other requests. */
  fitsOneRun(rows: number, samples: number): boolean {
    return this.mcPlain !== null && rows * samples <= this.opts.maxRunRows;
  }

  /**
   * Monte Carlo for several requests with one sample count T in a single run (the MC batcher coalesces
   * concurrent requests): their rows are concatenated, the graph repeats them T times, and each request
   * draws its own masks from its own seeded generator, in the order a run of that request alone draws
   * them (MaskStream.fillBatch; the stream ignores call boundaries). So a request's answer does not depend on
   * its neighbours; it equals mc() with the same seed. Each request must fit one run (fitsOneRun).
   */
  async mcCoalesced(jobs: readonly McJob[]): Promise<McResult[]> {
    if (!this.mcPlain) throw new NoDropoutError(this.name);
    const T = jobs[0]!.opts.samples;
    let total = 0;
    for (const j of jobs) {
      checkInterval(j.opts.interval);
      if (j.opts.samples !== T) throw new Error('coalesced MC requests must share the sample count');
      total += j.rows;
    }
    if (total * T > this.opts.maxRunRows) throw new Error(`coalesced MC of ${total} rows × ${T} samples exceeds one run`);
    const f = this.features.length;
    let x = jobs[0]!.x;
    if (jobs.length > 1) {
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
    const maskBufs = this.takeMaskBuffers(T * total);
    try {
      const out = await this.runChunk(this.mcShared ?? this.mcPlain, x, maskBufs, T, total, (buf, ratio, rowSize) => MaskStream.fillBatch(streams, rows, T, rowSize, ratio, buf));
      let offset = 0;
      return jobs.map((j, k) => {
        const acc = this.accumulator(j.rows, T, j.opts);
        acc.add(out, T, total, offset);
        offset += j.rows;
        return { stats: this.finishStats(acc, j.rows, j.opts), seed: seeds[k]! };
      });
    } finally {
      if (this.freeMasks.length < 8) this.freeMasks.push(maskBufs);
    }
  }

  private accumulator(rows: number, samples: number, opts: McOptions): RegressionAccumulator | ClassificationAccumulator {
    const K = this.outputSize;
    return this.task === 'regression' ? new RegressionAccumulator(rows, K, samples, !!opts.returnSamples) : new ClassificationAccumulator(rows, K, samples, !!opts.returnSamples, this.logits);
  }

  private finishStats(acc: RegressionAccumulator | ClassificationAccumulator, rows: number, opts: McOptions): McStats {
    if (!(acc instanceof RegressionAccumulator)) return acc.finish();
    // the card's noise is per output: the same for every row
    const K = this.outputSize;
    const alea = new Float64Array(rows * K);
    for (let i = 0; i < alea.length; i++) alea[i] = this.aleatoricStd[i % K] ?? this.aleatoricStd[0] ?? 0;
    return acc.finish(alea, opts.interval);
  }

  /** MC dropout on client rows. */
  async uncertainty(instances: unknown, opts: McOptions): Promise<McResult> {
    const { data, rows } = this.rows(instances);
    return this.mc(data, rows, opts);
  }

  /** What /v1/models reports: the card plus inputs, outputs and MC availability. */
  describe(): Record<string, unknown> {
    return {
      ...this.card,
      name: this.name,
      task: this.task,
      features: this.features,
      ...(this.task === 'classification' ? { labels: this.labels } : {}),
      dropout: this.dropoutRates,
      aleatoric_std: this.task === 'regression' ? (this.aleatoricStd.length === 1 ? this.aleatoricStd[0] : this.aleatoricStd) : undefined,
      inputs: [{ name: this.info.input.name, datatype: 'FP32', shape: [-1, this.features.length] }],
      outputs: [{ name: this.outputName, datatype: 'FP32', shape: this.outputIsVector ? [-1] : [-1, this.outputSize] }],
      mc_available: this.mcAvailable,
      shared_prefix: this.sharedPrefix,
      opset: this.info.opset,
      producer: this.info.producer,
    };
  }

  async close(): Promise<void> {
    const all = [this.evalSession, this.mcPlain?.session, this.mcShared?.session];
    await Promise.all(all.filter((s): s is OrtSession => !!s).map((s) => s.release()));
  }
}

/**
 * Ranks of `tensors` in the eval graph, probed with two rows; null unless every one is float32 with the
 * batch as first dimension (only those can be repeated per sample).
 */
async function tensorRanks(model: Model, info: GraphInfo, tensors: string[], zeros: { data: Float32Array; dims: number[] }, opts: SessionOptions): Promise<number[] | null> {
  let probe: OrtSession | null = null;
  try {
    probe = await createSession(probeGraph(model, info, tensors), opts);
    const out = await probe.run({ [info.input.name]: zeros }, tensors.filter((t) => t !== info.input.name));
    const ranks = tensors.map((t) => (t === info.input.name ? 2 : out[t]!.dims[0] === 2 ? out[t]!.dims.length : Number.NaN));
    return ranks.some(Number.isNaN) ? null : ranks;
  } catch {
    return null;
  } finally {
    await probe?.release();
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.slice(0, 300);
}

/** The card from model.json, else from the ONNX metadata our exporter writes, else empty. */
async function readCard(cardPath: string | null, info: GraphInfo): Promise<{ card: Card; source: string | null }> {
  let raw: unknown = undefined;
  let source = '';
  if (cardPath) {
    let text: string | null = null;
    try {
      text = await readFile(cardPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ModelLoadError(cardPath, `cannot read the card (${(err as NodeJS.ErrnoException).code})`);
    }
    if (text !== null) {
      try {
        raw = JSON.parse(text);
      } catch (err) {
        throw new ModelLoadError(cardPath, `the card is not valid JSON (${(err as Error).message})`);
      }
      source = cardPath;
    }
  }
  if (raw === undefined && info.metadata['dropout_serve.card']) {
    try {
      raw = JSON.parse(info.metadata['dropout_serve.card']);
      source = 'metadata_props dropout_serve.card';
    } catch {
      raw = undefined;
    }
  }
  if (raw === undefined) return { card: {}, source: null };
  const parsed = CardSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ModelLoadError(source, `card field "${issue.path.join('.') || '(root)'}": ${issue.message}`);
  }
  return { card: parsed.data, source };
}
