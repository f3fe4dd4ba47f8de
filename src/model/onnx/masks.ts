/**
 * Dropout masks for Monte Carlo requests: a seeded stream of 16-bit uniforms from four xoshiro128**
 * generators run side by side in WebAssembly SIMD (one i32x4 step gives 8 uniforms), each compared with
 * the rate's threshold and written as 0 or 1/(1−p) (float32 bits), ≈ 4× faster than the scalar
 * generator in util/rng.ts, which was the largest cost of a small MC request.
 *
 * The stream (what a seed means):
 *   lanes: 16 words from splitmix32(seed), lane j's state = words 4j … 4j+3 (s0, s1, s2, s3);
 *   step: every lane advances once (xoshiro128**), giving r_0 … r_3; the step's uniforms, in order, are
 *         r_0 >>> 16, …, r_3 >>> 16, r_0 & 0xffff, …, r_3 & 0xffff;
 *   unit: kept (value 65536/(65536 − t), t = round(p·65536)) iff its uniform ≥ t, else 0.
 * Uniforms left over at the end of a fill are kept for the next fill, so a request's masks do not
 * depend on how its units are split into calls or laid out in a batch (see fill and scatter).
 * referenceFill is a plain-JS implementation of the same stream (tests compare the two; it also serves
 * where WebAssembly SIMD is missing).
 */
import { splitmix32 } from '../../util/rng.js';
import { Fn, I32, V128, assemble } from '../../util/wasm-asm.js';

const STATE = 0; // 4 × v128: s0, s1, s2, s3 (lane j in word j of each)
const LAST = 64; // 2 × v128: the uniforms of the last step (hi halves, lo halves)
const STREAM = 128; // generated mask values

/**
 * gen(ptr, steps, threshold, keepBits, segSteps, gapBytes): `steps` steps of masks from ptr, skipping
 * gapBytes after every segSteps steps (segSteps = steps: contiguous); state in and out at STATE.
 */
function generator(): Fn {
  const f = new Fn('gen', [I32, I32, I32, I32, I32, I32]);
  const [ptr, steps, threshold, keepBits, segSteps, gapBytes] = [0, 1, 2, 3, 4, 5];
  const v = (): number => f.local(V128);
  const [s0, s1, s2, s3, r, t, thr, keep, m16, hi, lo] = [v(), v(), v(), v(), v(), v(), v(), v(), v(), v(), v()];
  const p = f.local(I32);
  const left = f.local(I32); // steps left in this segment
  const rotl = (k: number): void =>
    void f
      .tee(t)
      .i32(k)
      .iShl()
      .get(t)
      .i32(32 - k)
      .iShrU()
      .vOr();
  f.i32(0)
    .v128Load(STATE)
    .set(s0)
    .i32(0)
    .v128Load(STATE + 16)
    .set(s1)
    .i32(0)
    .v128Load(STATE + 32)
    .set(s2)
    .i32(0)
    .v128Load(STATE + 48)
    .set(s3);
  f.get(threshold).iSplat().set(thr).get(keepBits).iSplat().set(keep).i32(0xffff).iSplat().set(m16);
  f.get(ptr).set(p).get(segSteps).set(left);
  f.block().get(steps).i32Eqz().brIf(0);
  f.loop();
  // r = rotl(s1 · 5, 7) · 9
  f.get(s1).i32(5).iSplat().iMul();
  rotl(7);
  f.i32(9).iSplat().iMul().set(r);
  // t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11)
  f.get(s1).i32(9).iShl().set(t);
  f.get(s2).get(s0).vXor().set(s2);
  f.get(s3).get(s1).vXor().set(s3);
  f.get(s1).get(s2).vXor().set(s1);
  f.get(s0).get(s3).vXor().set(s0);
  f.get(s2).get(t).vXor().set(s2);
  f.get(s3);
  rotl(11);
  f.set(s3);
  // units: all-ones where the uniform ≥ threshold, AND the bits of the keep scale
  f.get(r).i32(16).iShrU().set(hi).get(r).get(m16).vAnd().set(lo);
  f.get(p).get(hi).get(thr).iGeU().get(keep).vAnd().v128Store(0);
  f.get(p).get(lo).get(thr).iGeU().get(keep).vAnd().v128Store(16);
  f.addTo(p, 32);
  // at a segment's end, skip the gap
  f.block().get(left).i32(1).i32Sub().tee(left).brIf(0);
  f.get(p).get(gapBytes).i32Add().set(p).get(segSteps).set(left);
  f.end();
  f.get(steps).i32(1).i32Sub().tee(steps).brIf(0).end();
  f.end();
  f.i32(0)
    .get(s0)
    .v128Store(STATE)
    .i32(0)
    .get(s1)
    .v128Store(STATE + 16)
    .i32(0)
    .get(s2)
    .v128Store(STATE + 32)
    .i32(0)
    .get(s3)
    .v128Store(STATE + 48);
  f.i32(0)
    .get(hi)
    .v128Store(LAST)
    .i32(0)
    .get(lo)
    .v128Store(LAST + 16);
  return f;
}

