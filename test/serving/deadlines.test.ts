import { describe, expect, it } from 'vitest';
import { Deadlines } from '../../src/serving/deadlines.js';

interface Item {
  name: string;
  deadline: number;
  heapIndex: number;
}

const item = (name: string, inMs: number): Item => ({ name, deadline: performance.now() + inMs, heapIndex: -1 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `done()` (polling), at most `ms`. */
async function until(done: () => boolean, ms = 2000): Promise<void> {
  for (const end = performance.now() + ms; !done(); ) {
    if (performance.now() > end) throw new Error('timed out');
    await sleep(5);
  }
}

describe('Deadlines (one timer for a lane of requests)', () => {
  it('expires each item once its deadline passed (never before), earliest first, whatever the order they came in', async () => {
    const expired: string[] = [];
    const d = new Deadlines<Item>((i) => {
      expect(performance.now()).toBeGreaterThanOrEqual(i.deadline);
      expired.push(i.name);
    });
    const items = [item('c', 60), item('a', 20), item('d', 80), item('b', 40)];
    for (const i of items) d.add(i);
    expect(d.size).toBe(4);
    await until(() => expired.length === 4);
    expect(expired).toEqual(['a', 'b', 'c', 'd']);
    expect(d.size).toBe(0);
    for (const i of items) expect(i.heapIndex).toBe(-1);
  });

  it('an item removed before its deadline never expires; the others keep theirs when the earliest leaves', async () => {
    const expired: string[] = [];
    const d = new Deadlines<Item>((i) => {
      expect(performance.now()).toBeGreaterThanOrEqual(i.deadline);
      expired.push(i.name);
    });
    const first = item('first', 20);
    const second = item('second', 40);
    const third = item('third', 30);
    d.add(first);
    d.add(second);
    d.add(third);
    d.remove(first); // the timer stays armed for it and, when it fires, is armed again for `third`
    d.remove(first); // not in the heap any more: nothing
    await until(() => expired.length === 2);
    await sleep(30);
    expect(expired).toEqual(['third', 'second']);
  });

  it('keeps a heap of many items in order as they leave from anywhere', async () => {
    const expired: number[] = [];
    const d = new Deadlines<Item & { n: number }>((i) => expired.push(i.n));
    const now = performance.now();
    const items = Array.from({ length: 200 }, (_, n) => ({
      name: String(n),
      n,
      deadline: now + 5 + ((n * 37) % 200) / 10,
      heapIndex: -1,
    }));
    for (const i of items) d.add(i);
    for (const i of items) if (i.n % 3 === 0) d.remove(i);
    const kept = items.filter((i) => i.n % 3 !== 0);
    await until(() => expired.length === kept.length);
    await sleep(10);
    expect(expired).toHaveLength(kept.length);
    expect(new Set(expired)).toEqual(new Set(kept.map((i) => i.n)));
    const byDeadline = (n: number) => items[n]!.deadline;
    for (let k = 1; k < expired.length; k++)
      expect(byDeadline(expired[k]!)).toBeGreaterThanOrEqual(byDeadline(expired[k - 1]!));
  });

  it('holds no timer once the heap is empty (the process may exit)', () => {
    const d = new Deadlines<Item>(() => undefined);
    const a = item('a', 60_000);
    d.add(a);
    expect((d as unknown as { timer: unknown }).timer).not.toBeNull();
    d.remove(a);
    expect((d as unknown as { timer: unknown }).timer).toBeNull();
  });
});
