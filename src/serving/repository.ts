/**
 * The model repository (like kserve's ModelRepository, python/kserve/kserve/model_repository.py): the
 * one place that finds, loads, lists, swaps and unloads models. Protocol-neutral: no HTTP here.
 *
 * Discovery: every `<name>/model.<ext>` (a format of src/model/formats.ts, + optional `model.json`)
 * under a models folder, or one file given by MODEL_PATH (name = file stem; card = `<stem>.json` beside
 * it, or `model.json` when the file is `model.onnx`).
 *
 * Requests hold a lease on the model they run on (acquire/release): a model that is swapped out or
 * unloaded stops being handed out at once, and is closed only when its last lease is released, so
 * requests in flight finish on the model object they started with.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import type { Config } from '../config.js';
import { ModelLoadError } from '../model/errors.js';
import { FORMATS, loadModel } from '../model/formats.js';
import { DEFAULT_RUNTIME_OPTIONS, type Model, type ModelSource, type RuntimeOptions } from '../model/model.js';
import { ModelNotFoundError } from './errors.js';

export const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The runtime options of the configuration. */
export function runtimeOptions(config: Pick<Config, 'ORT_INTRA_OP_THREADS' | 'MC_MAX_RUN_ROWS' | 'MC_SHARED_PREFIX'>): RuntimeOptions {
  return { ...DEFAULT_RUNTIME_OPTIONS, intraOpThreads: config.ORT_INTRA_OP_THREADS, maxRunRows: config.MC_MAX_RUN_ROWS, sharedPrefix: config.MC_SHARED_PREFIX };
}

