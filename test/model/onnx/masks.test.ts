import { describe, expect, it } from 'vitest';
import { MaskStream, wasmMasks } from '../../../src/model/onnx/masks.js';

describe('MaskStream (WebAssembly SIMD dropout masks)', () => {
  it('runs on WebAssembly here', () => {
    expect(wasmMasks()).toBe(true);
  });

  it('gives exactly the stream of the plain-JS reference, for any split of the units into calls', () => {
    for (const p of [0.3, 0.5, 0.05, 0.999]) {
      for (const seed of [0, 1, 123456789, 2 ** 40 + 3]) {
        const sizes = [1, 7, 8, 9, 50, 3, 1000, 5, 0, 17];
        const n = sizes.reduce((a, b) => a + b, 0);
        const fast = new Float32Array(n);
        const ref = new Float32Array(n);
        const a = new MaskStream(seed);
        const b = new MaskStream(seed, false);
        let at = 0;
        for (const k of sizes) {
          a.fill(fast, at, at + k, p);
          b.fill(ref, at, at + k, p);
          at += k;
        }
        expect(fast).toEqual(ref);
        // and one call over the whole buffer gives the same units
        const whole = new Float32Array(n);
        new MaskStream(seed).fill(whole, 0, n, p);
        expect(whole).toEqual(fast);
      }
    }
  });

  it('a fill larger than one generation chunk (64 Ki units) gives the reference stream, memory bounded', () => {
    const n = 3 * 65_536 + 12_345; // a 4080-row run of 200 units is 816 000
    const fast = new Float32Array(n);
    const ref = new Float32Array(n);
    new MaskStream(77).fill(fast, 0, 5, 0.2);
    new MaskStream(77).fill(fast, 0, n, 0.2); // a fresh stream over the same memory
    new MaskStream(77, false).fill(ref, 0, n, 0.2);
    expect(fast).toEqual(ref);
    const halves = new Float32Array(n);
    const st = new MaskStream(77);
    st.fill(halves, 0, 100_001, 0.2);
    st.fill(halves, 100_001, n, 0.2);
    expect(halves).toEqual(ref);
  });

  it('fillBatch lays each stream out sample-major exactly as its own contiguous fill', () => {
    const rows = [1, 3, 2];
    const T = 7;
    const total = 6;
    // rowSize 5: no stream's sample is whole steps of 8 (generated, then scattered); 8: every stream's is
    // (generated in place); 4: some are. `used`: units a stream gave before the batch (left-over units pending)
    for (const [rowSize, used] of [
      [5, 0],
      [8, 0],
      [4, 0],
      [8, 3],
      [16, 8],
    ] as const) {
      for (const useWasm of [true, false]) {
        const stream = (j: number): MaskStream => {
          const st = new MaskStream(10 + j, useWasm);
          if (used) st.fill(new Float32Array(used), 0, used, 0.4);
          return st;
        };
        const out = new Float32Array(T * total * rowSize);
        MaskStream.fillBatch(
          rows.map((_, j) => stream(j)),
          rows,
          T,
          rowSize,
          0.4,
          out,
        );
        let off = 0;
        rows.forEach((r, j) => {
          const alone = new Float32Array(T * r * rowSize);
          stream(j).fill(alone, 0, alone.length, 0.4);
          for (let t = 0; t < T; t++) {
            expect(Array.from(out.subarray((t * total + off) * rowSize, (t * total + off + r) * rowSize))).toEqual(
              Array.from(alone.subarray(t * r * rowSize, (t + 1) * r * rowSize)),
            );
          }
          off += r;
        });
      }
    }
  });

  it('a stream goes on after fillBatch as it would after a fill of the same units', () => {
    for (const rowSize of [8, 5]) {
      const a = new MaskStream(3);
      const b = new MaskStream(3, false);
      MaskStream.fillBatch([a], [2], 5, rowSize, 0.3, new Float32Array(10 * rowSize));
      b.fill(new Float32Array(10 * rowSize), 0, 10 * rowSize, 0.3);
      const [next, ref] = [new Float32Array(37), new Float32Array(37)];
      a.fill(next, 0, 37, 0.3);
      b.fill(ref, 0, 37, 0.3);
      expect(next).toEqual(ref);
    }
  });

  it('fillBatch lends its masks in place: the same values, untouched by fills while lent, then given back', () => {
    const rows = [2, 1];
    const [T, rowSize, total] = [9, 6, 3];
    const streams = (): MaskStream[] => rows.map((_, j) => new MaskStream(40 + j));
    const copied = new Float32Array(T * total * rowSize);
    expect(MaskStream.fillBatch(streams(), rows, T, rowSize, 0.3, copied)).toBe(copied);
    const out = new Float32Array(T * total * rowSize);
    const lent = MaskStream.fillBatch(streams(), rows, T, rowSize, 0.3, out, true);
    expect(lent).not.toBe(out);
    expect(lent).toEqual(copied);
    const kept = Float32Array.from(lent);
    // while lent: a second batch and fills small and large (these would grow the memory) leave it alone
    const second = new Float32Array(T * total * rowSize);
    expect(MaskStream.fillBatch(streams(), rows, T, rowSize, 0.3, second, true)).toBe(second);
    expect(second).toEqual(copied);
    const small = new Float32Array(20);
    const large = new Float32Array(70_000);
    new MaskStream(5).fill(small, 0, small.length, 0.5);
    new MaskStream(6).fill(large, 0, large.length, 0.5);
    expect(lent).toEqual(kept);
    const [refSmall, refLarge] = [new Float32Array(20), new Float32Array(70_000)];
    new MaskStream(5, false).fill(refSmall, 0, refSmall.length, 0.5);
    new MaskStream(6, false).fill(refLarge, 0, refLarge.length, 0.5);
    expect(small).toEqual(refSmall);
    expect(large).toEqual(refLarge);
    // given back, the next batch may borrow again
    MaskStream.release(lent);
    const again = MaskStream.fillBatch(streams(), rows, T, rowSize, 0.3, new Float32Array(T * total * rowSize), true);
    expect(again).toEqual(copied);
    MaskStream.release(again);
  });

  it('is a dropout mask: zero with probability p, survivors 1/(1−p), mean 1; lanes uncorrelated', () => {
    const n = 1_000_000;
    for (const p of [0.1, 0.3, 0.5]) {
      const m = new Float32Array(n);
      new MaskStream(7).fill(m, 0, n, p);
      const zeros = m.filter((v) => v === 0).length / n;
      expect(Math.abs(zeros - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
      expect(new Set(m).size).toBe(2);
      expect(Math.fround(1 / (1 - Math.round(p * 65536) / 65536))).toBe(m.find((v) => v !== 0));
      let mean = 0;
      for (const v of m) mean += v;
      expect(Math.abs(mean / n - 1)).toBeLessThan(0.005);
      // neighbours (same step, same lane's halves, next step) are independent: correlation ≈ 0
      for (const lag of [1, 4, 8]) {
        let c = 0;
        for (let i = 0; i + lag < n; i++) c += (m[i]! - 1) * (m[i + lag]! - 1);
        const varM = p / (1 - p);
        expect(Math.abs(c / (n - lag) / varM)).toBeLessThan(0.01);
      }
    }
  });

  it('rates 0 and 1 draw nothing and keep the stream where it was', () => {
    const a = new MaskStream(3);
    const b = new MaskStream(3);
    const one = new Float32Array(10);
    a.fill(one, 0, 10, 0);
    expect(Array.from(one)).toEqual(Array(10).fill(1));
    const x = new Float32Array(20);
    const y = new Float32Array(20);
    a.fill(x, 0, 20, 0.5);
    b.fill(y, 0, 20, 0.5);
    expect(x).toEqual(y);
  });
});
