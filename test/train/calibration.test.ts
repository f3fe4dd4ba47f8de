import { describe, expect, it } from 'vitest';
import { conformalQuantile, conformalScores } from '../../src/uncertainty/intervals.js';
import { gaussianCrps, gaussianLogLik } from '../../src/uncertainty/scoring.js';
import { normalCdf } from '../../src/util/special-functions.js';
import { regressionMetrics } from '../../src/train/card-metrics.js';
import { calibrateAleatoricStd, calibrateScaleAndNoise, scaledGaussianNll } from '../../src/train/calibrate.js';
import { calibrateRegression } from '../../src/train/train.js';
import { averageProbabilities, fitTemperature } from '../../src/train/temperature.js';
import { Rng } from '../../src/util/rng.js';

describe('split-conformal quantile', () => {
  it('is the ⌈(n+1)·a⌉-th smallest score (+∞ beyond n), checked against a brute count in integers', () => {
    const rng = new Rng(1);
    // levels as fractions num/den so the rank is computed exactly: k = ⌈(n+1)·num/den⌉
    const levels: [number, number][] = [
      [1, 2],
      [4, 5],
      [9, 10],
      [19, 20],
      [1, 10],
      [99, 100],
      [2, 3],
    ];
    for (let n = 1; n <= 60; n++) {
      const scores = conformalScores(
        Array.from({ length: n }, () => rng.normal()),
        new Float64Array(n),
        Float64Array.from({ length: n }, () => 0.5 + rng.next()),
      );
      for (const [num, den] of levels) {
        const q = conformalQuantile(scores, num / den);
        // brute force: the smallest score s with #{scores ≤ s} ≥ (n+1)·a, i.e. den·count ≥ num·(n+1)
        let brute = Infinity;
        for (const s of scores) {
          const count = scores.filter((t) => t <= s).length;
          if (den * count >= num * (n + 1)) {
            brute = Math.min(brute, s);
          }
        }
        expect(q).toBe(brute);
      }
    }
  });
  it('scores are sorted |y − mean| / std', () => {
    const s = conformalScores([1, 5, -2], [0, 1, 0], [1, 2, 4]);
    expect(Array.from(s)).toEqual([0.5, 1, 2]);
  });
  it('covers exchangeable rows at least at the level (simulation, 2000 trials)', () => {
    const rng = new Rng(7);
    const n = 19;
    let covered = 0;
    const trials = 2000;
    for (let t = 0; t < trials; t++) {
      // heavy-tailed scores: a Gaussian quantile would under-cover, the conformal one does not
      const draw = (): number => Math.abs(rng.normal() / Math.max(0.05, Math.abs(rng.normal())));
      const scores = Float64Array.from({ length: n }, draw).sort();
      if (draw() <= conformalQuantile(scores, 0.9)) covered++;
    }
    // exact coverage is ⌈20·0.9⌉/20 = 0.9; binomial SE 0.0067
    expect(covered / trials).toBeGreaterThan(0.9 - 3 * 0.0067);
    expect(covered / trials).toBeLessThan(0.9 + 3 * 0.0067);
    expect(conformalQuantile(Float64Array.from([1, 2, 3]), 0.9)).toBe(Infinity);
  });
});

describe('Gaussian scores', () => {
  it('log-likelihood is the log density of N(mean, std²)', () => {
    expect(gaussianLogLik(1.5, 1, 2)).toBeCloseTo(
      Math.log(Math.exp(-((0.5 / 2) ** 2) / 2) / (2 * Math.sqrt(2 * Math.PI))),
      12,
    );
    expect(gaussianLogLik(0, 0, 1)).toBeCloseTo(-0.5 * Math.log(2 * Math.PI), 12);
  });
  it('CRPS equals ∫ (F(x) − 1{x ≥ y})² dx (numerical integral) and tends to |y − mean| as std → 0', () => {
    for (const [y, mu, sd] of [
      [0.3, 0, 1],
      [4, 1, 0.5],
      [-2, 3, 2.5],
      [10, 10, 3],
    ] as const) {
      // midpoint rule on each side of the step at y
      const side = (a: number, b: number, step: number): number => {
        const steps = 100000;
        const h = (b - a) / steps;
        let sum = 0;
        for (let i = 0; i < steps; i++) sum += (normalCdf((a + (i + 0.5) * h - mu) / sd) - step) ** 2 * h;
        return sum;
      };
      const integral = side(Math.min(y, mu) - 12 * sd, y, 0) + side(y, Math.max(y, mu) + 12 * sd, 1);
      expect(gaussianCrps(y, mu, sd)).toBeCloseTo(integral, 5);
    }
    expect(gaussianCrps(3, 1, 1e-9)).toBeCloseTo(2, 6);
    // known value: CRPS of N(0,1) at its mean is (√2 − 1)/√π
    expect(gaussianCrps(0, 0, 1)).toBeCloseTo((Math.SQRT2 - 1) / Math.sqrt(Math.PI), 12);
  });
  it('regression metrics combine per-row aleatoric variances and report conformal coverage', () => {
    const y = [0, 1, 2, 3];
    const m = regressionMetrics(y, y, [0, 1, 2, 6], [0, 0, 0, 0], [1, 1, 1, 4], [0.5, 1, 2, 3]);
    expect(m.rmse).toBe(0);
    expect(m.rmse_mc).toBeCloseTo(Math.sqrt(9 / 4), 12);
    // the fourth row: |3 − 6| = 3 = 1.5·std (std 2): outside the 90% Gaussian interval (1.645·2 = 3.29 → inside)
    expect(m.coverage_90).toBe(1);
    expect(m.coverage_50).toBe(0.75);
    // conformal q at 90% with 4 scores: rank ⌈5·0.9⌉ = 5 > 4 → +∞: everything covered
    expect(m.conformal_coverage_90).toBe(1);
    expect(m.conformal_interval_width_90).toBe(Infinity);
    expect(m.nll).toBeCloseTo(-(gaussianLogLik(0, 0, 1) * 3 + gaussianLogLik(3, 6, 2)) / 4, 12);
  });
});

