/**
 * Issue 22, bounded memory: Monte Carlo and evaluation passes run PASS_CHUNK_ROWS rows at a time. The
 * chunks must draw exactly the masks of one pass over all rows, so every statistic is the unchunked
 * one to the bit; the references below are the unchunked implementation (all rows at once).
 */
import { describe, expect, it } from 'vitest';
import { logVarianceBounds, MomentSums } from '../../src/uncertainty/moments.js';
import { createMlp, createWorkspace, drawMasks, forward, type Mlp, type MlpSpec } from '../../src/train/mlp.js';
import {
  type FittedNetwork,
  evalForward,
  mcLogits,
  mcPasses,
  mcPredictive,
  PASS_CHUNK_ROWS,
} from '../../src/train/train.js';
import { Rng } from '../../src/util/rng.js';

/** The unchunked passes: every row at once, masks over all rows (the stream mcPasses must keep). */
function referencePasses(net: Mlp, xs: Float32Array, n: number, samples: number, seed: number): Float32Array[] {
  const ws = createWorkspace(net.spec, n);
  const rng = new Rng(seed);
  const masks = drawMasks(net.spec, n, rng);
  const pIn = net.spec.inputDropout ?? 0;
  const inMask = new Float32Array(n * net.spec.inputs);
  const outs: Float32Array[] = [];
  for (let t = 0; t < samples; t++) {
    let input = xs;
    if (pIn > 0) {
      rng.fillDropoutMask(inMask, pIn);
      input = xs.map((v, i) => v * inMask[i]!);
    }
    drawMasks(net.spec, n, rng, masks);
    outs.push(Float32Array.from(forward(net, input, n, ws, masks)));
  }
  return outs;
}

/** Odd widths and row counts, so that a mask block ends on half a draw and the chunks split it. */
const SPECS: [string, MlpSpec][] = [
  ['one hidden layer', { inputs: 3, hidden: [9], outputs: 1, activation: 'relu', dropout: [0.3] }],
  [
    'input dropout and two hidden layers, heteroscedastic',
    { inputs: 3, hidden: [7, 5], outputs: 2, activation: 'relu', dropout: [0.2, 0.1], inputDropout: 0.25 },
  ],
  ['a layer without dropout', { inputs: 3, hidden: [5, 7], outputs: 1, activation: 'tanh', dropout: [0, 0.4] }],
];

const n = 2 * PASS_CHUNK_ROWS + 77;

function rowsOf(f: number): Float32Array {
  const rng = new Rng(5);
  return Float32Array.from({ length: n * f }, () => rng.normal());
}

function fitted(spec: MlpSpec): FittedNetwork {
  const net = createMlp(spec, new Rng(3));
  return {
    net,
    spec,
    task: 'regression',
    noise: spec.outputs === 2 ? 'heteroscedastic' : 'homoscedastic',
    yMean: 1.5,
    yStd: 2.5,
  } as FittedNetwork;
}

describe('Monte Carlo passes in chunks of rows', () => {
  for (const [what, spec] of SPECS) {
    it(`give every pass's outputs of the unchunked passes to the bit (${what})`, () => {
      const net = createMlp(spec, new Rng(3));
      const xs = rowsOf(spec.inputs);
      const ref = referencePasses(net, xs, n, 3, 11);
      const got = ref.map((r) => new Float32Array(r.length).fill(Number.NaN));
      const starts: number[] = [];
      let t = 0;
      mcPasses(net, xs, n, 3, 11, (out, start, rows) => {
        starts.push(start);
        got[t]!.set(out.subarray(0, rows * spec.outputs), start * spec.outputs);
        if (start + rows === n) t++;
      });
      expect(starts.slice(0, 3)).toEqual([0, PASS_CHUNK_ROWS, 2 * PASS_CHUNK_ROWS]);
      for (let s = 0; s < 3; s++) expect(Buffer.from(got[s]!.buffer).equals(Buffer.from(ref[s]!.buffer))).toBe(true);
    });

    it(`mcPredictive equals the running moments over all rows at once, to the bit (${what})`, () => {
      const m = fitted(spec);
      const xs = rowsOf(spec.inputs);
      const K = spec.outputs;
      const hetero = K === 2;
      const shift = 2 * Math.log(m.yStd);
      const sums = new MomentSums(n, hetero ? logVarianceBounds(shift) : null);
      const mean = new Float64Array(n);
      const logVar = new Float64Array(n);
      for (const out of referencePasses(m.net, xs, n, 4, 21)) {
        for (let i = 0; i < n; i++) {
          mean[i] = out[i * K]! * m.yStd + m.yMean;
          logVar[i] = hetero ? out[i * K + 1]! + shift : 0;
        }
        sums.add(mean, 0, hetero ? logVar : undefined);
      }
      const p = mcPredictive(m, xs, n, 4, 21);
      expect(Array.from(p.mean)).toEqual(Array.from({ length: n }, (_, i) => sums.mean(i)));
      expect(Array.from(p.epistemicVar)).toEqual(Array.from({ length: n }, (_, i) => sums.variance(i)));
      if (hetero)
        expect(Array.from(p.aleatoricVar!)).toEqual(Array.from({ length: n }, (_, i) => sums.noiseVariance(i)));
      else expect(p.aleatoricVar).toBeNull();
    });
  }

  it('mcLogits lays every pass out as samples × rows × classes, as the unchunked passes', () => {
    const spec: MlpSpec = { inputs: 3, hidden: [7], outputs: 3, activation: 'relu', dropout: [0.3] };
    const m = fitted(spec);
    const xs = rowsOf(3);
    const ref = referencePasses(m.net, xs, n, 2, 8);
    const got = mcLogits(m, xs, n, 2, 8);
    expect(Array.from(got)).toEqual([...ref[0]!, ...ref[1]!]);
  });

  it('evalForward in chunks equals one forward pass over every row', () => {
    const spec: MlpSpec = { inputs: 3, hidden: [7, 5], outputs: 2, activation: 'relu', dropout: [0.2, 0.1] };
    const net = createMlp(spec, new Rng(4));
    const xs = rowsOf(3);
    const whole = forward(net, xs, n, createWorkspace(spec, n), null);
    expect(Array.from(evalForward(net, xs, n))).toEqual(Array.from(whole));
  });
});
