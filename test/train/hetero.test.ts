import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { Dataset } from '../../src/train/data.js';
import { decodeModel } from '../../src/onnx-proto/proto.js';
import { exportOnnx } from '../../src/train/export-onnx.js';
import {
  backward,
  createMlp,
  createWorkspace,
  drawMasks,
  forward,
  gaussianNllLoss,
  type MlpSpec,
} from '../../src/train/mlp.js';
import { DEFAULT_TRAIN_OPTIONS, evalForward, mcPredictive, standardise, train } from '../../src/train/train.js';
import { Rng } from '../../src/util/rng.js';

const KEEP_DROPOUT = {
  graphOptimizationLevel: 'all',
  extra: { optimization: { disable_specified_optimizers: 'EliminateDropout' } },
} as ort.InferenceSession.SessionOptions;

/** y = sin(2x₀) + 0.5·x₁ + ε, ε ~ N(0, (0.05 + 0.4·|x₀|)²): the noise grows with |x₀|. */
function heteroData(n: number, seed: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float64Array(n * 2);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const a = rng.uniform(-2, 2);
    const b = rng.normal();
    x[2 * i] = a;
    x[2 * i + 1] = b;
    y[i] = 10 + 3 * (Math.sin(2 * a) + 0.5 * b + (0.05 + 0.4 * Math.abs(a)) * rng.normal());
  }
  return { task: 'regression', features: ['a', 'b'], target: 'y', x, y, labels: [], n, f: 2 };
}