/** List the models of a folder (or MODEL_PATH); throws ModelLoadError when the folder is missing or holds none. */
export function discover(opts: { modelsDir?: string; modelPath?: string }): { sources: ModelSource[]; skipped: string[] } {
  if (opts.modelPath) {
    const file = opts.modelPath;
    const stem = basename(file, extname(file));
    const card = stem === 'model' ? join(dirname(file), 'model.json') : join(dirname(file), `${stem}.json`);
    const name = stem === 'model' ? basename(dirname(file)) : stem;
    if (!MODEL_NAME_RE.test(name)) throw new ModelLoadError(file, `"${name}" is not a usable model name (letters, digits, '.', '_', '-')`);
    return { sources: [{ name, file, card: existsSync(card) ? card : null }], skipped: [] };
  }
  const dir = opts.modelsDir ?? 'models';
  let entries: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new ModelLoadError(dir, 'is not a folder');
    entries = readdirSync(dir).sort();
  } catch (err) {
    if (err instanceof ModelLoadError) throw err;
    throw new ModelLoadError(dir, `cannot read the models folder (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const sources: ModelSource[] = [];
  const skipped: string[] = [];
  for (const entry of entries) {
    const folder = join(dir, entry);
    if (!statSync(folder).isDirectory()) continue;
    const file = FORMATS.map((f) => join(folder, `model${f.extension}`)).find((f) => existsSync(f));
    if (!file) continue;
    if (!MODEL_NAME_RE.test(entry)) {
      skipped.push(`${folder}: "${entry}" is not a usable model name`);
      continue;
    }
    const card = join(folder, 'model.json');
    sources.push({ name: entry, file, card: existsSync(card) ? card : null });
  }
  if (sources.length === 0) throw new ModelLoadError(dir, `no models found (expected <name>/model${FORMATS[0]!.extension} folders)`);
  return { sources, skipped };
}

/**
 * The report page the trainer writes beside a model file: `report.html` beside `model.<ext>`, or
 * `<stem>.report.html` beside `<stem>.<ext>` (MODEL_PATH), like the card.
 */
export function reportPath(source: ModelSource): string {
  const stem = basename(source.file, extname(source.file));
  return join(dirname(source.file), stem === 'model' ? 'report.html' : `${stem}.report.html`);
}

export type RepositoryState = 'loading' | 'ready' | 'closing';

/** What the data plane does around a model's life (DataPlane implements it). */
export interface ModelHooks {
  /** After a model loaded, before it is served (e.g. load it on the worker threads); throwing fails the load. */
  prepare?(model: Model, source: ModelSource): Promise<void>;
  /** After a model stopped being served and its last request finished, before it is closed. */
  retire?(model: Model): Promise<void>;
}

/** Observers of the repository (logs, metrics). */
export interface RepositoryEvents {
  loaded?(model: Model, source: ModelSource): void;
  failed?(source: ModelSource, error: Error): void;
  /** A model stopped being served (swapped out or unloaded); it is closed once its requests finished. */
  unloaded?(model: Model): void;
  /** The number of models served changed. */
  served?(count: number): void;
}

export interface RepositoryOptions {
  modelsDir?: string;
  modelPath?: string;
  /** A bad model is reported and left out instead of failing loadAll. */
  skipInvalid?: boolean;
  runtime?: RuntimeOptions;
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

export class ModelRepository {
  /** 'loading' until loadAll() finished, 'closing' from close() (or a shutdown) on. */
  state: RepositoryState = 'loading';
  private readonly entries = new Map<string, Entry>();
  private readonly hooks: ModelHooks[] = [];
  private readonly retiring = new Set<Entry>();
  private readonly runtime: RuntimeOptions;
  private readonly loader: (source: ModelSource, runtime: RuntimeOptions) => Promise<Model>;

  constructor(private readonly opts: RepositoryOptions = {}) {
    this.runtime = opts.runtime ?? DEFAULT_RUNTIME_OPTIONS;
    this.loader = opts.loader ?? loadModel;
  }

  /** Run `hooks` around every model's life from now on. */
  use(hooks: ModelHooks): void {
    this.hooks.push(hooks);
  }

  discover(): { sources: ModelSource[]; skipped: string[] } {
    return discover(this.opts);
  }

  /**
   * Discover and load every model, then become ready. By default one bad model stops the load and
   * closes what was loaded (a server that is up serves everything it was given); with `skipInvalid` bad
   * models are reported and left out, but at least one must load. Errors other than ModelLoadError
   * (e.g. from a hook) always stop the load.
   */
  async loadAll(): Promise<LoadReport> {
    const { sources, skipped } = this.discover();
    const loaded: Model[] = [];
    const failed: LoadReport['failed'] = [];
    for (const source of sources) {
      try {
        loaded.push(await this.load(source));
      } catch (err) {
        if (!this.opts.skipInvalid || !(err instanceof ModelLoadError)) {
          await this.unloadAll();
          throw err;
        }
        failed.push({ source, error: err.message });
      }
    }
    if (loaded.length === 0) throw new ModelLoadError(this.opts.modelPath ?? this.opts.modelsDir ?? 'models', `no model could be loaded: ${failed.map((f) => f.error).join('; ')}`);
    if (this.state === 'loading') this.state = 'ready';
    return { loaded, failed, skipped };
  }

  /**
   * Load a model, prepare it (hooks) and serve it, in place of the model of that name if there is one
   * (swap). A model that fails to load or prepare is closed and the old one keeps serving.
   */
  async load(source: ModelSource): Promise<Model> {
    try {
      const model = await this.loader(source, this.runtime);
      await this.swap(model, source);
      return model;
    } catch (err) {
      this.opts.events?.failed?.(source, err as Error);
      throw err;
    }
  }

  /**
   * Serve `model` (already loaded) under its name: it is prepared first (hooks), then replaces the
   * current model of that name atomically; the old one is closed once its last request finished.
   * If preparing fails, `model` is closed and the old one keeps serving.
   */
  async swap(model: Model, source: ModelSource): Promise<void> {
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
    const old = this.entries.get(model.name);
    this.entries.set(model.name, new Entry(model, source));
    this.opts.events?.loaded?.(model, source);
    if (old) this.retire(old);
    else this.opts.events?.served?.(this.entries.size);
  }

  /**
   * Stop serving a model; resolves once its last request finished and it is closed (hooks, then
   * close()). Throws ModelNotFoundError for an unknown name.
   */
  async unload(name: string): Promise<void> {
    const entry = this.entries.get(name);
    if (!entry) throw ModelNotFoundError.unknown(name, this.names());
    this.entries.delete(name);
    this.opts.events?.served?.(this.entries.size);
    this.retire(entry);
    await entry.closed;
  }

  /** The model served under `name` (and `version`, when given); throws ModelNotFoundError. */
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
      throw new ModelNotFoundError(`model "${name}" has no report page (${basename(file)} beside its model file: ${code}); \`npm run train\` writes one`);
    }
  }

  /** Versions served under `name` ("1" for now). */
  versions(name: string): string[] {
    const entry = this.entries.get(name);
    return entry ? [entry.model.version] : [];
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  list(): Model[] {
    return [...this.entries.values()].map((e) => e.model);
  }

  /** Stop serving every model; resolves once all are closed (requests in flight finish first). */
  async close(): Promise<void> {
    this.state = 'closing';
    await this.unloadAll();
  }

  private entry(name: string, version: string | undefined): Entry {
    const entry = this.entries.get(name);
    if (!entry) throw ModelNotFoundError.unknown(name, this.names());
    if (version !== undefined && version !== entry.model.version) throw new ModelNotFoundError(`model "${name}" has no version "${version}" (versions: ${entry.model.version})`);
    return entry;
  }

  /** Stop serving everything; resolves once every model still open (swapped out ones too) is closed. */
  private async unloadAll(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    if (all.length) this.opts.events?.served?.(0);
    for (const e of all) this.retire(e);
    await Promise.all([...this.retiring].map((e) => e.closed));
  }

  private retire(entry: Entry): void {
    entry.retired = true;
    this.retiring.add(entry);
    this.opts.events?.unloaded?.(entry.model);
    if (entry.leases === 0) void this.finish(entry);
  }

  private async finish(entry: Entry): Promise<void> {
    if (entry.finishing) return;
    entry.finishing = true;
    await this.retireModel(entry.model);
    this.retiring.delete(entry);
    entry.finish();
  }

  /** Hooks' retire, then close; errors are swallowed (a model that cannot close cleanly is gone anyway). */
  private async retireModel(model: Model): Promise<void> {
    for (const h of this.hooks) await h.retire?.(model)?.catch(() => undefined);
    await model.close().catch(() => undefined);
  }
}

