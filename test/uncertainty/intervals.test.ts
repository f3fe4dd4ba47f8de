import { describe, expect, it } from 'vitest';
import {
  conformalQuantile,
  gaussianInterval,
  gaussianMultiplier,
  intervalLevelMessage,
  isIntervalLevel,
} from '../../src/uncertainty/intervals.js';

describe('interval levels', () => {
  it('a level is a number strictly between 0 and 1', () => {
    expect([0.5, 1e-12, 1 - 1e-12].map(isIntervalLevel)).toEqual([true, true, true]);
    expect([0, 1, -0.1, 1.5, Number.NaN, '0.5', undefined].map(isIntervalLevel)).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
    expect(intervalLevelMessage('interval', 1)).toBe('interval: expected a number strictly between 0 and 1, got 1');
    expect(() => conformalQuantile([1, 2, 3], 1)).toThrow(
      'conformal level: expected a number strictly between 0 and 1, got 1',
    );
  });

  it('the gaussian multiplier is Φ⁻¹((1 + level)/2)', () => {
    expect(gaussianMultiplier(0.95)).toBeCloseTo(1.959963984540054, 12);
    expect(gaussianMultiplier(0.5)).toBeCloseTo(0.6744897501960817, 12);
    expect(gaussianInterval(0.9)).toEqual({ level: 0.9, method: 'gaussian', multiplier: gaussianMultiplier(0.9) });
  });
});