describe('temperature scaling', () => {
  function synthetic(T0: number, n: number, samples: number, seed: number) {
    const rng = new Rng(seed);
    const K = 4;
    const z = Float32Array.from({ length: n * K }, () => 3 * rng.normal());
    const labels = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      // label ~ softmax(z / T0)
      const p = averageProbabilities(z.subarray(r * K, (r + 1) * K), 1, 1, K, T0);
      let u = rng.next();
      let k = 0;
      while (k < K - 1 && u > p[k]!) u -= p[k++]!;
      labels[r] = k;
    }
    // every MC sample holds the same logits here, so the MC average is the single softmax
    const logits = new Float32Array(samples * n * K);
    for (let s = 0; s < samples; s++) logits.set(z, s * n * K);
    return { logits, labels, K };
  }
  for (const T0 of [0.5, 1, 2.5]) {
    it(`recovers a known temperature T0 = ${T0} from labels drawn at that temperature`, () => {
      const n = 6000;
      const { logits, labels, K } = synthetic(T0, n, 2, 3);
      const t = fitTemperature(logits, 2, n, K, labels);
      expect(Math.abs(t / T0 - 1)).toBeLessThan(0.06);
    });
  }
  it('a separable validation set does not collapse T to 0 (the prior on log T holds it near 1)', () => {
    // 28 rows, every one right with margin 4: the likelihood alone prefers T → 0
    const n = 28;
    const logits = new Float32Array(n * 3);
    const labels = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      labels[r] = r % 3;
      logits[r * 3 + (r % 3)] = 4;
    }
    const t = fitTemperature(logits, 1, n, 3, labels);
    expect(t).toBeGreaterThan(0.6);
    expect(t).toBeLessThan(1);
  });
  it("divides every sample's logits before the softmax, then averages", () => {
    const logits = Float32Array.from([2, 0, 0, 2]); // two samples of one row, two classes
    const p = averageProbabilities(logits, 2, 1, 2, 2);
    const a = 1 / (1 + Math.exp(-1));
    expect(p[0]).toBeCloseTo((a + (1 - a)) / 2, 6);
    expect(averageProbabilities(Float32Array.from([2, 0]), 1, 1, 2, 0.5)[0]).toBeCloseTo(1 / (1 + Math.exp(-4)), 6);
  });
});

