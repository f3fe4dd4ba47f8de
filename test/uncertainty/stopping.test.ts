/**
 * Sequential stopping (samples "auto", issue 22): the rule against closed forms, on fake streams of
 * known distribution fed through the real accumulators and the real chunk schedule.
 */
import { describe, expect, it } from 'vitest';
import { ClassificationAccumulator, RegressionAccumulator } from '../../src/uncertainty/accumulators.js';
import { MomentSums } from '../../src/uncertainty/moments.js';
import {
  AUTO_MIN_SAMPLES,
  addCheckedRows,
  autoPlan,
  autoRunEnd,
  nextAutoCheck,
  probabilityError,
  regressionError,
  withinTolerance,
} from '../../src/uncertainty/stopping.js';
import { Rng } from '../../src/util/rng.js';

/** Run the schedule over `next(s)` chunks of s samples until the accumulator is within `tol`; T used and the chunk ends seen. */
function runAuto(
  add: (s: number) => void,
  worst: () => number,
  tol: number,
  max: number,
): { used: number; ends: number[] } {
  const ends: number[] = [];
  let done = 0;
  while (done < max) {
    const s = nextAutoCheck(done, max) - done;
    add(s);
    done += s;
    ends.push(done);
    if (done < max && withinTolerance(done, worst(), tol)) break;
  }
  return { used: done, ends };
}

/** A stream whose sample mean and variance are exact at every even T: ±σ alternately (kurtosis 1). */
function alternating(sigma: number) {
  let t = 0;
  return (s: number): Float32Array => {
    const out = new Float32Array(s);
    for (let k = 0; k < s; k++, t++) out[k] = 10 + (t % 2 === 0 ? sigma : -sigma);
    return out;
  };
}

describe('the checks', () => {
  it('start at AUTO_MIN_SAMPLES, then every eighth more (at least 30), never past the maximum', () => {
    expect(AUTO_MIN_SAMPLES).toBe(30);
    expect(nextAutoCheck(0, 1000)).toBe(30);
    expect(nextAutoCheck(30, 1000)).toBe(60);
    expect(nextAutoCheck(400, 1000)).toBe(450);
    expect(nextAutoCheck(990, 1000)).toBe(1000);
    expect(nextAutoCheck(0, 12)).toBe(12);
  });
});

describe('how far a run goes (autoRunEnd)', () => {
  it('to the first check past T·(error/tol)², at least the next check, at most 4·T and the maximum', () => {
    // 30·(0.1/0.05)² = 120: the checks 60, 90, 120
    expect(autoRunEnd(30, 1000, 0.1, 0.05)).toBe(120);
    // 30·(0.06/0.05)² = 43.2: the next check, 60
    expect(autoRunEnd(30, 1000, 0.06, 0.05)).toBe(60);
    // 240·(0.07/0.05)² = 470.4: 270, 304, 342, 385, 434, 489
    expect(autoRunEnd(240, 1000, 0.07, 0.05)).toBe(489);
    // 30·400 = 12000, capped at 4·30 = 120
    expect(autoRunEnd(30, 1000, 1, 0.05)).toBe(120);
    expect(autoRunEnd(900, 1000, 0.2, 0.05)).toBe(1000);
    expect(autoRunEnd(30, 1000, Number.POSITIVE_INFINITY, 0.05)).toBe(120);
    expect(autoRunEnd(30, 1000, Number.NaN, 0.05)).toBe(60);
    // at most maxExtra samples past `done` (but always the next check): 30 + 40 → 90; 30 + 4 → 60
    expect(autoRunEnd(30, 1000, 0.1, 0.05, 40)).toBe(90);
    expect(autoRunEnd(30, 1000, 0.1, 0.05, 4)).toBe(60);
  });
});