describe('heteroscedastic Gaussian NLL', () => {
  it('the loss is ½(log 2π + s + (y − μ)²e^(−s)) averaged over rows, and its gradient matches finite differences', () => {
    const rng = new Rng(3);
    const rows = 7;
    const out = Float64Array.from({ length: rows * 2 }, (_, i) => (i % 2 ? rng.uniform(-3, 3) : rng.normal()));
    const y = Float64Array.from({ length: rows }, () => 2 * rng.normal());
    const d = new Float64Array(rows * 2);
    const loss = gaussianNllLoss(out, y, rows, d);
    let want = 0;
    for (let r = 0; r < rows; r++)
      want += 0.5 * (Math.log(2 * Math.PI) + out[2 * r + 1]! + (y[r]! - out[2 * r]!) ** 2 * Math.exp(-out[2 * r + 1]!));
    expect(loss).toBeCloseTo(want / rows, 12);
    const scratch = new Float64Array(rows * 2);
    const h = 1e-6;
    for (let i = 0; i < out.length; i++) {
      const o = out[i]!;
      out[i] = o + h;
      const up = gaussianNllLoss(out, y, rows, scratch);
      out[i] = o - h;
      const down = gaussianNllLoss(out, y, rows, scratch);
      out[i] = o;
      expect(Math.abs((up - down) / (2 * h) - d[i]!)).toBeLessThan(1e-7);
    }
    // at the optimum of one row, μ = y and s = log (y − μ)² … the gradient in s vanishes when e^s = (y − μ)²
    const one = Float64Array.from([1, Math.log(4)]);
    const g = new Float64Array(2);
    gaussianNllLoss(one, Float64Array.from([3]), 1, g);
    expect(Math.abs(g[1]!)).toBeLessThan(1e-12);
  });

  it('β-NLL: the gradient is that of the NLL weighted by (σ²)^β held constant (finite differences), the loss the plain NLL', () => {
    const rng = new Rng(11);
    const rows = 6;
    const out = Float64Array.from({ length: rows * 2 }, (_, i) => (i % 2 ? rng.uniform(-3, 3) : rng.normal()));
    const y = Float64Array.from({ length: rows }, () => 2 * rng.normal());
    for (const beta of [0.5, 1]) {
      const d = new Float64Array(rows * 2);
      const loss = gaussianNllLoss(out, y, rows, d, beta);
      const plain = gaussianNllLoss(out, y, rows, new Float64Array(rows * 2));
      expect(loss).toBe(plain);
      // the weighted objective (1/rows)·Σ_r w_r·NLL_r with w_r = exp(β·s_r) frozen at the current s_r
      const w = Array.from({ length: rows }, (_, r) => Math.exp(beta * out[2 * r + 1]!));
      const weighted = (o: Float64Array): number => {
        let t = 0;
        for (let r = 0; r < rows; r++)
          t +=
            w[r]! * 0.5 * (Math.log(2 * Math.PI) + o[2 * r + 1]! + (y[r]! - o[2 * r]!) ** 2 * Math.exp(-o[2 * r + 1]!));
        return t / rows;
      };
      const h = 1e-6;
      for (let i = 0; i < out.length; i++) {
        const o = out[i]!;
        out[i] = o + h;
        const up = weighted(out);
        out[i] = o - h;
        const down = weighted(out);
        out[i] = o;
        expect(Math.abs((up - down) / (2 * h) - d[i]!)).toBeLessThan(1e-7);
      }
      if (beta === 1) {
        // β = 1: the mean's gradient is that of ½(y − μ)²/rows whatever the predicted variance
        for (let r = 0; r < rows; r++) expect(d[2 * r]!).toBeCloseTo(-(y[r]! - out[2 * r]!) / rows, 12);
      }
    }
  });

  it('a log-variance beyond ±20 is clamped: finite loss, no gradient through s', () => {
    const d = new Float64Array(2);
    const loss = gaussianNllLoss(Float64Array.from([0, -500]), Float64Array.from([1]), 1, d);
    expect(Number.isFinite(loss)).toBe(true);
    expect(d[1]).toBe(0);
  });

  it('gradient check through the network (float64, fixed dropout masks): every parameter', () => {
    const spec: MlpSpec = { inputs: 3, hidden: [6, 5], outputs: 2, activation: 'tanh', dropout: [0.3, 0.2] };
    const rng = new Rng(11);
    const net = createMlp(spec, rng, Float64Array);
    const rows = 6;
    const x = Float64Array.from({ length: rows * 3 }, () => rng.normal());
    const y = Float64Array.from({ length: rows }, () => rng.normal());
    const ws = createWorkspace(spec, rows, Float64Array);
    const masks = drawMasks(spec, rows, new Rng(12)).map((m) => Float64Array.from(m));
    const dOut = new Float64Array(rows * 2);
    const f = (): number => gaussianNllLoss(forward(net, x, rows, ws, masks), y, rows, dOut);
    f();
    net.grads.fill(0);
    backward(net, x, rows, ws, masks, dOut);
    const analytic = Float64Array.from(net.grads);
    const h = 1e-6;
    let worst = 0;
    for (let i = 0; i < net.params.length; i++) {
      const o = net.params[i]!;
      net.params[i] = o + h;
      const up = f();
      net.params[i] = o - h;
      const down = f();
      net.params[i] = o;
      const numeric = (up - down) / (2 * h);
      worst = Math.max(
        worst,
        Math.abs(numeric - analytic[i]!) / Math.max(1e-6, Math.abs(numeric) + Math.abs(analytic[i]!)),
      );
    }
    expect(worst).toBeLessThan(1e-5);
    expect(analytic.some((g) => Math.abs(g) > 1e-3)).toBe(true);
  });
});

