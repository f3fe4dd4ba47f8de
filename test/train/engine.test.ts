import { describe, expect, it } from 'vitest';
import { createEngine, wasmSupported } from '../../src/train/engine.js';
import { backward, createMlp, createWorkspace, drawMasks, forward, type MlpSpec } from '../../src/train/mlp.js';
import { blocks } from '../../src/train/wasm/kernels.js';
import { Adam } from '../../src/train/optim.js';
import { Rng } from '../../src/util/rng.js';

/** max |a − b| relative to the largest |b| (float32 kernels against a float64 reference). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>, n = b.length): number {
  let worst = 0;
  let scale = 1e-12;
  for (let i = 0; i < n; i++) scale = Math.max(scale, Math.abs(b[i]!));
  for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst / scale;
}

/**
 * The WebAssembly kernels against the float64 JavaScript kernels (whose gradients the finite-difference
 * test in mlp.test.ts checks): same parameters, inputs, masks and dL/dout.
 */
function compare(inputs: number, hidden: number[], outputs: number, rows: number, seed: number) {
  const spec: MlpSpec = {
    inputs,
    hidden,
    outputs,
    activation: 'relu',
    dropout: hidden.map((_, i) => (i % 2 ? 0.5 : 0.3)),
  };
  const rng = new Rng(seed);
  const net = createMlp(spec, rng);
  const ref = createMlp(spec, new Rng(0), Float64Array);
  ref.params.set(net.params);
  const valRows = 7;
  const xVal = Float32Array.from({ length: valRows * inputs }, () => rng.normal());
  const engine = createEngine(net, rows, xVal, valRows, 'wasm');
  expect(engine.kind).toBe('wasm');
  for (let i = 0; i < rows * inputs; i++) engine.xb[i] = rng.normal();
  drawMasks(spec, rows, rng, engine.masks);
  for (let i = 0; i < rows * outputs; i++) engine.dOut[i] = rng.normal();

  const ws = createWorkspace(spec, rows, Float64Array);
  const x64 = Float64Array.from(engine.xb.subarray(0, rows * inputs));
  const masks64 = engine.masks.map((m) => Float64Array.from(m));
  const out64 = forward(ref, x64, rows, ws, masks64);
  ref.grads.fill(0);
  backward(ref, x64, rows, ws, masks64, Float64Array.from(engine.dOut));

  const out = engine.forward(rows);
  // stale gradients must not leak in: the kernels write, not accumulate
  net.grads.fill(123);
  engine.backward(rows);
  const evalRef = forward(ref, Float64Array.from(xVal), valRows, createWorkspace(spec, valRows, Float64Array), null);
  return {
    out: relErr(out, out64, rows * outputs),
    grads: relErr(net.grads, ref.grads),
    eval: relErr(engine.evalOutputs(), evalRef, valRows * outputs),
    net,
    ref,
    engine,
  };
}

