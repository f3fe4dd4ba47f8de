import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/rng.js';
import { MIN_RATIO, refitCorrection } from '../../src/train/refit-correction.js';
import { calibrateRegression } from '../../src/train/train.js';

describe('refitCorrection (Burman 1989)', () => {
  it('is (CV + refit error − the folds’ error on every row) / CV, CV from each fold on its held rows', () => {
    const y = [1, 2, 3, 4];
    const held = [
      [0, 1],
      [2, 3],
    ];
    // fold 0 (trained without rows 0, 1) errs 1 on them and 0.5 elsewhere; fold 1 errs 1 on rows 2, 3
    const folds = [
      [2, 3, 3.5, 4.5],
      [1, 2, 4, 5],
    ];
    const refit = [1.5, 2.5, 3, 4];
    const c = refitCorrection(y, refit, folds, held);
    const cv = (1 + 1 + 1 + 1) / 4;
    const refitMse = 0.5 / 4;
    const foldsMse = ((1 + 1 + 0.25 + 0.25) / 4 + (0 + 0 + 1 + 1) / 4) / 2;
    expect(c.cvMse).toBeCloseTo(cv, 12);
    expect(c.refitMse).toBeCloseTo(refitMse, 12);
    expect(c.foldsMse).toBeCloseTo(foldsMse, 12);
    expect(c.ratio).toBeCloseTo((cv + refitMse - foldsMse) / cv, 12);
    expect(c.ratio).toBeLessThan(1);
    expect(c.ratio).toBeGreaterThan(MIN_RATIO);
  });

  it('keeps the ratio in [MIN_RATIO, 1]: a refit that errs more is not taken to widen, nor a huge gain trusted', () => {
    const y = [0, 0, 0, 0];
    const held = [
      [0, 1],
      [2, 3],
    ];
    const folds = [
      [1, 1, 0, 0],
      [0, 0, 1, 1],
    ];
    expect(refitCorrection(y, [3, 3, 3, 3], folds, held).ratio).toBe(1);
    // the folds fit their own rows badly and the refit perfectly: raw (1 + 0 − 0.5·…) clamps at the floor
    const wild = [
      [1, 1, 9, 9],
      [9, 9, 1, 1],
    ];
    expect(refitCorrection(y, [0, 0, 0, 0], wild, held).ratio).toBe(MIN_RATIO);
    // no out-of-fold error: nothing to correct
    expect(
      refitCorrection(
        y,
        [0, 0, 0, 0],
        [
          [0, 0, 0, 0],
          [0, 0, 0, 0],
        ],
        held,
      ).ratio,
    ).toBe(1);
  });
});

describe('calibrateRegression with the refit correction', () => {
  const n = 300;
  const rng = new Rng(4);
  const mean = Float64Array.from({ length: n }, () => 5 * rng.normal());
  const epistemicVar = new Float64Array(n);
  const y = Float64Array.from(mean, (m) => m + 2 * rng.normal());
  const correction = { cvMse: 4, refitMse: 1, foldsMse: 1.8, ratio: 0.8 };

  it('scales σ by √ratio and keeps the conformal scores (residuals and std scale together)', () => {
    const plain = calibrateRegression({ mean, epistemicVar, aleatoricVar: null }, y, 2, 'rows');
    const c = calibrateRegression({ mean, epistemicVar, aleatoricVar: null }, y, 2, 'rows', correction);
    expect(c.aleatoricStd / plain.aleatoricStd).toBeCloseTo(Math.sqrt(0.8), 6);
    expect(c.refitCorrection).toEqual({ ...correction, residualScale: Math.sqrt(0.8) });
    Array.from(c.conformalScores).forEach((s, i) => {
      expect(s).toBeCloseTo(plain.conformalScores[i]!, 6);
    });
    expect(plain.refitCorrection).toBeUndefined();
  });

  it('leaves a target on a coarse grid alone: its rounding, not the fit, sets the residuals', () => {
    // grid-calibration.test.ts's rows: noise of std 2 recorded on a grid of 8
    const small = Float64Array.from({ length: n }, () => 0.01 * rng.next());
    const coarse = Float64Array.from({ length: n }, () => Math.round((2 * rng.normal()) / 8) * 8);
    const zero = new Float64Array(n);
    const plain = calibrateRegression({ mean: zero, epistemicVar: small, aleatoricVar: null }, coarse, 2, 'rows');
    const c = calibrateRegression(
      { mean: zero, epistemicVar: small, aleatoricVar: null },
      coarse,
      2,
      'rows',
      correction,
    );
    expect(c.grid?.step).toBe(8);
    expect(c.aleatoricStd).toBe(plain.aleatoricStd);
    expect(c.refitCorrection?.residualScale).toBe(1);
  });
});
