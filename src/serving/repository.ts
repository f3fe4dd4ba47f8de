/**
 * The model repository (like kserve's ModelRepository, python/kserve/kserve/model_repository.py): the
 * one place that finds, loads, lists, swaps and unloads models. Protocol-neutral: no HTTP here.
 *
 * Models are found on disk by discovery.ts (model folders, version folders, MODEL_PATH; the stamps of
 * their files; their contents read once). The version policy (MODEL_VERSION_POLICY) picks which
 * versions are served: the N highest (default 1) or all; a request without a version gets the highest
 * served one.
 *
 * Requests hold a lease on the model they run on (acquire/release): a model that is swapped out or
 * unloaded stops being handed out at once, and is closed only when its last lease is released, so
 * requests in flight finish on the model object they started with.
 *
 * Runtime management (the V2 repository extension and hot reload, watcher.ts) goes through
 * `refresh(name)`: the model's folder is read again, the versions the policy picks are loaded when new
 * or changed (a file's stamp: inode, size, mtime) and swapped in, versions that left are unloaded. A
 * version that fails to load leaves the served one in place; the failure is remembered with the stamp of
 * the files that failed, so the same broken files are not loaded again until they change.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Config, VersionPolicy } from '../config.js';
import { InputError, ModelLoadError } from '../model/errors.js';
import { loadModel } from '../model/formats.js';
import { DEFAULT_RUNTIME_OPTIONS, type Model, type ModelSource, type RuntimeOptions } from '../model/model.js';
import {
  type FoundVersion,
  MODEL_NAME_RE,
  byVersion,
  discover,
  readContents,
  reportPath,
  scanVersions,
  stampOf,
} from './discovery.js';
import { ModelLoadFailedError, ModelNotFoundError } from './errors.js';

export const DEFAULT_VERSION_POLICY: VersionPolicy = { kind: 'latest', count: 1 };

/** The runtime options of the configuration. */
export function runtimeOptions(
  config: Pick<Config, 'ORT_INTRA_OP_THREADS' | 'MC_MAX_RUN_ROWS' | 'MC_SHARED_PREFIX' | 'MC_MAX_RUN_BYTES'>,
): RuntimeOptions {
  return {
    ...DEFAULT_RUNTIME_OPTIONS,
    intraOpThreads: config.ORT_INTRA_OP_THREADS,
    maxRunRows: config.MC_MAX_RUN_ROWS,
    sharedPrefix: config.MC_SHARED_PREFIX,
    maxRunBytes: config.MC_MAX_RUN_BYTES,
  };
}

/** "latest:2" or "all" (as MODEL_VERSION_POLICY spells it). */
export const policyText = (p: VersionPolicy): string => (p.kind === 'all' ? 'all' : `latest:${p.count}`);

/** The versions a policy serves, of the versions given (any order); ascending. */
export function selectVersions(versions: readonly string[], policy: VersionPolicy): string[] {
  const sorted = [...versions].sort(byVersion);
  return policy.kind === 'all' ? sorted : sorted.slice(Math.max(0, sorted.length - policy.count));
}

export type RepositoryState = 'loading' | 'ready' | 'closing';

/** What the data plane does around a model's life (DataPlane implements it). */
export interface ModelHooks {
  /** After a model loaded, before it is served (e.g. load it on the worker threads); throwing fails the load. */
  prepare?(model: Model, source: ModelSource): Promise<void>;
  /** After a model stopped being served and its last request finished, before it is closed. */
  retire?(model: Model): Promise<void>;
}

/** Why a model version stopped being served. */
export type UnloadReason = 'replaced' | 'unloaded';

/** Observers of the repository (logs, metrics). */
export interface RepositoryEvents {
  /** A model version is served; `seconds`: from the start of its load to being served (hooks included). */
  loaded?(model: Model, source: ModelSource, seconds: number): void;
  failed?(source: ModelSource, error: Error): void;
  /**
   * A model version stopped being served: replaced by a new load of the same version, or unloaded (by
   * request, because its folder left, or because the version policy no longer picks it). It is closed
   * once its requests finished (`closed`).
   */
  unloaded?(model: Model, reason: UnloadReason): void;
  /** A model no longer served finished its last request and was closed (its memory released). */
  closed?(model: Model): void;
  /** The number of model versions served changed. */
  served?(count: number): void;
}