describe('heteroscedastic training, export and serving formula', () => {
  const data = heteroData(600, 1);
  const opts = {
    ...DEFAULT_TRAIN_OPTIONS,
    noise: 'heteroscedastic' as const,
    hidden: [32],
    dropout: [0.05],
    epochs: 150,
    mcSamples: 50,
    weightDecay: 0,
  };

  for (const engine of ['wasm', 'js'] as const) {
    it(`${engine} engine: the predicted noise grows with |x₀| as the data's does`, () => {
      const m = train(data, { ...opts, engine });
      expect(m.engine).toBe(engine);
      expect(m.noise).toBe('heteroscedastic');
      const rows = [
        [0, 0],
        [1.8, 0],
        [-1.8, 0],
      ];
      const xs = standardise(Float64Array.from(rows.flat()), 3, 2, m.xMean, m.xStd);
      const p = mcPredictive(m, xs, 3, 200, 1);
      const sd = Array.from(p.aleatoricVar!, Math.sqrt);
      // true σ: 3·0.05 = 0.15 at x₀ = 0 and 3·0.77 = 2.31 at |x₀| = 1.8
      expect(sd[1]! / sd[0]!).toBeGreaterThan(3);
      expect(sd[2]! / sd[0]!).toBeGreaterThan(3);
      expect(sd[1]!).toBeGreaterThan(1.2);
      expect(sd[1]!).toBeLessThan(4);
    });
  }

  it("exports prediction and log_variance (target units); onnxruntime MC agrees with the trainer's predictive formula", async () => {
    const m = train(data, opts);
    const bytes = exportOnnx(m, {});
    const graph = decodeModel(bytes).graph!;
    expect(graph.output.map((o) => o.name)).toEqual(['prediction', 'log_variance']);
    const session = await ort.InferenceSession.create(bytes, KEEP_DROPOUT);
    const row = Float32Array.from([1.2, -0.3]);
    // eval mode: both outputs equal the TypeScript forward (log-variance shifted by 2·log y_std)
    const ev = await session.run({
      input: new ort.Tensor('float32', row, [1, 2]),
      training_mode: new ort.Tensor('bool', [false], []),
    });
    const ts = evalForward(m.net, standardise(Float64Array.from(row), 1, 2, m.xMean, m.xStd), 1);
    expect((ev.prediction!.data as Float32Array)[0]).toBeCloseTo(ts[0]! * m.yStd + m.yMean, 4);
    expect((ev.log_variance!.data as Float32Array)[0]).toBeCloseTo(ts[1]! + 2 * Math.log(m.yStd), 4);
    // MC: onnxruntime's own Dropout on T tiled copies (an independent sampler) vs mcPredictive
    const T = 4000;
    const tiled = new Float32Array(T * 2);
    for (let t = 0; t < T; t++) tiled.set(row, 2 * t);
    const mc = await session.run({
      input: new ort.Tensor('float32', tiled, [T, 2]),
      training_mode: new ort.Tensor('bool', [true], []),
    });
    const mu = mc.prediction!.data as Float32Array;
    const lv = mc.log_variance!.data as Float32Array;
    let mean = 0;
    let alea = 0;
    for (let t = 0; t < T; t++) {
      mean += mu[t]!;
      alea += Math.exp(lv[t]!);
    }
    mean /= T;
    alea /= T;
    let epi = 0;
    for (let t = 0; t < T; t++) epi += (mu[t]! - mean) ** 2;
    epi /= T - 1;
    const p = mcPredictive(m, standardise(Float64Array.from(row), 1, 2, m.xMean, m.xStd), 1, T, 5);
    expect(epi).toBeGreaterThan(0);
    expect(Math.abs(Math.sqrt(epi + alea) / Math.sqrt(p.epistemicVar[0]! + p.aleatoricVar![0]!) - 1)).toBeLessThan(
      0.05,
    );
    expect(Math.abs(alea / p.aleatoricVar![0]! - 1)).toBeLessThan(0.05);
    expect(Math.abs(mean - p.mean[0]!)).toBeLessThan(4 * Math.sqrt(epi / T) + 1e-4);
    await session.release();
  });

  it("input dropout is a Dropout op on the standardised inputs; MC in onnxruntime matches the trainer's", async () => {
    const m = train(data, { ...opts, noise: 'homoscedastic', inputDropout: 0.2 });
    const bytes = exportOnnx(m, {});
    const graph = decodeModel(bytes).graph!;
    const drops = graph.node.filter((n) => n.op_type === 'Dropout');
    expect(drops.map((d) => d.input[0])).toEqual(['x_standardised', 'hidden.0.relu']);
    const session = await ort.InferenceSession.create(bytes, KEEP_DROPOUT);
    const row = Float32Array.from([0.7, 1.1]);
    const T = 4000;
    const tiled = new Float32Array(T * 2);
    for (let t = 0; t < T; t++) tiled.set(row, 2 * t);
    const out = (
      await session.run({
        input: new ort.Tensor('float32', tiled, [T, 2]),
        training_mode: new ort.Tensor('bool', [true], []),
      })
    ).prediction!.data as Float32Array;
    let mean = 0;
    for (const v of out) mean += v;
    mean /= T;
    let v2 = 0;
    for (const v of out) v2 += (v - mean) ** 2;
    const sd = Math.sqrt(v2 / (T - 1));
    const p = mcPredictive(m, standardise(Float64Array.from(row), 1, 2, m.xMean, m.xStd), 1, T, 9);
    expect(Math.abs(sd / Math.sqrt(p.epistemicVar[0]!) - 1)).toBeLessThan(0.06);
    expect(Math.abs(mean - p.mean[0]!)).toBeLessThan(((4 * sd) / Math.sqrt(T)) * Math.SQRT2);
    await session.release();
  });
});
