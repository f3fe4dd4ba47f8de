/**
 * Running the rewritten graphs (rewrite.ts) on onnxruntime sessions: one eval run, and one Monte Carlo
 * run of s samples with the rows repeated inside the graph and the dropout masks fed as inputs.
 */
import { repeatsInputName } from './rewrite.js';
import type { OrtSession } from './ort.js';

/** An MC session and the rank of each tensor it repeats (the length of its repeats input). */
export interface McGraphSession {
  session: OrtSession;
  tileRanks: number[];
}

/** The mask input of one live dropout. */
export interface MaskSpec {
  input: string;
  /** Shape of one row's mask (dims after batch) and its element count. */
  rowDims: number[];
  rowSize: number;
  ratio: number;
}

/** What a run needs to know of the graph. */
export interface GraphIo {
  inputName: string;
  outputName: string;
  /** A heteroscedastic model's log-variance output, fetched with the mean in Monte Carlo runs. */
  logVarianceName?: string | null;
  features: number;
  masks: readonly MaskSpec[];
}

/** Fills a run's masks into `buf` and returns the array that holds them: `buf`, or one lent in its place (fillBatch). */
export type MaskFiller = (buf: Float32Array, ratio: number, rowSize: number) => Float32Array;

export async function runEval(io: GraphIo, session: OrtSession, x: Float32Array, rows: number): Promise<Float32Array> {
  const res = await session.run({ [io.inputName]: { data: x, dims: [rows, io.features] } }, [io.outputName]);
  return res[io.outputName]!.data;
}

/** One run of s samples of the rows: the output, s·rows rows sample-major (runMcChunk). */
export async function runChunk(
  io: GraphIo,
  g: McGraphSession,
  x: Float32Array,
  maskBufs: Float32Array[],
  s: number,
  rows: number,
  fillMask: MaskFiller,
): Promise<Float32Array> {
  return (await runMcChunk({ ...io, logVarianceName: null }, g, x, maskBufs, s, rows, fillMask)).out;
}

/** What one Monte Carlo run gives: the output, and the log-variance output when the model has one. */
export interface McChunk {
  out: Float32Array;
  logVar: Float32Array | null;
}

/**
 * One run of s samples of the rows: x goes in once, the graph repeats it [s, 1, …]; masks cover all
 * s·rows rows. Fetches `io.logVarianceName` too when set.
 */
export async function runMcChunk(
  io: GraphIo,
  g: McGraphSession,
  x: Float32Array,
  maskBufs: Float32Array[],
  s: number,
  rows: number,
  fillMask: MaskFiller,
): Promise<McChunk> {
  const f = io.features;
  const batch = s * rows;
  const feeds: Record<string, { data: Float32Array | BigInt64Array; dims: number[] }> = {
    [io.inputName]: { data: x.subarray(0, rows * f), dims: [rows, f] },
  };
  g.tileRanks.forEach((rank, j) => {
    const repeats = new BigInt64Array(rank).fill(1n);
    repeats[0] = BigInt(s);
    feeds[repeatsInputName(j)] = { data: repeats, dims: [rank] };
  });
  io.masks.forEach((m, k) => {
    const buf = maskBufs[k]!.subarray(0, batch * m.rowSize);
    feeds[m.input] = { data: fillMask(buf, m.ratio, m.rowSize), dims: [batch, ...m.rowDims] };
  });
  const lv = io.logVarianceName ?? null;
  const res = await g.session.run(feeds, lv ? [io.outputName, lv] : [io.outputName]);
  return { out: res[io.outputName]!.data, logVar: lv ? res[lv]!.data : null };
}

/**
 * Where glibc maps an allocation instead of carving it from its heap: the image's
 * MALLOC_MMAP_THRESHOLD_=1048576 (a page over it, for malloc's header).
 */
const MAPPED_BYTES = 1024 * 1024 + 4096;

/**
 * A mask buffer of `floats` values; one of over a quarter of MAPPED_BYTES is made MAPPED_BYTES long, so
 * that glibc maps it. Carved from the heap, a run's masks (the wine model's: 4080 rows × 64 units, 1 MB
 * less 4 KB each) sat among blocks of the threads sharing that heap (an MC worker shares the main thread's
 * with MALLOC_ARENA_MAX=2), and once freed stayed resident behind them (issue 20: RSS +2 to +6 MB after
 * an MC load); mapped, a freed buffer returns to the system.
 */
export function maskArray(floats: number): Float32Array {
  const bytes = floats * Float32Array.BYTES_PER_ELEMENT;
  const mapped = bytes > MAPPED_BYTES / 4 && bytes < MAPPED_BYTES;
  return new Float32Array(mapped ? MAPPED_BYTES / Float32Array.BYTES_PER_ELEMENT : floats);
}

/**
 * Mask buffers reused across requests: a request takes one buffer per live dropout, for all its chunks,
 * and gives them back when done (a buffer is never shared by two requests in flight: onnxruntime reads
 * it after an await).
 */
export class MaskBuffers {
  private readonly free: Float32Array[][] = [];

  constructor(private readonly masks: readonly MaskSpec[]) {}

  /** One buffer per live dropout, each for at least `batchRows` rows. */
  take(batchRows: number): Float32Array[] {
    const i = this.free.findIndex((set) => set.every((b, k) => b.length >= batchRows * this.masks[k]!.rowSize));
    if (i >= 0) return this.free.splice(i, 1)[0]!;
    return this.masks.map((m) => maskArray(batchRows * m.rowSize));
  }

  give(bufs: Float32Array[]): void {
    if (this.free.length < 8) this.free.push(bufs);
  }

  /** Drop the buffers kept for reuse (an idle model's: they are as large as its largest run's masks). */
  clear(): void {
    this.free.length = 0;
  }
}