describe('the errors', () => {
  it('regressionError: se(mean)/σ = 1/√T without noise, the std term from the kurtosis, 0 without spread', () => {
    expect(regressionError(400, 4, 3, 1, 0)).toBeCloseTo(1 / 20, 12);
    // a heavy tail (κ = 9): se(s)/s = √(8/(4T)) = √2/√T > 1/√T
    expect(regressionError(400, 4, 9, 1, 0)).toBeCloseTo(Math.SQRT2 / 20, 12);
    // aleatoric noise a² = 3v: σ = 2√v, so the relative error halves
    expect(regressionError(400, 4, 3, 1, 12)).toBeCloseTo(1 / 40, 12);
    // epistemic scale s = 2: served std √(4v), se(mean) = √(v/T): relative 1/(2√T), se(std) = 2√v·√(2/(4T)) → 1/(√2·√T)
    expect(regressionError(400, 4, 3, 2, 0)).toBeCloseTo(1 / (Math.SQRT2 * 20), 12);
    expect(regressionError(400, 0, 0, 1, 0)).toBe(0);
  });

  it('the sample kurtosis: 3 for normal samples, 1 for ±σ', () => {
    const rng = new Rng(3);
    const m = new MomentSums(2, null, true);
    for (let t = 0; t < 20000; t++) m.add([5 + 2 * rng.normal(), t % 2 ? 1 : -1], 0);
    expect(m.kurtosis(0)).toBeGreaterThan(2.9);
    expect(m.kurtosis(0)).toBeLessThan(3.1);
    expect(m.kurtosis(1)).toBeCloseTo(1, 12);
    expect(new MomentSums(1).kurtosis(0)).toBeNaN();
  });
});

describe('the stopping rule on fake streams', () => {
  it('stops at the first check with se/σ ≤ tol: T = ⌈1/tol²⌉ within one chunk', () => {
    for (const tol of [0.2, 0.1, 0.05, 0.02]) {
      const acc = new RegressionAccumulator(1, 1, 100000, false, null, true);
      const next = alternating(3);
      const alea = new Float64Array(1);
      const { used, ends } = runAuto(
        (s) => acc.add(next(s), s),
        () => acc.worstError(alea),
        tol,
        100000,
      );
      // without noise se(mean)/σ = √(v/T)/√v = 1/√T whatever v, and ±σ has κ = 1 (no std term): the
      // closed-form stop is the first chunk end ≥ ⌈1/tol²⌉
      const closed = Math.max(AUTO_MIN_SAMPLES, Math.ceil(1 / tol ** 2 - 1e-9));
      const firstEnd = ends.find((e) => e >= closed)!;
      expect(used).toBe(firstEnd);
      expect(used - closed).toBeLessThanOrEqual(Math.max(AUTO_MIN_SAMPLES, Math.ceil(closed / 8)));
      expect(acc.finish(alea, 0.9).samples).toBe(used);
    }
  });

  it('normal samples stop near 1/tol² and the served error is then within tolerance', () => {
    const rng = new Rng(11);
    const tol = 0.05;
    const acc = new RegressionAccumulator(3, 1, 5000, false, null, true);
    const alea = new Float64Array(3);
    const { used } = runAuto(
      (s) => {
        const out = new Float32Array(s * 3);
        for (let k = 0; k < out.length; k++) out[k] = (k % 3) * 100 + (1 + (k % 3)) * rng.normal();
        acc.add(out, s);
      },
      () => acc.worstError(alea),
      tol,
      5000,
    );
    // the worst of three rows' estimates of 1/√T: near 400, certainly not at the maximum
    expect(used).toBeGreaterThan(300);
    expect(used).toBeLessThan(560);
    expect(acc.worstError(alea)).toBeLessThanOrEqual(tol);
  });

  it('aleatoric noise makes fewer samples enough; a row that never settles runs to the maximum', () => {
    const alea = new Float64Array([3 * Math.sqrt(3)]); // a² = 3σ²: σ_pred = 2σ, T ≈ 1/(2 tol)²
    const acc = new RegressionAccumulator(1, 1, 1000, false, null, true);
    const next = alternating(3);
    expect(
      runAuto(
        (s) => acc.add(next(s), s),
        () => acc.worstError(alea),
        0.05,
        1000,
      ).used,
    ).toBe(120);
    const never = new RegressionAccumulator(1, 1, 1000, false, null, true);
    const n = alternating(3);
    expect(
      runAuto(
        (s) => never.add(n(s), s),
        () => never.worstError(new Float64Array(1)),
        0.001,
        1000,
      ).used,
    ).toBe(1000);
  });
});

