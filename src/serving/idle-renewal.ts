/**
 * When to renew an MC worker (pool.ts): once no task has run on it for `afterMs` after it did work. A
 * worker under steady load is never renewed; one that goes idle after a burst is renewed once.
 */
export class IdleRenewal {
  private running = 0;
  private ran = false;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** `afterMs` 0: never. */
  constructor(
    private readonly afterMs: number,
    private readonly renew: () => void,
  ) {}

  /** No renewal from now on. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /**
   * A task started; `done` settles when it has ended. `work` false: the renewal's own task, which holds
   * off another renewal while it runs but does not call for one after it.
   */
  started(done: Promise<unknown>, work = true): void {
    if (this.afterMs <= 0 || this.stopped) return;
    if (work) this.ran = true;
    this.running++;
    clearTimeout(this.timer);
    const end = () => {
      if (--this.running === 0 && !this.stopped) this.arm();
    };
    done.then(end, end);
  }

  private arm(): void {
    this.timer = setTimeout(() => {
      if (!this.ran) return;
      this.ran = false;
      this.renew();
    }, this.afterMs);
    this.timer.unref(); // an idle pool never keeps the process alive for it
  }
}
