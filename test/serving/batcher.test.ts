import { describe, expect, it } from 'vitest';
import { PredictBatcher } from '../../src/serving/batcher.js';

/** A fake model: output row = [sum of the input row]; fails on a row containing 13. */
function fake() {
  const calls: number[] = [];
  const run = async (x: Float32Array, rows: number): Promise<Float32Array> => {
    calls.push(rows);
    const out = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      if (x[r * 2] === 13) throw new Error('unlucky row');
      out[r] = x[r * 2]! + x[r * 2 + 1]!;
    }
    return out;
  };
  return { run, calls };
}

describe('PredictBatcher', () => {
  it('coalesces concurrent requests into one run and splits the output back', async () => {
    const { run, calls } = fake();
    const b = new PredictBatcher(run, 2, 1, 64, 0);
    const results = await Promise.all([
      b.predict(Float32Array.from([1, 2]), 1),
      b.predict(Float32Array.from([3, 4, 5, 6]), 2),
      b.predict(Float32Array.from([7, 8]), 1),
    ]);
    expect(calls).toEqual([4]);
    expect(results.map((r) => Array.from(r))).toEqual([[3], [7, 11], [15]]);
  });
  it('flushes at maxRows and runs a large request alone', async () => {
    const { run, calls } = fake();
    const b = new PredictBatcher(run, 2, 1, 3, 0);
    await Promise.all([
      b.predict(new Float32Array(4), 2),
      b.predict(new Float32Array(4), 2),
      b.predict(new Float32Array(8), 4),
    ]);
    expect(calls.sort()).toEqual([2, 2, 4]);
  });
  it('waits up to maxWaitUs for neighbours', async () => {
    const { run, calls } = fake();
    const b = new PredictBatcher(run, 2, 1, 64, 5000);
    const first = b.predict(Float32Array.from([1, 1]), 1);
    await new Promise((r) => setTimeout(r, 1));
    const second = b.predict(Float32Array.from([2, 2]), 1);
    expect((await Promise.all([first, second])).map((r) => r[0])).toEqual([2, 4]);
    expect(calls).toEqual([2]);
  });
  it('an error in one request never fails its neighbours', async () => {
    const { run } = fake();
    const b = new PredictBatcher(run, 2, 1, 64, 0);
    const results = await Promise.allSettled([
      b.predict(Float32Array.from([1, 2]), 1),
      b.predict(Float32Array.from([13, 0]), 1),
      b.predict(Float32Array.from([5, 5]), 1),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(Array.from((results[2] as PromiseFulfilledResult<Float32Array>).value)).toEqual([10]);
  });
});
