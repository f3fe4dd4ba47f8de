/**
 * Hot reload (MODELS_WATCH): poll the models' files and bring the repository in line with them — a new
 * or changed model version is loaded, self-checked (by its loader) and swapped in, a removed folder is
 * unloaded (ModelRepository.refresh does the work; requests in flight finish on the version they
 * started on).
 *
 * Polling stat(), not fs.watch: recursive fs.watch is not available on Linux before Node 20.13 and its
 * events are coalesced or lost on some file systems (network and container mounts); a stat of each
 * model file and card per poll is cheap and sees every change. Files are never read unless they changed.
 *
 * Debounce: a model is acted on only when its files (every version's stamp: inode, size, mtime) look the
 * same in two polls in a row, so that a file being copied in is not loaded half written. A file that is
 * stable but still broken fails its load once (logged; the served version keeps serving) and is tried
 * again when it changes.
 */
import type { FoundVersion } from './discovery.js';
import type { ModelRepository, RefreshReport } from './repository.js';

export interface WatcherOptions {
  intervalMs: number;
  /** The models folder could not be read, or a refresh threw (a load failure is not an error here). */
  onError?: (error: Error) => void;
}

const signature = (found: FoundVersion[] | undefined): string =>
  (found ?? []).map((f) => `${f.source.version}=${f.stamp}`).join(',');

export class RepositoryWatcher {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopped = true;
  /** Each model's files at the previous poll. */
  private readonly previous = new Map<string, string>();

  constructor(
    private readonly repository: ModelRepository,
    private readonly opts: WatcherOptions,
  ) {}

  /** Poll every intervalMs from now on (the first poll after one interval). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  /** Stop polling; resolves once a poll under way finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.poll()
        .catch((err: unknown) => this.opts.onError?.(err as Error))
        .finally(() => {
          this.running = null;
          this.schedule();
        });
    }, this.opts.intervalMs);
    this.timer.unref(); // polling never keeps the process alive
  }

  /**
   * One poll: scan the files, and refresh every model whose files are the same as at the previous poll
   * (a refresh of an unchanged model does nothing). Returns the refreshes that changed something.
   */
  async poll(): Promise<RefreshReport[]> {
    let found: Map<string, FoundVersion[]>;
    try {
      found = this.repository.scan();
    } catch (err) {
      // the whole folder is unreadable (e.g. a remount): do nothing rather than unload everything
      this.opts.onError?.(err as Error);
      return [];
    }
    const names = new Set([...found.keys(), ...this.repository.names()]);
    for (const name of this.previous.keys()) if (!names.has(name)) this.previous.delete(name);
    const reports: RefreshReport[] = [];
    for (const name of [...names].sort()) {
      if (this.repository.state === 'closing') break;
      if (this.repository.isUnloadedByRequest(name)) continue;
      const now = signature(found.get(name));
      const before = this.previous.get(name);
      this.previous.set(name, now);
      if (before !== now) continue; // new or changing: wait until it looks the same in the next poll
      const report = await this.repository.refresh(name, { found: found.get(name) ?? [] });
      if (report.loaded.length || report.failed.length || report.unloaded.length) reports.push(report);
    }
    return reports;
  }
}
