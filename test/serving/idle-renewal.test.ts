/** When an MC worker is renewed (issue 20): after a quiet period following work, once. */
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

  it('renews once afterMs passed with no task running, not before', async () => {
    let calls = 0;
    const r = new IdleRenewal(1000, () => calls++);
    const a = task();
    const b = task();
    r.started(a.done);
    r.started(b.done);
    a.end();
    await vi.advanceTimersByTimeAsync(5000); // b still runs
    expect(calls).toBe(0);
    b.end();
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toBe(1);
  });

  it('a task that starts in the quiet period puts the renewal off; a failed task counts as ended', async () => {
    let calls = 0;
    const r = new IdleRenewal(1000, () => calls++);
    r.started(Promise.resolve());
    await vi.advanceTimersByTimeAsync(800);
    r.started(Promise.reject(new Error('x')));
    await vi.advanceTimersByTimeAsync(800);
    expect(calls).toBe(0);
    await vi.advanceTimersByTimeAsync(200);
    expect(calls).toBe(1);
  });

  it("the renewal's own task (work false) does not call for another; work that starts during it does", async () => {
    let calls = 0;
    const r = new IdleRenewal(1000, () => calls++);
    r.started(Promise.resolve());
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(1);
    const renewal = task();
    r.started(renewal.done, false);
    renewal.end();
    await vi.advanceTimersByTimeAsync(5000);
    expect(calls).toBe(1);
    const again = task();
    r.started(again.done, false);
    r.started(Promise.resolve()); // a Monte Carlo task handed over during the renewal
    again.end();
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(2);
  });

  it('stop: no renewal afterwards, also for a task that was running', async () => {
    let calls = 0;
    const r = new IdleRenewal(1000, () => calls++);
    const a = task();
    r.started(a.done);
    r.stop();
    a.end();
    r.started(Promise.resolve());
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toBe(0);
  });

  it('afterMs 0 never renews', async () => {
    let calls = 0;
    const r = new IdleRenewal(0, () => calls++);
    r.started(Promise.resolve());
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toBe(0);
  });
});