export interface RepositoryOptions {
  modelsDir?: string;
  modelPath?: string;
  /** A bad model is reported and left out instead of failing loadAll. */
  skipInvalid?: boolean;
  runtime?: RuntimeOptions;
  /** Which versions of each model are served (default latest:1). */
  versionPolicy?: VersionPolicy;
  /** Loads a model from its source (default: by its format, src/model/formats.ts). */
  loader?: (source: ModelSource, runtime: RuntimeOptions) => Promise<Model>;
  events?: RepositoryEvents;
}

/** A request's hold on a model: the model is not closed before the lease is released. */
export interface ModelLease {
  readonly model: Model;
}

class Entry implements ModelLease {
  leases = 0;
  retired = false;
  finishing = false;
  readonly closed: Promise<void>;
  finish!: () => void;

  constructor(
    readonly model: Model,
    readonly source: ModelSource,
    /** The stamp of the files it was loaded from (null: not known, e.g. a model given to swap()). */
    readonly stamp: string | null,
  ) {
    this.closed = new Promise((resolve) => (this.finish = resolve));
  }
}

export interface LoadReport {
  loaded: Model[];
  /** Models that failed and were skipped (only with skipInvalid). */
  failed: { source: ModelSource; error: string }[];
  /** Folders left out (unusable names). */
  skipped: string[];
}

/** What one refresh of a model did. */
export interface RefreshReport {
  name: string;
  /** Versions loaded (new, changed or forced) and now served. */
  loaded: string[];
  /** Versions that failed to load (a served one of the same version keeps serving). */
  failed: { version: string; error: string }[];
  /** Versions no longer served (folder removed, or not picked by the version policy any more). */
  unloaded: string[];
}

/** A row of the repository index (V2 repository extension: Triton's states). */
export interface IndexEntry {
  name: string;
  version?: string;
  state: 'READY' | 'LOADING' | 'UNAVAILABLE';
  reason: string;
}

const versionKey = (name: string, version: string): string => `${name}\u0000${version}`;

export class ModelRepository {
  /** 'loading' until loadAll() finished, 'closing' from close() (or a shutdown) on. */
  state: RepositoryState = 'loading';
  /** Served versions: name → version → entry. */
  private readonly served = new Map<string, Map<string, Entry>>();
  /** The highest served version of each name (what a request without a version gets). */
  private readonly latest = new Map<string, Entry>();
  private readonly hooks: ModelHooks[] = [];
  private readonly retiring = new Set<Entry>();
  /** Versions whose last load failed: the stamp of the files that failed, and why (by versionKey). */
  private readonly failures = new Map<string, { stamp: string | null; reason: string }>();
  /** Versions being loaded now (by versionKey). */
  private readonly loading = new Set<string>();
  /** Names unloaded by request: refreshes leave them alone until they are loaded by request again. */
  private readonly unloadedByRequest = new Set<string>();
  /** One management operation per name at a time (a chain of promises per name). */
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly runtime: RuntimeOptions;
  private readonly loader: (source: ModelSource, runtime: RuntimeOptions) => Promise<Model>;
  private readonly pin: (source: ModelSource) => Promise<ModelSource>;
  readonly versionPolicy: VersionPolicy;

  constructor(private readonly opts: RepositoryOptions = {}) {
    this.runtime = opts.runtime ?? DEFAULT_RUNTIME_OPTIONS;
    this.loader = opts.loader ?? loadModel;
    // with the default loader the files are read once (readContents) and the main thread and the worker
    // threads (the prepare hook) load those bytes; a loader given in the options gets the source as found
    this.pin = opts.loader ? async (source) => source : readContents;
    this.versionPolicy = opts.versionPolicy ?? DEFAULT_VERSION_POLICY;
  }

