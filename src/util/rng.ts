/**
 * Seeded pseudo-random numbers: xoshiro128** (Blackman & Vigna 2018) seeded through splitmix32.
 * 32-bit integer arithmetic only (Math.imul), so a seed gives the same stream on every platform and
 * Node version; fast enough to draw dropout masks for millions of units per request.
 */
/**
 * splitmix32: expands one seed (any finite number; the integer part modulo 2^32 plus the high bits)
 * into a stream of 32-bit words, used to seed xoshiro128** here and the mask lanes (model/onnx/masks.ts).
 */
export function splitmix32(seed: number): () => number {
  let x = (Math.trunc(seed) >>> 0) ^ (Math.trunc(seed / 4294967296) >>> 0);
  return () => {
    x = (x + 0x9e3779b9) | 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spareNormal: number | null = null;

  constructor(seed: number) {
    const next = splitmix32(seed);
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A generator in this one's exact state (it continues the same stream independently). */
  clone(): Rng {
    return Object.assign(Object.create(Rng.prototype) as Rng, this);
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s0 = this.s0,
      s1 = this.s1,
      s2 = this.s2,
      s3 = this.s3;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
    const t = s1 << 9;
    this.s2 = s2 ^ s0;
    this.s3 = s3 ^ s1;
    this.s1 = s1 ^ this.s2;
    this.s0 = s0 ^ this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r >>> 0;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = a[i];
      a[i] = a[j];
      a[j] = tmp;
    }
    return a;
  }

  /** The unused 16-bit half of the last mask draw (-1: none), so mask streams ignore call boundaries. */
  private maskHalf = -1;

  /**
   * Fill `out` with inverted-dropout multipliers (torch.nn.Dropout semantics): 0 with probability p,
   * 1/(1−p) otherwise. Each 32-bit draw decides two units, one per 16-bit half, so p is resolved to
   * 2^-16: the drop probability is round(p·65536)/65536 (|error| ≤ 7.7e-6) and the keep scale is
   * 1/(1 − that), so every unit's expectation is exactly its input. The loop is branch-free (the sign of
   * half − threshold) because a data-dependent branch mispredicts half the time and tripled the cost.
   */
  fillDropoutMask(out: Float32Array, p: number): Float32Array {
    this.fillDropoutMaskRange(out, 0, out.length, p);
    return out;
  }

  /**
   * fillDropoutMask on out[start, end). A half draw left over by an odd count is kept for the next call,
   * so filling a buffer piece by piece gives exactly the units of one call on the whole (training draws its
   * masks here; Monte Carlo serving uses the faster SIMD stream in model/onnx/masks.ts, which has the same
   * property).
   */
  fillDropoutMaskRange(out: Float32Array, start: number, end: number, p: number, kernel?: MaskPairKernel): void {
    const threshold = Math.round(p * 65536);
    if (threshold <= 0) {
      out.fill(1, start, end);
      return;
    }
    if (threshold >= 65536) {
      out.fill(0, start, end);
      return;
    }
    const keep = 65536 / (65536 - threshold);
    let i = start;
    if (this.maskHalf >= 0 && i < end) {
      out[i++] = keep * (((this.maskHalf - threshold) >>> 31) ^ 1);
      this.maskHalf = -1;
    }
    // pairs of units here; an odd last unit below, whose draw's unused half is kept for the next call
    const pairsEnd = end - ((end - i) & 1);
    if (kernel) this.kernelPairs(kernel, out, i, pairsEnd, threshold, keep);
    else this.pairs(out, i, pairsEnd, threshold, keep);
    i = pairsEnd;
    if (i < end) {
      const r = this.nextU32();
      out[i] = keep * ((((r >>> 16) - threshold) >>> 31) ^ 1);
      this.maskHalf = r & 0xffff;
    }
  }

  /** The pair loop of fillDropoutMaskRange: out[i, pairsEnd), two units per draw. */
  private pairs(out: Float32Array, i: number, pairsEnd: number, threshold: number, keep: number): void {
    let s0 = this.s0,
      s1 = this.s1,
      s2 = this.s2,
      s3 = this.s3;
    for (; i < pairsEnd; i += 2) {
      // xoshiro128** inlined on local state
      const m = Math.imul(s1, 5);
      const r = Math.imul((m << 7) | (m >>> 25), 9);
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      out[i] = keep * ((((r >>> 16) - threshold) >>> 31) ^ 1);
      out[i + 1] = keep * ((((r & 0xffff) - threshold) >>> 31) ^ 1);
    }
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
  }

  /** The same pair loop run by `kernel`, from this generator's state, which it advances. */
  private kernelPairs(
    kernel: MaskPairKernel,
    out: Float32Array,
    i: number,
    pairsEnd: number,
    threshold: number,
    keep: number,
  ): void {
    const st = kernel.state;
    st[0] = this.s0;
    st[1] = this.s1;
    st[2] = this.s2;
    st[3] = this.s3;
    kernel.fill(out, i, (pairsEnd - i) / 2, threshold, keep);
    this.s0 = st[0]!;
    this.s1 = st[1]!;
    this.s2 = st[2]!;
    this.s3 = st[3]!;
  }
}

/**
 * A compiled copy of fillDropoutMaskRange's pair loop (the trainer's WebAssembly kernel, train/engine.ts):
 * the same stream and the same float32 values, faster than the JavaScript loop.
 */
export interface MaskPairKernel {
  /** xoshiro128**'s four state words: written before fill, read back after. */
  readonly state: Int32Array;
  /** out[from, from + 2·pairs) from `state`, advancing it by `pairs` draws. */
  fill(out: Float32Array, from: number, pairs: number, threshold: number, keep: number): void;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * The trainer's named random streams: each name's offset k gives the seed `seed · 7919 + k` (7919 a
 * prime, so the streams of neighbouring seeds do not meet). The offsets are the ones the trainer has
 * always used, so the shipped models reproduce byte for byte; names sharing an offset share a stream by
 * that history (validation metrics and tuning scores; test metrics and the calibration split), which is
 * harmless because they draw on different rows. Separate streams let one change (e.g. the epochs) leave
 * the others (the split, the initialisation) as they were.
 */
export const STREAMS = {
  /** `--test-split`: the test rows held out of --data. */
  testSplit: 0,
  /** The validation rows split off the training rows (and the cross-fitting folds, which extend it). */
  validationSplit: 1,
  /** Initial weights. */
  init: 2,
  /** Minibatch order. */
  shuffle: 3,
  /** Training dropout masks. */
  dropout: 4,
  /** MC masks of the calibration. */
  calibration: 5,
  /** MC masks of the validation metrics. */
  validationMetrics: 6,
  /** MC masks that score a tuning checkpoint (one stream for every candidate: paired comparisons). */
  tuneScore: 6,
  /** MC masks of the test metrics. */
  testMetrics: 7,
  /** `--calibration holdout`: the calibration rows held out of the refit. */
  calibrationSplit: 7,
  /** scripts/uci-lab.mts: MC masks of a lab run's test predictions. */
  labTest: 8,
  /** MC masks of cross-fitting fold k: offset 15 + k. */
  crossFitFold: 15,
  /** An ensemble's member j ≥ 1 (src/train/ensemble.ts): its run's seed, and its MC masks' of a stream: offset 40 + j. */
  ensembleMember: 40,
} as const;

export type StreamName = keyof typeof STREAMS;

/** The seed of stream `name` (its `index`-th one for indexed streams such as `crossFitFold`) of a run's `seed`. */
export function stream(seed: number, name: StreamName, index = 0): number {
  return seed * 7919 + STREAMS[name] + index;
}

const seedPool = new Uint32Array(1024);
let seedPoolNext = seedPool.length;

/**
 * A fresh seed from the OS when a caller gave none. Drawn 1024 at a time: one getRandomValues call per
 * request cost 7% of an MC request's CPU (a syscall each).
 */
export function randomSeed(): number {
  if (seedPoolNext === seedPool.length) {
    globalThis.crypto.getRandomValues(seedPool);
    seedPoolNext = 0;
  }
  return seedPool[seedPoolNext++]!;
}