/** scatter(src, dst, segBytes, segs, strideBytes): copy `segs` runs of segBytes from src (contiguous) to dst + k·stride. */
function scatter(): Fn {
  const f = new Fn('scatter', [I32, I32, I32, I32, I32]);
  const [src, dst, seg, segs, stride] = [0, 1, 2, 3, 4];
  f.block().get(segs).i32Eqz().brIf(0);
  f.loop();
  f.get(dst).get(src).get(seg).memoryCopy();
  f.get(src).get(seg).i32Add().set(src);
  f.get(dst).get(stride).i32Add().set(dst);
  f.get(segs).i32(1).i32Sub().tee(segs).brIf(0).end();
  f.end();
  return f;
}

interface Wasm {
  memory: WebAssembly.Memory;
  gen: (ptr: number, steps: number, threshold: number, keepBits: number, segSteps: number, gapBytes: number) => void;
  scatter: (src: number, dst: number, segBytes: number, segs: number, strideBytes: number) => void;
  i32: Int32Array;
  f32: Float32Array;
}

let wasm: Wasm | null | undefined;

function instance(): Wasm | null {
  if (wasm !== undefined) return wasm;
  try {
    const memory = new WebAssembly.Memory({ initial: 4 });
    const ex = new WebAssembly.Instance(new WebAssembly.Module(assemble([generator(), scatter()])), { env: { memory } })
      .exports as Record<string, (...a: number[]) => void>;
    wasm = {
      memory,
      gen: ex.gen!,
      scatter: ex.scatter!,
      i32: new Int32Array(memory.buffer),
      f32: new Float32Array(memory.buffer),
    };
  } catch {
    wasm = null;
  }
  return wasm;
}

/** Make the memory hold at least `bytes` (views are refreshed after a grow). */
function reserve(w: Wasm, bytes: number): void {
  const have = w.memory.buffer.byteLength;
  if (bytes <= have) return;
  (w.memory as unknown as { grow(pages: number): number }).grow(Math.ceil((bytes - have) / 65536));
  w.i32 = new Int32Array(w.memory.buffer);
  w.f32 = new Float32Array(w.memory.buffer);
}

/**
 * The masks fillBatch lent to a run: a view into the memory, fed to onnxruntime in place of a copy
 * (one copy of every mask value fewer per batch; issue 20). Until it is given back (MaskStream.release)
 * nothing may write its bytes or grow the memory (a grow detaches the view): fills meanwhile use the
 * memory below it when they fit there, else the reference fill.
 */
let lent: { view: Float32Array; start: number } | null = null;

/** The memory when `bytes` of it may be written now (grown if needed and nothing is lent), else null. */
function usable(w: Wasm | null, bytes: number): Wasm | null {
  if (!w) return null;
  if (lent) return bytes <= lent.start ? w : null;
  reserve(w, bytes);
  return w;
}

/**
 * The most units fill() generates in the memory at once (256 KB). Generated whole, a run's masks grew
 * the memory to their size (the diabetes model's 4080-row runs: 3.2 MB), which a WebAssembly memory
 * keeps for the thread's life (issue 20: an MC worker's RSS after a load).
 */
const FILL_CHUNK = 65_536;

const f32bits = new Float32Array(1);
const i32bits = new Int32Array(f32bits.buffer);