  /** Run `hooks` around every model's life from now on. */
  use(hooks: ModelHooks): void {
    this.hooks.push(hooks);
  }

  /** Every model version at start-up (at least one), before the version policy. */
  discover(): { sources: ModelSource[]; skipped: string[] } {
    return discover(this.opts);
  }

  /**
   * Every model version on disk now, with its stamp, by name (versions ascending); files that vanished
   * while scanning are left out. Throws ModelLoadError when the models folder cannot be read.
   */
  scan(): Map<string, FoundVersion[]> {
    return scanVersions(this.opts);
  }

  /**
   * Discover and load every model (the versions the policy picks), then become ready. By default one
   * bad model stops the load and closes what was loaded (a server that is up serves everything it was
   * given); with `skipInvalid` bad models are reported and left out, but at least one must load. Errors
   * other than ModelLoadError (e.g. from a hook) always stop the load.
   */
  async loadAll(): Promise<LoadReport> {
    const { sources, skipped } = this.discover();
    const loaded: Model[] = [];
    const failed: LoadReport['failed'] = [];
    for (const source of this.pick(sources)) {
      const stamp = stampOf(source);
      try {
        loaded.push(await this.loadSource(source, stamp));
      } catch (err) {
        if (!this.opts.skipInvalid || !(err instanceof ModelLoadError)) {
          await this.unloadAll();
          throw err;
        }
        failed.push({ source, error: err.message });
      }
    }
    if (loaded.length === 0)
      throw new ModelLoadError(
        this.opts.modelPath ?? this.opts.modelsDir ?? 'models',
        `no model could be loaded: ${failed.map((f) => f.error).join('; ')}`,
      );
    if (this.state === 'loading') this.state = 'ready';
    return { loaded, failed, skipped };
  }

  /**
   * Load a model, prepare it (hooks) and serve it, in place of the model of that name and version if
   * there is one (swap). A model that fails to load or prepare is closed and the old one keeps serving.
   */
  load(source: ModelSource): Promise<Model> {
    return this.loadSource(source, stampOf(source));
  }

  private async loadSource(source: ModelSource, stamp: string | null): Promise<Model> {
    const key = versionKey(source.name, source.version ?? '1');
    const started = performance.now();
    this.loading.add(key);
    try {
      const pinned = await this.pin(source);
      const model = await this.loader(pinned, this.runtime);
      await this.serve(model, pinned, stamp, started);
      this.failures.delete(key);
      return model;
    } catch (err) {
      this.failures.set(key, { stamp, reason: (err as Error).message });
      this.opts.events?.failed?.(source, err as Error);
      throw err;
    } finally {
      this.loading.delete(key);
    }
  }

  /**
   * Serve `model` (already loaded) under its name and version: it is prepared first (hooks), then
   * replaces the current model of that name and version atomically; the old one is closed once its last
   * request finished. If preparing fails, `model` is closed and the old one keeps serving.
   */
  swap(model: Model, source: ModelSource): Promise<void> {
    return this.serve(model, source, null, performance.now());
  }

  private async serve(model: Model, source: ModelSource, stamp: string | null, started: number): Promise<void> {
    if (this.state === 'closing') {
      await model.close();
      throw new Error('the model repository is closing');
    }
    try {
      for (const h of this.hooks) await h.prepare?.(model, source);
    } catch (err) {
      await this.retireModel(model);
      throw err;
    }
    if ((this.state as RepositoryState) === 'closing') {
      // closed while preparing: close() no longer sees this model, so it is retired here
      await this.retireModel(model);
      throw new Error('the model repository is closing');
    }
    const versions = this.served.get(model.name) ?? new Map<string, Entry>();
    this.served.set(model.name, versions);
    const old = versions.get(model.version);
    // the entry keeps the paths, not the bytes (the worker pool keeps its own copy for a replaced worker)
    versions.set(model.version, new Entry(model, { ...source, contents: undefined }, stamp));
    this.updateLatest(model.name);
    this.opts.events?.loaded?.(model, source, (performance.now() - started) / 1000);
    if (old) this.retire(old, 'replaced');
    else this.opts.events?.served?.(this.servedCount());
  }

