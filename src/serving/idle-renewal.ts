/**
 * When to renew an MC worker's model copies (mc-worker.ts): once no task has run for `afterMs`, with the
 * keys of the models that ran since the last renewal. A worker under steady load never renews; one that
 * goes idle after a burst renews once.
 */
export class IdleRenewal {
  private readonly ran = new Set<string>();
  private running = 0;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** `afterMs` 0: never. */
  constructor(
    private readonly afterMs: number,
    private readonly renew: (keys: string[]) => void,
  ) {}

  /** No renewal from now on. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** A task on model `key` started; `done` settles when it has ended. */
  started(key: string, done: Promise<unknown>): void {
    if (this.afterMs <= 0 || this.stopped) return;
    this.ran.add(key);
    this.running++;
    clearTimeout(this.timer);
    const end = () => {
      if (--this.running === 0 && !this.stopped) this.arm();
    };
    done.then(end, end);
  }

  private arm(): void {
    this.timer = setTimeout(() => {
      const keys = [...this.ran];
      this.ran.clear();
      this.renew(keys);
    }, this.afterMs);
    this.timer.unref(); // an idle worker is never kept alive for it
  }
}