function keepOf(p: number): { threshold: number; keep: number; keepBits: number } {
  const threshold = Math.round(p * 65536);
  const keep = 65536 / (65536 - threshold);
  f32bits[0] = keep;
  return { threshold, keep, keepBits: i32bits[0]! };
}

export class MaskStream {
  /** s0, s1, s2, s3 of lanes 0…3: word 4k + j is s_k of lane j (the layout of STATE). */
  private readonly state = new Int32Array(16);
  /** Uniforms left over from the last step, in stream order. */
  private pending: number[] = [];

  constructor(
    seed: number,
    private readonly useWasm = true,
  ) {
    const next = splitmix32(seed);
    for (let j = 0; j < 4; j++) {
      for (let k = 0; k < 4; k++) this.state[4 * k + j] = next() | 0;
      if ((this.state[j]! | this.state[4 + j]! | this.state[8 + j]! | this.state[12 + j]!) === 0) this.state[j] = 1;
    }
  }

  /** The next end − start units of the stream, written to out[start, end). */
  fill(out: Float32Array, start: number, end: number, p: number): void {
    const n = end - start;
    if (n <= 0) return;
    const k = keepOf(p);
    if (k.threshold <= 0 || k.threshold >= 65536) {
      out.fill(k.threshold <= 0 ? 1 : 0, start, end);
      return;
    }
    // FILL_CHUNK units at a time (the stream does not depend on how a fill is split)
    for (let at = start; at < end; at += FILL_CHUNK) {
      const m = Math.min(FILL_CHUNK, end - at);
      const w = usable(this.useWasm ? instance() : null, STREAM + (m + 8) * 4);
      if (!w) this.referenceFill(out, at, m, 1, 0, k.threshold, k.keep);
      else {
        this.generate(w, STREAM / 4, m, k);
        out.set(w.f32.subarray(STREAM / 4, STREAM / 4 + m), at);
      }
    }
  }

  /**
   * Masks of a coalesced batch in one pass: T samples of rows[j] rows per stream j, laid out sample-major
   * like the batch (row t·Σrows + offset_j + i), each stream continuing in its own order: exactly the
   * units fill() would give each request alone for its T × rows[j] × rowSize values. Returns the array
   * that holds them: `out`, or with `lend` a view into the generator's memory (no copy), which the
   * caller gives back with release() once its run has read it.
   */
  static fillBatch(
    streams: readonly MaskStream[],
    rows: readonly number[],
    samples: number,
    rowSize: number,
    p: number,
    out: Float32Array,
    lend = false,
  ): Float32Array {
    const total = rows.reduce((a, b) => a + b, 0);
    const size = samples * total * rowSize;
    const k = keepOf(p);
    if (k.threshold <= 0 || k.threshold >= 65536) return out.fill(k.threshold <= 0 ? 1 : 0, 0, size);
    const most = Math.max(...rows) * samples * rowSize;
    const batchAt = Math.ceil((STREAM + (most + 8) * 4) / 16) * 16;
    const w = usable(streams[0]?.useWasm ? instance() : null, batchAt + size * 4);
    if (!w) {
      let off = 0;
      streams.forEach((st, j) => {
        st.referenceFill(out, off * rowSize, rows[j]! * rowSize, samples, total * rowSize, k.threshold, k.keep);
        off += rows[j]!;
      });
      return out;
    }
    let off = 0;
    streams.forEach((st, j) => {
      const seg = rows[j]! * rowSize;
      const at = batchAt + off * rowSize * 4;
      const stride = total * rowSize * 4;
      // whole steps per sample: generated in place, sample by sample (no scatter copy); else via the stream area
      if (seg % 8 === 0 && st.pending.length === 0) st.generateStrided(w, at, seg / 8, samples, stride - seg * 4, k);
      else {
        st.generate(w, STREAM / 4, seg * samples, k);
        w.scatter(STREAM, at, seg * 4, samples, stride);
      }
      off += rows[j]!;
    });
    const masks = w.f32.subarray(batchAt / 4, batchAt / 4 + size);
    if (!lend || lent) {
      out.set(masks, 0);
      return out;
    }
    lent = { view: masks, start: batchAt };
    return masks;
  }