  /**
   * Stop serving every version of a model by request (the management unload): later refreshes (hot
   * reload) leave the name alone until it is loaded by request again. Resolves once the last request on
   * it finished and it is closed (hooks, then close()). Throws ModelNotFoundError when it is not served.
   */
  async unload(name: string): Promise<void> {
    if (!this.served.has(name)) throw this.notServed(name);
    this.unloadedByRequest.add(name);
    await this.unloadVersions(name, [...this.served.get(name)!.keys()]);
  }

  /**
   * The management load (V2 `POST /v2/repository/models/{name}/load`): read the model's folder again,
   * load the versions the policy picks (all of them again, changed or not) and swap them in; versions
   * that left are unloaded. Returns the served versions. Throws InputError for an unusable name,
   * ModelNotFoundError when there is no such model on disk, ModelLoadFailedError when a version failed
   * (the version served before, if any, keeps serving).
   */
  async loadByName(name: string): Promise<string[]> {
    if (!MODEL_NAME_RE.test(name))
      throw new InputError(
        `"${name.slice(0, 100)}" is not a usable model name (letters, digits, '.', '_', '-'; at most 64)`,
      );
    const found = this.scan().get(name);
    if (!found) {
      const known = [...new Set([...this.scan().keys(), ...this.served.keys()])].sort();
      throw new ModelNotFoundError(
        `no model "${name}" in the repository (${this.opts.modelPath ? 'MODEL_PATH' : 'MODELS_DIR'} has: ${known.join(', ') || 'none'})`,
      );
    }
    this.unloadedByRequest.delete(name);
    const report = await this.refresh(name, { found, force: true });
    if (report.failed.length) {
      const served = this.versions(name);
      throw new ModelLoadFailedError(
        `failed to load ${report.failed.map((f) => `"${name}" version ${f.version}: ${f.error}`).join('; ')}${served.length ? ` (served: version ${served.join(', ')})` : ''}`,
      );
    }
    return this.versions(name);
  }

  /**
   * Bring one model in line with its files: load the versions the policy picks that are new, changed
   * (their stamp differs from the served files') or, with `force`, all of them; then unload served
   * versions whose files are gone or that the policy no longer picks among the served ones. New versions
   * are served before old ones leave, and a version that fails to load unloads nothing. Files that
   * failed before with the same stamp are not loaded again (unless forced). `found`: the model's
   * versions from scan() (scanned now when absent; [] when the folder is gone). A name unloaded by
   * request is left alone. Never throws for a failed load: it is in the report (and the `failed` event).
   */
  refresh(name: string, opts: { found?: FoundVersion[]; force?: boolean } = {}): Promise<RefreshReport> {
    return this.withLock(name, async () => {
      const report: RefreshReport = { name, loaded: [], failed: [], unloaded: [] };
      if (this.unloadedByRequest.has(name) || this.state === 'closing') return report;
      const found = opts.found ?? this.scan().get(name) ?? [];
      const onDisk = new Map(found.map((f) => [f.source.version ?? '1', f]));
      for (const version of selectVersions([...onDisk.keys()], this.versionPolicy)) {
        const { source, stamp } = onDisk.get(version)!;
        const key = versionKey(name, version);
        if (!opts.force) {
          if (this.served.get(name)?.get(version)?.stamp === stamp) continue;
          if (this.failures.get(key)?.stamp === stamp) continue;
        }
        if (this.unloadedByRequest.has(name)) break; // unloaded by request meanwhile
        try {
          await this.loadSource(source, stamp);
          report.loaded.push(version);
        } catch (err) {
          report.failed.push({ version, error: (err as Error).message });
        }
      }
      for (const key of this.failures.keys()) {
        const [n, v] = key.split('\u0000') as [string, string];
        if (n === name && !onDisk.has(v)) this.failures.delete(key);
      }
      const served = [...(this.served.get(name)?.keys() ?? [])];
      // unloaded by request while loading: what this refresh loaded leaves too
      const keep = new Set(
        this.unloadedByRequest.has(name)
          ? []
          : selectVersions(
              served.filter((v) => onDisk.has(v)),
              this.versionPolicy,
            ),
      );
      const leaving = served.filter((v) => !keep.has(v));
      report.unloaded.push(...leaving);
      await this.unloadVersions(name, leaving);
      return report;
    });
  }