describe.runIf(wasmSupported())('WebAssembly SIMD training kernels', () => {
  it('splits lanes into register blocks with the tail in the last one', () => {
    expect(blocks(50)).toEqual([
      { start: 0, vecs: 8, tail: 0 },
      { start: 32, vecs: 4, tail: 2 },
    ]);
    expect(blocks(3)).toEqual([{ start: 0, vecs: 0, tail: 3 }]);
    expect(blocks(32)).toEqual([{ start: 0, vecs: 8, tail: 0 }]);
    expect(blocks(33)).toEqual([
      { start: 0, vecs: 8, tail: 0 },
      { start: 32, vecs: 0, tail: 1 },
    ]);
  });

  // shapes that reach every code path: dot-product (1–3 outputs) and broadcast (≥ 4) layers, tails of
  // 1–3 lanes, several register blocks, one to three hidden layers, a single row and a full batch
  const shapes: [number, number[], number, number][] = [
    [10, [50], 1, 32],
    [10, [50], 1, 1],
    [13, [64, 64], 3, 32],
    [3, [1], 1, 5],
    [5, [4], 2, 9],
    [7, [33, 5], 4, 17],
    [6, [70], 9, 8],
    [2, [3, 6, 11], 1, 3],
    [37, [2], 5, 4],
  ];
  for (const [inputs, hidden, outputs, rows] of shapes) {
    it(`${inputs} → ${hidden.join(' → ')} → ${outputs}, ${rows} rows: forward, gradients and evaluation match float64 JS`, () => {
      const r = compare(inputs, hidden, outputs, rows, inputs * 100 + rows);
      expect(r.out).toBeLessThan(2e-6);
      expect(r.grads).toBeLessThan(2e-6);
      expect(r.eval).toBeLessThan(2e-6);
      // the comparison has teeth: gradients are not all zero
      expect(r.net.grads.some((g) => Math.abs(g) > 1e-3)).toBe(true);
    });
  }

  it('sees parameter changes after paramsChanged (the transposed weights are refreshed)', () => {
    const r = compare(10, [50], 4, 8, 3);
    for (let i = 0; i < r.net.params.length; i++) {
      r.net.params[i]! *= -0.5;
      r.ref.params[i]! *= -0.5;
    }
    r.engine.paramsChanged();
    const out = Float64Array.from(r.engine.forward(8));
    const ws = createWorkspace(r.net.spec, 8, Float64Array);
    const want = forward(
      r.ref,
      Float64Array.from(r.engine.xb),
      8,
      ws,
      r.engine.masks.map((m) => Float64Array.from(m)),
    );
    expect(relErr(out, want, 32)).toBeLessThan(2e-6);
  });

  it('evaluates validation sets larger than one chunk (1024 rows)', () => {
    const spec: MlpSpec = { inputs: 4, hidden: [9], outputs: 2, activation: 'relu', dropout: [0.2] };
    const net = createMlp(spec, new Rng(5));
    const rng = new Rng(6);
    const n = 2500;
    const xVal = Float32Array.from({ length: n * 4 }, () => rng.normal());
    const want = Float64Array.from(forward(net, xVal, n, createWorkspace(spec, n), null));
    const got = createEngine(net, 32, xVal, n, 'wasm').evalOutputs();
    expect(relErr(got, want)).toBeLessThan(2e-6);
  });

  it("draws the JavaScript loop's dropout masks to the bit, and leaves the stream where it leaves it", () => {
    // odd widths and rows: leftover half draws cross layers and calls; rates at both ends of the 16-bit grid
    for (const [hidden, dropout, rows] of [
      [[7, 5], [0.3, 0.5], 3],
      [[200], [0.05], 128],
      [[50, 50, 9], [0.2, 1 / 65536, 0.99998], 33],
    ] as [number[], number[], number][]) {
      const spec: MlpSpec = { inputs: 3, hidden, outputs: 1, activation: 'relu', dropout };
      const engine = createEngine(createMlp(spec, new Rng(1)), rows, new Float32Array(3), 1, 'wasm');
      const [viaKernel, viaJs] = [new Rng(9), new Rng(9)];
      for (const n of [rows, rows - 1, 1, rows]) {
        engine.drawMasks(viaKernel, n);
        const want = drawMasks(spec, n, viaJs);
        for (const [l, m] of want.entries()) expect(engine.masks[l]!.subarray(0, m.length)).toEqual(m);
      }
      expect(viaKernel.nextU32()).toBe(viaJs.nextU32());
      expect(viaKernel.fillDropoutMask(new Float32Array(3), 0.5)).toEqual(
        viaJs.fillDropoutMask(new Float32Array(3), 0.5),
      );
    }
  });

  it("updates the parameters as Adam's JavaScript loop does, to the bit (moments included)", () => {
    const spec: MlpSpec = { inputs: 2, hidden: [5], outputs: 1, activation: 'relu', dropout: [0.1] };
    const net = createMlp(spec, new Rng(4));
    expect(net.params.length % 2).toBe(1); // an odd count: the last parameter is left to the loop
    const engine = createEngine(net, 4, new Float32Array(2), 1, 'wasm');
    const ref = Float32Array.from(net.params);
    const opts = { lr: 0.01, weightDecay: 3e-3 };
    const [viaKernel, viaJs] = [new Adam(ref.length, opts, engine.adamKernel), new Adam(ref.length, opts)];
    const rng = new Rng(5);
    for (let step = 0; step < 5; step++) {
      for (let i = 0; i < ref.length; i++) net.grads[i] = rng.normal() * 10 ** (step - 2);
      const grads = Float32Array.from(net.grads);
      viaKernel.step(net.params, net.grads);
      viaJs.step(ref, grads);
      expect(net.params).toEqual(ref);
    }
    expect(engine.adamKernel!.m).toEqual((viaJs as unknown as { m: Float64Array }).m);
    expect(engine.adamKernel!.v).toEqual((viaJs as unknown as { v: Float64Array }).v);
  });

  it('falls back to JavaScript for other activations, and refuses to force wasm for them', () => {
    const spec: MlpSpec = { inputs: 2, hidden: [3], outputs: 1, activation: 'tanh', dropout: [0.1] };
    expect(createEngine(createMlp(spec, new Rng(1)), 4, new Float32Array(2), 1).kind).toBe('js');
    expect(() => createEngine(createMlp(spec, new Rng(1)), 4, new Float32Array(2), 1, 'wasm')).toThrow(/ReLU/);
  });
});
