/**
 * Discover and load the served models: every `<name>/model.onnx` (+ optional `model.json`) under a
 * models folder, or one file given by MODEL_PATH (name = file stem; card = `<stem>.json` beside it,
 * or `model.json` when the file is `model.onnx`).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { ModelLoadError } from '../model/errors.js';
import { loadModel } from '../model/formats.js';
import type { Model, ModelSource, RuntimeOptions } from '../model/model.js';

export const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** List the models of a folder; throws ModelLoadError when the folder is missing or holds none. */
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
    const onnx = join(folder, 'model.onnx');
    if (!statSync(folder).isDirectory() || !existsSync(onnx)) continue;
    if (!MODEL_NAME_RE.test(entry)) {
      skipped.push(`${folder}: "${entry}" is not a usable model name`);
      continue;
    }
    const card = join(folder, 'model.json');
    sources.push({ name: entry, file: onnx, card: existsSync(card) ? card : null });
  }
  if (sources.length === 0) throw new ModelLoadError(dir, 'no models found (expected <name>/model.onnx folders)');
  return { sources, skipped };
}

export interface LoadReport {
  models: Map<string, Model>;
  /** Models that failed and were skipped (only with skipInvalid). */
  failed: { source: ModelSource; error: string }[];
  skipped: string[];
  /** Every source discovered. */
  sources: ModelSource[];
}

/**
 * Load every model. By default one bad model stops the load (a server that is up serves everything it
 * was given); with `skipInvalid` bad models are reported and left out, but at least one must load.
 */
export async function loadAll(
  opts: { modelsDir?: string; modelPath?: string; skipInvalid?: boolean },
  runtime: RuntimeOptions,
  onLoad?: (m: Model) => void,
): Promise<LoadReport> {
  const { sources, skipped } = discover(opts);
  const models = new Map<string, Model>();
  const failed: LoadReport['failed'] = [];
  for (const source of sources) {
    try {
      const m = await loadModel(source, runtime);
      models.set(source.name, m);
      onLoad?.(m);
    } catch (err) {
      if (!opts.skipInvalid || !(err instanceof ModelLoadError)) {
        await Promise.all([...models.values()].map((m) => m.close()));
        throw err;
      }
      failed.push({ source, error: (err as Error).message });
    }
  }
  if (models.size === 0) throw new ModelLoadError(opts.modelPath ?? opts.modelsDir ?? 'models', `no model could be loaded: ${failed.map((f) => f.error).join('; ')}`);
  return { models, failed, skipped, sources };
}