  /** Whether `name` was unloaded by request (refreshes leave it alone). */
  isUnloadedByRequest(name: string): boolean {
    return this.unloadedByRequest.has(name);
  }

  /**
   * The repository index (V2 repository extension): every model version on disk or served, with its
   * state and the reason when it is not served. `readyOnly`: the served ones only.
   */
  index(readyOnly = false): IndexEntry[] {
    let found = new Map<string, FoundVersion[]>();
    try {
      found = this.scan();
    } catch {
      // the folder cannot be read: the served models are still listed
    }
    const names = [...new Set([...found.keys(), ...this.served.keys()])].sort();
    const out: IndexEntry[] = [];
    for (const name of names) {
      const onDisk = (found.get(name) ?? []).map((f) => f.source.version ?? '1');
      const served = this.served.get(name);
      const picked = new Set(selectVersions(onDisk, this.versionPolicy));
      for (const version of [...new Set([...onDisk, ...(served?.keys() ?? [])])].sort(byVersion)) {
        const key = versionKey(name, version);
        const failure = this.failures.get(key);
        let state: IndexEntry['state'] = 'UNAVAILABLE';
        let reason = '';
        if (served?.has(version)) {
          state = 'READY';
          if (failure) reason = `loading changed files failed, the files loaded before keep serving: ${failure.reason}`;
        } else if (this.loading.has(key)) state = 'LOADING';
        else if (this.unloadedByRequest.has(name)) reason = 'unloaded';
        else if (failure) reason = failure.reason;
        else if (!picked.has(version)) reason = `not picked by MODEL_VERSION_POLICY=${policyText(this.versionPolicy)}`;
        else reason = 'not loaded';
        if (state === 'READY' || !readyOnly) out.push({ name, version, state, reason });
      }
    }
    return out;
  }

  /** The model served under `name` (the highest version, or `version`); throws ModelNotFoundError. */
  get(name: string, version?: string): Model {
    return this.entry(name, version).model;
  }

  /** get(), holding the model until release(): it is not closed under a running request. */
  acquire(name: string, version?: string): ModelLease {
    const entry = this.entry(name, version);
    entry.leases++;
    return entry;
  }

  release(lease: ModelLease): void {
    const entry = lease as Entry;
    entry.leases--;
    if (entry.retired && entry.leases === 0) void this.finish(entry);
  }

