/** When an MC worker renews its model copies (issue 20): after a quiet period following work, once. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IdleRenewal } from '../../src/serving/idle-renewal.js';

describe('IdleRenewal', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const task = () => {
    let end!: () => void;
    const done = new Promise<void>((r) => {
      end = r;
    });
    return { done, end };
  };

  it('renews the keys that ran once afterMs passed with no task running, not before', async () => {
    const calls: string[][] = [];
    const r = new IdleRenewal(1000, (keys) => calls.push(keys));
    const a = task();
    const b = task();
    r.started('a', a.done);
    r.started('b', b.done);
    a.end();
    await vi.advanceTimersByTimeAsync(5000); // b still runs
    expect(calls).toEqual([]);
    b.end();
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toEqual([['a', 'b']]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toHaveLength(1);
  });

  it('a task that starts in the quiet period puts the renewal off; a failed task counts as ended', async () => {
    const calls: string[][] = [];
    const r = new IdleRenewal(1000, (keys) => calls.push(keys));
    r.started('a', Promise.resolve());
    await vi.advanceTimersByTimeAsync(800);
    r.started('c', Promise.reject(new Error('x')));
    await vi.advanceTimersByTimeAsync(800);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(200);
    expect(calls).toEqual([['a', 'c']]);
  });

  it('stop: no renewal afterwards, also for a task that was running', async () => {
    const calls: string[][] = [];
    const r = new IdleRenewal(1000, (keys) => calls.push(keys));
    const a = task();
    r.started('a', a.done);
    r.stop();
    a.end();
    r.started('b', Promise.resolve());
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toEqual([]);
  });

  it('afterMs 0 never renews', async () => {
    const calls: string[][] = [];
    const r = new IdleRenewal(0, (keys) => calls.push(keys));
    r.started('a', Promise.resolve());
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toEqual([]);
  });
});
