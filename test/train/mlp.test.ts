import { describe, expect, it } from 'vitest';
import {
  type Activation,
  backward,
  createMlp,
  createWorkspace,
  crossEntropyLoss,
  drawMasks,
  forward,
  mseLoss,
  type MlpSpec,
} from '../../src/train/mlp.js';
import { Adam } from '../../src/train/optim.js';
import { Rng } from '../../src/util/rng.js';

function lossOf(spec: MlpSpec, task: 'regression' | 'classification', seed: number) {
  const rng = new Rng(seed);
  const net = createMlp(spec, rng, Float64Array);
  const rows = 5;
  const x = Float64Array.from({ length: rows * spec.inputs }, () => rng.normal());
  const y =
    task === 'regression'
      ? Float64Array.from({ length: rows * spec.outputs }, () => rng.normal())
      : Float64Array.from({ length: rows }, () => rng.int(spec.outputs));
  const ws = createWorkspace(spec, rows, Float64Array);
  // a fixed dropout mask: the gradient is checked for the function with that mask
  const masks = drawMasks(spec, rows, new Rng(seed + 1)).map((m) => Float64Array.from(m));
  const dOut = new Float64Array(rows * spec.outputs);
  const f = (): number => {
    const out = forward(net, x, rows, ws, masks);
    return task === 'regression'
      ? mseLoss(out, y, rows, spec.outputs, dOut)
      : crossEntropyLoss(out, y, rows, spec.outputs, dOut);
  };
  return { net, x, rows, ws, masks, dOut, f };
}

describe('gradient check (central finite differences, float64, fixed dropout masks)', () => {
  const cases: [Activation, 'regression' | 'classification', number[]][] = [
    ['relu', 'regression', [7, 6]],
    ['tanh', 'regression', [6]],
    ['gelu', 'classification', [5, 4, 6]],
    ['tanh', 'classification', [8]],
    // a layer wider than the generated kernels take (64 inputs): the generic loops
    ['tanh', 'regression', [70, 5]],
    ['relu', 'classification', [70]],
    ['gelu', 'classification', [66]],
  ];
  for (const [activation, task, hidden] of cases) {
    it(`${activation} ${task} hidden ${hidden.join(',')}: every parameter`, () => {
      const spec: MlpSpec = {
        inputs: 4,
        hidden,
        outputs: task === 'regression' ? 2 : 3,
        activation,
        dropout: hidden.map(() => 0.3),
      };
      const { net, x, rows, ws, masks, dOut, f } = lossOf(spec, task, 42);
      f();
      net.grads.fill(0);
      backward(net, x, rows, ws, masks, dOut);
      const analytic = Float64Array.from(net.grads);
      const h = 1e-6;
      let worst = 0;
      for (let i = 0; i < net.params.length; i++) {
        const orig = net.params[i]!;
        net.params[i] = orig + h;
        const up = f();
        net.params[i] = orig - h;
        const down = f();
        net.params[i] = orig;
        const numeric = (up - down) / (2 * h);
        const err = Math.abs(numeric - analytic[i]!) / Math.max(1e-6, Math.abs(numeric) + Math.abs(analytic[i]!));
        // ReLU kinks can sit within h of a pre-activation; none do for this seed
        worst = Math.max(worst, err);
      }
      expect(worst).toBeLessThan(1e-5);
      // a wrong gradient would fail: perturbing one entry is detected
      expect(analytic.some((g) => Math.abs(g) > 1e-4)).toBe(true);
    });
  }
});

describe('dropout semantics (inverted dropout like torch.nn.Dropout)', () => {
  it('zeroes a fraction p and preserves the mean in training mode', () => {
    const p = 0.3;
    const mask = new Rng(7).fillDropoutMask(new Float32Array(200_000), p);
    const zeros = mask.filter((v) => v === 0).length / mask.length;
    const mean = mask.reduce((a, b) => a + b, 0) / mask.length;
    // binomial standard error √(p(1−p)/n) ≈ 0.001
    expect(Math.abs(zeros - p)).toBeLessThan(0.005);
    expect(Math.abs(mean - 1)).toBeLessThan(0.01);
    // p is resolved to 2^-16; the keep scale matches it, so E[mask] = 1 exactly
    const keep = [...new Set(mask)].filter((v) => v !== 0);
    expect(keep).toHaveLength(1);
    expect(Math.abs(keep[0]! - 1 / (1 - p))).toBeLessThan(1e-4);
  });
  it('is the identity in eval mode and changes outputs in training mode', () => {
    const spec: MlpSpec = { inputs: 3, hidden: [16], outputs: 1, activation: 'relu', dropout: [0.5] };
    const net = createMlp(spec, new Rng(1));
    const x = Float32Array.from([0.5, -1, 2]);
    const ws = createWorkspace(spec, 1);
    const e1 = forward(net, x, 1, ws, null)[0];
    const e2 = forward(net, x, 1, ws, null)[0];
    expect(e1).toBe(e2);
    // eval mode equals a hand-written forward without dropout
    const l0 = net.layers[0]!,
      l1 = net.layers[1]!;
    let manual = l1.b[0]!;
    for (let o = 0; o < 16; o++) {
      let z = l0.b[o]!;
      for (let i = 0; i < 3; i++) z += x[i]! * l0.w[o * 3 + i]!;
      manual += Math.max(0, z) * l1.w[o]!;
    }
    expect(e1).toBeCloseTo(manual, 5);
    const rng = new Rng(3);
    const outs = new Set(Array.from({ length: 20 }, () => forward(net, x, 1, ws, drawMasks(spec, 1, rng))[0]));
    expect(outs.size).toBeGreaterThan(5);
  });
  it('p = 0 keeps every unit', () => {
    expect(new Rng(1).fillDropoutMask(new Float32Array(100), 0).every((v) => v === 1)).toBe(true);
  });
});

describe('Adam', () => {
  it('matches PyTorch Adam(weight_decay) on a hand-computed first step', () => {
    const params = Float64Array.from([1, -2]);
    const grads = Float64Array.from([0.5, 0.1]);
    new Adam(2, { lr: 0.1, weightDecay: 0.01 }).step(params, grads);
    // step 1: m̂ = g', v̂ = g'², so θ ← θ − lr·g'/(|g'| + eps) = θ − lr·sign(g')
    expect(params[0]).toBeCloseTo(0.9, 6);
    expect(params[1]).toBeCloseTo(-2.1, 6);
  });
  it('minimises a quadratic', () => {
    const p = Float64Array.from([3, -4]);
    const g = new Float64Array(2);
    const opt = new Adam(2, { lr: 0.05 });
    for (let i = 0; i < 2000; i++) {
      g[0] = 2 * (p[0]! - 1);
      g[1] = 2 * (p[1]! + 2);
      opt.step(p, g);
    }
    expect(p[0]).toBeCloseTo(1, 3);
    expect(p[1]).toBeCloseTo(-2, 3);
  });
});