  /**
   * The report page of the model served under `name` (reportPath of its source, read on request, so a
   * page rewritten by the trainer is served at once). ModelNotFoundError for an unknown model or a
   * model without a readable page.
   */
  async report(name: string, version?: string): Promise<string> {
    const entry = this.entry(name, version);
    const file = reportPath(entry.source);
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new ModelNotFoundError(
        `model "${name}" has no report page (${basename(file)} beside its model file: ${code}); \`npm run train\` writes one`,
      );
    }
  }

  /** Versions served under `name`, ascending. */
  versions(name: string): string[] {
    return [...(this.served.get(name)?.keys() ?? [])].sort(byVersion);
  }

  /** Names served, sorted. */
  names(): string[] {
    return [...this.latest.keys()].sort();
  }

  /** The highest served version of each model, by name. */
  list(): Model[] {
    return this.names().map((n) => this.latest.get(n)!.model);
  }

  /** Every served model gives back what its runs left (Model.releaseIdle): called at a quiet moment. */
  async releaseIdle(): Promise<void> {
    const models = [...this.served.values()].flatMap((versions) => [...versions.values()].map((e) => e.model));
    await Promise.all(models.map((m) => m.releaseIdle?.().catch(() => undefined)));
  }

  /** Stop serving every model; resolves once all are closed (requests in flight finish first). */
  async close(): Promise<void> {
    this.state = 'closing';
    await this.unloadAll();
  }

  private entry(name: string, version: string | undefined): Entry {
    const entry = version === undefined ? this.latest.get(name) : this.served.get(name)?.get(version);
    if (entry) return entry;
    if (version === undefined || !this.served.has(name)) throw ModelNotFoundError.unknown(name, this.names());
    throw new ModelNotFoundError(
      `model "${name}" has no version "${version.slice(0, 100)}" (versions: ${this.versions(name).join(', ')})`,
    );
  }

  private notServed(name: string): ModelNotFoundError {
    return ModelNotFoundError.unknown(name, this.names());
  }

  private servedCount(): number {
    let n = 0;
    for (const v of this.served.values()) n += v.size;
    return n;
  }

  private updateLatest(name: string): void {
    const versions = this.served.get(name);
    if (!versions || versions.size === 0) {
      this.served.delete(name);
      this.latest.delete(name);
      return;
    }
    let best: Entry | undefined;
    for (const [v, e] of versions) if (!best || Number(v) > Number(best.model.version)) best = e;
    this.latest.set(name, best!);
  }

  /** Stop serving some versions of a model; resolves once they are closed (their requests finished). */
  private async unloadVersions(name: string, versions: string[]): Promise<void> {
    const map = this.served.get(name);
    const gone: Entry[] = [];
    for (const v of versions) {
      const e = map?.get(v);
      if (!e) continue;
      map!.delete(v);
      gone.push(e);
    }
    if (gone.length === 0) return;
    this.updateLatest(name);
    this.opts.events?.served?.(this.servedCount());
    for (const e of gone) this.retire(e, 'unloaded');
    await Promise.all(gone.map((e) => e.closed));
  }

  /** Run `fn` after every operation on `name` queued before it. */
  private withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const before = this.locks.get(name) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(name, tail);
    void tail.then(() => this.locks.get(name) === tail && this.locks.delete(name));
    return run;
  }

  /** Stop serving everything; resolves once every model still open (swapped out ones too) is closed. */
  private async unloadAll(): Promise<void> {
    const all = [...this.served.values()].flatMap((v) => [...v.values()]);
    this.served.clear();
    this.latest.clear();
    if (all.length) this.opts.events?.served?.(0);
    for (const e of all) this.retire(e, 'unloaded');
    await Promise.all([...this.retiring].map((e) => e.closed));
  }

  /** The versions of `sources` the policy picks, name by name (sources grouped by name, as scanned). */
  private pick(sources: ModelSource[]): ModelSource[] {
    const byName = new Map<string, ModelSource[]>();
    for (const s of sources) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
    const picked: ModelSource[] = [];
    for (const list of byName.values()) {
      const keep = new Set(
        selectVersions(
          list.map((s) => s.version ?? '1'),
          this.versionPolicy,
        ),
      );
      picked.push(...list.filter((s) => keep.has(s.version ?? '1')));
    }
    return picked;
  }

  private retire(entry: Entry, reason: UnloadReason): void {
    entry.retired = true;
    this.retiring.add(entry);
    this.opts.events?.unloaded?.(entry.model, reason);
    if (entry.leases === 0) void this.finish(entry);
  }

  private async finish(entry: Entry): Promise<void> {
    if (entry.finishing) return;
    entry.finishing = true;
    await this.retireModel(entry.model);
    this.retiring.delete(entry);
    this.opts.events?.closed?.(entry.model);
    entry.finish();
  }

  /** Hooks' retire, then close; errors are swallowed (a model that cannot close cleanly is gone anyway). */
  private async retireModel(model: Model): Promise<void> {
    for (const h of this.hooks) await h.retire?.(model)?.catch(() => undefined);
    await model.close().catch(() => undefined);
  }
}