  /** Give back the masks fillBatch lent (a no-op for any other array). */
  static release(masks: Float32Array): void {
    if (lent?.view === masks) lent = null;
  }

  /** Write the next n units at float index `at` of the memory: left-over units first, then whole steps. */
  private generate(w: Wasm, at: number, n: number, k: { threshold: number; keep: number; keepBits: number }): void {
    const head = Math.min(this.pending.length, n);
    for (let i = 0; i < head; i++) w.f32[at + i] = this.pending[i]! >= k.threshold ? k.keep : 0;
    this.pending = head === this.pending.length ? [] : this.pending.slice(head);
    const rest = n - head;
    if (rest === 0) return;
    const steps = Math.ceil(rest / 8);
    w.i32.set(this.state, STATE / 4);
    w.gen((at + head) * 4, steps, k.threshold, k.keepBits, steps, 0);
    this.state.set(w.i32.subarray(STATE / 4, STATE / 4 + 16));
    const used = rest - (steps - 1) * 8; // units taken from the last step (1…8)
    if (used < 8) this.pending = Array.from(w.i32.subarray(LAST / 4 + used, LAST / 4 + 8));
  }

  /**
   * The next segs·segSteps·8 units (no left-over units pending) written as segs runs of segSteps steps
   * from byte `at`, gapBytes apart: what generate and a scatter would write, with nothing left over.
   */
  private generateStrided(
    w: Wasm,
    at: number,
    segSteps: number,
    segs: number,
    gapBytes: number,
    k: { threshold: number; keepBits: number },
  ): void {
    if (segs === 0 || segSteps === 0) return;
    w.i32.set(this.state, STATE / 4);
    w.gen(at, segSteps * segs, k.threshold, k.keepBits, segSteps, gapBytes);
    this.state.set(w.i32.subarray(STATE / 4, STATE / 4 + 16));
  }

  /** The same stream in plain JavaScript, one lane step at a time: segs runs of segLen at out[start + k·stride]. */
  private referenceFill(
    out: Float32Array,
    start: number,
    segLen: number,
    segs: number,
    stride: number,
    threshold: number,
    keep: number,
  ): void {
    const st = this.state;
    const u: number[] = [];
    const next = (): number => {
      if (u.length === 0) {
        if (this.pending.length) u.push(...this.pending.splice(0));
        else {
          const r: number[] = [];
          for (let j = 0; j < 4; j++) {
            const s0 = st[j]!,
              s1 = st[4 + j]!,
              s2 = st[8 + j]!,
              s3 = st[12 + j]!;
            const m = Math.imul(s1, 5);
            r.push(Math.imul((m << 7) | (m >>> 25), 9) >>> 0);
            const t = s1 << 9;
            let n2 = s2 ^ s0;
            let n3 = s3 ^ s1;
            const n1 = s1 ^ n2;
            const n0 = s0 ^ n3;
            n2 ^= t;
            n3 = (n3 << 11) | (n3 >>> 21);
            st[j] = n0;
            st[4 + j] = n1;
            st[8 + j] = n2;
            st[12 + j] = n3;
          }
          u.push(...r.map((x) => x >>> 16), ...r.map((x) => x & 0xffff));
        }
      }
      return u.shift()!;
    };
    for (let k = 0; k < segs; k++)
      for (let i = 0; i < segLen; i++) out[start + k * stride + i] = next() >= threshold ? keep : 0;
    this.pending = u;
  }
}

/**
 * The seed of row `row`'s own mask stream in a per-row "auto" request of seed `seed` (auto-rows.ts): row 0
 * draws from `seed` itself, so a one-row request's masks are those of its seed; row i > 0 from a 32-bit
 * hash of seed and i. Row i's masks are then those of a one-row request with this seed.
 */
export function rowSeed(seed: number, row: number): number {
  if (row === 0) return seed;
  return splitmix32((splitmix32(seed)() + Math.imul(row, 0x9e3779b9)) >>> 0)();
}

/** Whether the WebAssembly SIMD generator is in use in this thread (else the reference fill). */
export function wasmMasks(): boolean {
  return instance() !== null;
}
