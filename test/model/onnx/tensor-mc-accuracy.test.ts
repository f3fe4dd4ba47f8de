/**
 * The tensor sampler (src/model/onnx/tensor-mc.ts) against PyTorch's Monte Carlo references
 * (test/fixtures/tensor/references.json: per element the mean probability and its std over `passes`
 * passes, per position the entropy and mutual information with `*_sd`, their spread over chunks of
 * `chunk` passes), for every fixture at the references' rows and at one row. Tolerances come from the
 * sampling error of both sides: a mean of T samples has sd std/√T, a chunk statistic's sd scales as
 * √(chunk/T), and the plug-in entropy of the mean probabilities has a bias of about Σ_k var_k/(2T·p_k)
 * that differs between T and the references' passes. Z standard errors each (many values are compared:
 * Z = 5 leaves a chance below 1e-2 of one false alarm among the UNet's 6144; the seeds are fixed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClassificationStats, RegressionStats } from '../../../src/uncertainty/record.js';
import type { TensorSampler } from '../../../src/model/onnx/tensor-mc.js';
import { type Reference, inputsOf, references, samplerOf } from './tensor-mc-fixtures.js';

const Z = 5;

/** Samples per fixture: ≥ 1000 where a run is fast, fewer (with proportionally wider tolerances) where not. */
const SAMPLES: Record<string, number> = {
  bayes_cnn: 1000,
  mobilenet: 1000,
  unet: 400,
  text_classifier: 400,
  text_classifier_nomask: 400,
  token_tagger: 1000,
  conv1d_regressor: 2000,
};

/** Index into a class-last record of element i of an output laid out [rows, …pre, K, …post]. */
function classLastIndex(i: number, K: number, post: number): number {
  const j = i % post;
  const k = Math.floor(i / post) % K;
  const pre = Math.floor(i / (post * K));
  return (pre * post + j) * K + k;
}

/** The worst |ours − ref| / tolerance over the compared values (≤ 1 passes). */
interface Check {
  what: string;
  worst: number;
}

function classificationChecks(ref: Reference, stats: ClassificationStats, rows: number, T: number): Check[] {
  const mc = ref.mc;
  const K = ref.outputs[0]!.shape[ref.class_axis!]!;
  const post = ref.outputs[0]!.shape.slice(ref.class_axis! + 1).reduce((a, b) => a * b, 1);
  const perRow = ref.outputs[0]!.shape.slice(1).reduce((a, b) => a * b, 1);
  const positions = (rows * perRow) / K;
  const probs: Check = { what: 'probabilities', worst: 0 };
  const bias = new Float64Array(positions);
  for (let i = 0; i < rows * perRow; i++) {
    const sd = mc.probabilities_std![i]!;
    const p = mc.probabilities![i]!;
    const at = classLastIndex(i, K, post);
    const tol = Z * sd * Math.sqrt(1 / T + 1 / mc.passes) + 1e-4;
    probs.worst = Math.max(probs.worst, Math.abs(stats.probabilities[at]! - p) / tol);
    if (p > 1e-6) bias[Math.floor(at / K)]! += ((sd * sd) / (2 * p)) * (1 / T - 1 / mc.passes);
  }
  const per = (what: 'entropy' | 'mutual_information', ours: Float64Array): Check => {
    let worst = 0;
    for (let q = 0; q < positions; q++) {
      const sd = mc[`${what}_sd`]![q]! * Math.sqrt(mc.chunk / T + mc.chunk / mc.passes);
      const tol = Z * sd + Math.abs(bias[q]!) + 1e-4;
      worst = Math.max(worst, Math.abs(ours[q]! - mc[what]![q]!) / tol);
    }
    return { what, worst };
  };
  return [probs, per('entropy', stats.entropy), per('mutual_information', stats.mutualInformation)];
}

function regressionChecks(ref: Reference, stats: RegressionStats, rows: number, T: number): Check[] {
  const mc = ref.mc;
  const n = rows * ref.outputs[0]!.shape.slice(1).reduce((a, b) => a * b, 1);
  let mean = 0;
  let std = 0;
  for (let i = 0; i < n; i++) {
    const sd = mc.std![i]!;
    mean = Math.max(mean, Math.abs(stats.mean[i]! - mc.mean![i]!) / (Z * sd * Math.sqrt(1 / T + 1 / mc.passes)));
    // the sd of a sample std is about std/√(2T) for a normal; twice that leaves room for heavier tails
    const stdTol = Z * 2 * sd * Math.sqrt(1 / (2 * T) + 1 / (2 * mc.passes));
    std = Math.max(std, Math.abs(stats.epistemicStd[i]! - sd) / stdTol);
  }
  return [
    { what: 'mean', worst: mean },
    { what: 'std', worst: std },
  ];
}

describe('tensor MC agrees with PyTorch MC within sampling error', () => {
  for (const [name, ref] of Object.entries(references)) {
    describe(name, () => {
      let sampler: TensorSampler;
      beforeAll(async () => {
        sampler = await samplerOf(name);
      });
      afterAll(() => sampler.close());
      for (const rows of [ref.mc.rows, 1]) {
        it(`${rows} row(s), T = ${SAMPLES[name]}`, async () => {
          const T = SAMPLES[name]!;
          const r = await sampler.sample(inputsOf(name), rows, { samples: T, interval: 0.9, seed: 20 + rows });
          expect(r.outputDims).toEqual([rows, ...ref.outputs[0]!.shape.slice(1)]);
          expect(r.stats.samples).toBe(T);
          const checks =
            r.stats.kind === 'classification'
              ? classificationChecks(ref, r.stats, rows, T)
              : regressionChecks(ref, r.stats, rows, T);
          for (const c of checks) expect(c.worst, `${name} ${c.what}`).toBeLessThanOrEqual(1);
        });
      }
    });
  }
});