describe('epistemic scale and noise by maximum likelihood', () => {
  /** Residuals r_i ~ N(0, s²·e_i + k_i + σ²) with e_i spread over two decades. */
  const synth = (n: number, s: number, sigma: number, seed: number, other: boolean) => {
    const rng = new Rng(seed);
    const e = Float64Array.from({ length: n }, () => Math.exp(rng.uniform(-3, 1.5)));
    const k = other ? Float64Array.from({ length: n }, () => 0.3 * Math.exp(rng.uniform(-1, 1))) : null;
    const r = Float64Array.from(
      { length: n },
      (_, i) => Math.sqrt(s * s * e[i]! + (k ? k[i]! : 0) + sigma * sigma) * rng.normal(),
    );
    return { r, e, k };
  };
  /** The brute-force optimum over a fine log grid of (s, σ) (σ = 0 included). */
  const brute = (r: Float64Array, e: Float64Array, k: Float64Array | null) => {
    let best = { s: NaN, sigma: NaN, nll: Infinity };
    const S = 150;
    for (let i = 0; i <= S; i++) {
      const s = 0.1 * 1000 ** (i / S);
      for (let j = -1; j <= S; j++) {
        const sigma = j < 0 ? 0 : 1e-3 * 1e4 ** (j / S);
        const v = scaledGaussianNll(r, e, k, s, sigma);
        if (v < best.nll) best = { s, sigma, nll: v };
      }
    }
    return best;
  };

  it('matches a brute-force grid over (s, σ): NLL no higher, and a stationary point', () => {
    for (const [s0, sig0, other, seed] of [
      [2.5, 0.7, false, 1],
      [0.4, 1.5, false, 2],
      [6, 0.05, true, 3],
      [1, 0, true, 4],
    ] as const) {
      const { r, e, k } = synth(200, s0, sig0, seed, other);
      const fit = calibrateScaleAndNoise(r, e, k, 1);
      const b = brute(r, e, k);
      const nll = scaledGaussianNll(r, e, k, fit.epistemicScale, fit.sigma);
      expect(nll).toBeLessThanOrEqual(b.nll + 1e-9);
      // (the parameters themselves may differ where the likelihood is flat along a ridge)
      // and no nudge of either parameter improves it (equal where the likelihood is flat)
      for (const f of [0.99, 1.01]) {
        expect(scaledGaussianNll(r, e, k, fit.epistemicScale * f, fit.sigma)).toBeGreaterThan(nll - 1e-12);
        expect(scaledGaussianNll(r, e, k, fit.epistemicScale, fit.sigma * f + (f > 1 ? 1e-3 : 0))).toBeGreaterThan(
          nll - 1e-12,
        );
      }
    }
  });

  it('recovers the true (s, σ) from many rows', () => {
    const { r, e } = synth(4000, 3, 0.5, 5, false);
    const fit = calibrateScaleAndNoise(r, e, null, 1);
    expect(fit.epistemicScale).toBeGreaterThan(3 * 0.93);
    expect(fit.epistemicScale).toBeLessThan(3 * 1.07);
    expect(fit.sigma).toBeGreaterThan(0.5 * 0.8);
    expect(fit.sigma).toBeLessThan(0.5 * 1.2);
  });

  it('without epistemic variance s is 1 and σ the one-parameter fit', () => {
    const rng = new Rng(6);
    const r = Float64Array.from({ length: 200 }, () => 2 * rng.normal());
    const zero = new Float64Array(200);
    const fit = calibrateScaleAndNoise(r, zero, null, 2);
    expect(fit.epistemicScale).toBe(1);
    expect(fit.sigma).toBeCloseTo(calibrateAleatoricStd(r, zero, 2), 4);
    expect(fit.sigma).toBeCloseTo(Math.sqrt(r.reduce((a, v) => a + v * v, 0) / 200), 4);
  });
});

describe('calibrateRegression', () => {
  it('fits (s, σ) and stores conformal scores of the served std √(s²·MC variance [+ predicted variance] + σ²)', () => {
    const rng = new Rng(9);
    const n = 150;
    for (const hetero of [false, true]) {
      const epistemicVar = Float64Array.from({ length: n }, () => Math.exp(rng.uniform(-2, 1)));
      const aleatoricVar = hetero ? Float64Array.from({ length: n }, () => 0.5 + rng.next()) : null;
      const mean = Float64Array.from({ length: n }, () => 10 * rng.normal());
      const y = Float64Array.from(
        mean,
        (m, i) => m + Math.sqrt(4 * epistemicVar[i]! + (aleatoricVar ? aleatoricVar[i]! : 0) + 0.25) * rng.normal(),
      );
      const c = calibrateRegression({ mean, epistemicVar, aleatoricVar }, y, 3, 'test rows');
      const fit = calibrateScaleAndNoise(
        Float64Array.from(y, (v, i) => v - mean[i]!),
        epistemicVar,
        aleatoricVar,
        3,
      );
      expect(c.epistemicScale).toBe(fit.epistemicScale);
      expect(c.aleatoricStd).toBe(fit.sigma);
      expect(c.epistemicScale).not.toBe(1);
      const want = Array.from(
        y,
        (v, i) =>
          Math.abs(v - mean[i]!) /
          Math.sqrt(
            c.epistemicScale ** 2 * epistemicVar[i]! + (aleatoricVar ? aleatoricVar[i]! : 0) + c.aleatoricStd ** 2,
          ),
      ).sort((a, b) => a - b);
      Array.from(c.conformalScores).forEach((s, i) => {
        expect(s).toBeCloseTo(want[i]!, 12);
      });
    }
  });
});