describe('the stopping rule for classifiers', () => {
  it('the standard error of each mean probability, absolute', () => {
    // p = 0.2, 0.8, 0.2, 0.8: Σp = 2, Σp² = 1.36, unbiased var 0.12, se = √(0.12/4)
    expect(probabilityError(4, 2, 1.36)).toBeCloseTo(Math.sqrt(0.03), 12);
    expect(probabilityError(1, 0.5, 0.25)).toBe(Number.POSITIVE_INFINITY);
    const acc = new ClassificationAccumulator(1, 2, 10000, false, false, 1, true);
    let t = 0;
    const { used } = runAuto(
      (s) => {
        const out = new Float32Array(s * 2);
        for (let k = 0; k < s; k++, t++) {
          const p = t % 2 === 0 ? 0.2 : 0.8;
          out[2 * k] = p;
          out[2 * k + 1] = 1 - p;
        }
        acc.add(out, s);
      },
      () => acc.worstError(),
      0.03,
      10000,
    );
    // 0.3/√(T−1) ≤ 0.03 ⇔ T ≥ 101: the first chunk end at or past 101 (30, 60, 90, 120)
    expect(used).toBe(120);
    expect(acc.finish().samples).toBe(120);
  });

  it('within tolerance needs at least AUTO_MIN_SAMPLES', () => {
    expect(withinTolerance(29, 0, 0.05)).toBe(false);
    expect(withinTolerance(30, 0.05, 0.05)).toBe(true);
    expect(withinTolerance(30, Number.NaN, 0.05)).toBe(false);
  });
});

describe('per-row stopping (addCheckedRows)', () => {
  /** The first check count n (nextAutoCheck's) with c/√n ≤ tol, else max: where a row of error c/√n stops. */
  const closedForm = (c: number, tol: number, max: number): number => {
    let n = nextAutoCheck(0, max);
    while (n < max && c / Math.sqrt(n) > tol) n = nextAutoCheck(n, max);
    return n;
  };

  /** Rows of error c_k/√(samples added) in runs of `run` samples (as the model's loop, rows leaving as they stop). */
  const drive = (cs: number[], tol: number, max: number, run: number, together = false) => {
    const added = new Array<number>(cs.length).fill(0);
    let going = cs.map((_, i) => i);
    const plan = autoPlan(true, max);
    let done = 0;
    let runs = 0;
    while (done < max && !plan.stopped) {
      const B = going.length;
      const s = Math.min(run, plan.end - done);
      const out = new Float32Array(s * B);
      const rows = { live: new Uint8Array(B).fill(1), together };
      const at = { done, maxSamples: max, tolerance: tol, extraRowSamples: 256 };
      done = addCheckedRows(
        plan,
        { out, samples: s },
        at,
        rows,
        (k, o, seg) => {
          expect(o.length).toBe(seg * B);
          added[going[k]!]! += seg;
        },
        (k) => cs[going[k]!]! / Math.sqrt(added[going[k]!]!),
      );
      going = going.filter((_, k) => rows.live[k]);
      runs++;
    }
    return { stopped: added, going, done, runs };
  };

  it('rows of known errors stop at known checks, each with its own samples, in runs of any size', () => {
    // c/√n ≤ 0.05 ⇔ n ≥ 400c²: c = 0.5 → 100 → check 120; c = 1 → 400 → check 434 (…, 342, 385, 434); c = 0.1 → 30; c = 3 → max
    const cs = [0.5, 1, 0.1, 3];
    const expected = cs.map((c) => closedForm(c, 0.05, 1000));
    expect(expected).toEqual([120, 434, 30, 1000]);
    for (const run of [1, 7, 50, 1000]) {
      // each row's samples are its stop: none past it is added
      const { stopped, going, done } = drive(cs, 0.05, 1000, run);
      expect(stopped).toEqual(expected);
      expect([going, done]).toEqual([[3], 1000]); // c = 3 never settles: to the maximum
    }
  });

  it("together: every row stops at the slowest row's check", () => {
    expect(drive([0.5, 1, 0.1], 0.05, 1000, 50, true).stopped).toEqual([434, 434, 434]);
  });

  it('the next run follows the rows left: fewer runs once the fast rows are gone', () => {
    // all at c = 1 stop at 434; with one slow row the runs' ends follow its error, not the stopped rows'
    const one = drive([1], 0.05, 1000, 1000);
    const mixed = drive([0.05, 0.05, 0.05, 1], 0.05, 1000, 1000);
    expect(mixed.stopped).toEqual([30, 30, 30, 434]);
    expect(mixed.runs).toBeLessThanOrEqual(one.runs + 1);
  });
});
