/**
 * The deadlines of a lane's requests under one timer (issue 20): a Node timer per request cost a
 * Timeout object, its insertion into a timer list and its removal when the request ended, which under
 * load is every request well before its deadline. Here a request joins a binary heap ordered by
 * deadline, and leaves it in O(log n) when it ends; the one timer is armed for the earliest deadline and
 * is not moved when that request ends early: when it fires, the requests past their deadline expire and
 * it is armed again for the earliest left (requests of one timeout arrive in deadline order, so under
 * steady load it fires about once per timeout). It is cleared when the heap empties.
 */

/** What the heap keeps of an item: its deadline (performance.now() ms) and its place (−1: not in it). */
export interface Deadlined {
  readonly deadline: number;
  heapIndex: number;
}

export class Deadlines<T extends Deadlined> {
  private readonly heap: T[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** The deadline the timer is armed for (Infinity: not armed). */
  private armedFor = Infinity;

  constructor(
    /** Called for each item whose deadline passed (it has left the heap). */
    private readonly expire: (item: T) => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get size(): number {
    return this.heap.length;
  }

  add(item: T): void {
    item.heapIndex = this.heap.length;
    this.heap.push(item);
    this.up(item.heapIndex);
    if (item.deadline < this.armedFor) this.arm(item.deadline);
  }

  /** Take `item` out (it ended before its deadline); nothing when it is not in the heap. */
  remove(item: T): void {
    const i = item.heapIndex;
    if (i < 0) return;
    item.heapIndex = -1;
    const last = this.heap.pop()!;
    if (last !== item) {
      this.heap[i] = last;
      last.heapIndex = i;
      this.down(i);
      this.up(last.heapIndex);
    }
    if (this.heap.length === 0) this.disarm();
  }

  private arm(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, Math.ceil(at - this.now())));
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Infinity;
  }

  private fire(): void {
    this.timer = null;
    this.armedFor = Infinity;
    const now = this.now();
    while (this.heap.length > 0 && this.heap[0]!.deadline <= now) {
      const item = this.heap[0]!;
      this.remove(item);
      this.expire(item);
    }
    if (this.heap.length > 0 && this.timer === null) this.arm(this.heap[0]!.deadline);
  }

  private up(i: number): void {
    const h = this.heap;
    const item = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.deadline <= item.deadline) break;
      h[i] = h[p]!;
      h[i]!.heapIndex = i;
      i = p;
    }
    h[i] = item;
    item.heapIndex = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const item = h[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= h.length) break;
      if (c + 1 < h.length && h[c + 1]!.deadline < h[c]!.deadline) c++;
      if (item.deadline <= h[c]!.deadline) break;
      h[i] = h[c]!;
      h[i]!.heapIndex = i;
      i = c;
    }
    h[i] = item;
    item.heapIndex = i;
  }
}
