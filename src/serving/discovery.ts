/**
 * Discovery of model folders on disk (protocol-neutral, no state): every `<name>/model.<ext>` (a format
 * of src/model/formats.ts, + optional `model.json`) under a models folder, or one file given by
 * MODEL_PATH (name = file stem; card = `<stem>.json` beside it, or `model.json` when the file is
 * `model.onnx`). Versions: `<name>/<version>/model.<ext>` (+ its card beside it), a version being a
 * positive integer without leading zeros (Triton's layout); the flat `<name>/model.<ext>` is version 1.
 * Also what the repository needs of the files: their stamps (inode, size, mtime: changed or not, without
 * reading them), their contents read once (readContents), and the report page beside a model file.
 * Which versions are served (the version policy) and the served models are the repository's
 * (repository.ts).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { ModelLoadError } from '../model/errors.js';
import { FORMATS } from '../model/formats.js';
import type { ModelSource } from '../model/model.js';

export const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** A version folder: a positive integer, no leading zero (Triton ignores other folders the same way). */
export const VERSION_RE = /^[1-9]\d{0,8}$/;

/** Orders version strings by number (ascending). */
export const byVersion = (a: string, b: string): number => Number(a) - Number(b);

/** Where models are found: a models folder (default `models`), or one file (MODEL_PATH). */
export interface ModelLocation {
  modelsDir?: string;
  modelPath?: string;
}

/** The model file of a folder, in the first format that has one. */
const modelFileIn = (folder: string): string | undefined =>
  FORMATS.map((f) => join(folder, `model${f.extension}`)).find((f) => existsSync(f));

/**
 * The versions in one model folder: `<version>/model.<ext>` folders, and the flat `model.<ext>` as
 * version 1 (unless a `1/` folder holds one too: then the folder wins and the flat file is reported).
 */
function versionsIn(folder: string, name: string, skipped: string[]): ModelSource[] {
  const found: ModelSource[] = [];
  for (const entry of readdirSync(folder)) {
    if (!VERSION_RE.test(entry)) continue;
    const dir = join(folder, entry);
    let isDir = false;
    try {
      isDir = statSync(dir).isDirectory();
    } catch {
      continue; // removed while listing
    }
    const file = isDir ? modelFileIn(dir) : undefined;
    if (!file) continue;
    const card = join(dir, 'model.json');
    found.push({ name, version: entry, file, card: existsSync(card) ? card : null });
  }
  const flat = modelFileIn(folder);
  if (flat) {
    if (found.some((s) => s.version === '1'))
      skipped.push(`${flat}: version 1 is also in ${join(folder, '1')}/, which is served`);
    else {
      const card = join(folder, 'model.json');
      found.push({ name, version: '1', file: flat, card: existsSync(card) ? card : null });
    }
  }
  return found.sort((a, b) => byVersion(a.version!, b.version!));
}

/**
 * Every model version of a folder (or MODEL_PATH, as version 1), by name then version; does not apply
 * the version policy. Throws ModelLoadError when the folder cannot be read; an empty folder gives none.
 */
export function scanModels(opts: ModelLocation): {
  sources: ModelSource[];
  skipped: string[];
} {
  if (opts.modelPath) {
    const file = opts.modelPath;
    const stem = basename(file, extname(file));
    const card = stem === 'model' ? join(dirname(file), 'model.json') : join(dirname(file), `${stem}.json`);
    const name = stem === 'model' ? basename(dirname(file)) : stem;
    if (!MODEL_NAME_RE.test(name))
      throw new ModelLoadError(file, `"${name}" is not a usable model name (letters, digits, '.', '_', '-')`);
    return { sources: [{ name, version: '1', file, card: existsSync(card) ? card : null }], skipped: [] };
  }
  const dir = opts.modelsDir ?? 'models';
  let entries: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new ModelLoadError(dir, 'is not a folder');
    entries = readdirSync(dir).sort();
  } catch (err) {
    if (err instanceof ModelLoadError) throw err;
    throw new ModelLoadError(
      dir,
      `cannot read the models folder (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  const sources: ModelSource[] = [];
  const skipped: string[] = [];
  for (const entry of entries) {
    const folder = join(dir, entry);
    let versions: ModelSource[];
    try {
      if (!statSync(folder).isDirectory()) continue;
      versions = versionsIn(folder, entry, skipped);
    } catch {
      continue; // removed while listing
    }
    if (versions.length === 0) continue;
    if (!MODEL_NAME_RE.test(entry)) {
      skipped.push(`${folder}: "${entry}" is not a usable model name`);
      continue;
    }
    sources.push(...versions);
  }
  return { sources, skipped };
}

/** scanModels, needing at least one model (start-up): throws ModelLoadError otherwise. */
export function discover(opts: ModelLocation): {
  sources: ModelSource[];
  skipped: string[];
} {
  const found = scanModels(opts);
  if (found.sources.length === 0)
    throw new ModelLoadError(
      opts.modelsDir ?? 'models',
      `no models found (expected <name>/model${FORMATS[0]!.extension} or <name>/<version>/model${FORMATS[0]!.extension} folders)`,
    );
  return found;
}

/**
 * `source` with its files' contents (ModelSource.contents), read now. A missing card file is no card;
 * an unreadable model file or card is a ModelLoadError naming it.
 */
export async function readContents(source: ModelSource): Promise<ModelSource> {
  if (source.contents) return source;
  const read = async (path: string, encoding?: 'utf8'): Promise<Buffer | string | null> => {
    try {
      return await readFile(path, encoding);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      if (path !== source.file && code === 'ENOENT') return null;
      throw new ModelLoadError(path, `cannot read the ${path === source.file ? 'file' : 'card'} (${code})`);
    }
  };
  const model = (await read(source.file)) as Buffer;
  const card = source.card ? ((await read(source.card, 'utf8')) as string | null) : null;
  return { ...source, contents: { model: new Uint8Array(model.buffer, model.byteOffset, model.byteLength), card } };
}

/**
 * What tells a changed model from an unchanged one without reading it: inode, size and mtime of its
 * file and card (a rename, a rewrite or a touch changes it). null when the model file is gone.
 */
export function stampOf(source: ModelSource): string | null {
  const stamp = (path: string): string | null => {
    try {
      const s = statSync(path);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return null;
    }
  };
  const file = stamp(source.file);
  if (file === null) return null;
  return `${file}|${source.card ? (stamp(source.card) ?? '-') : '-'}`;
}

/** A model version found on disk, with the stamp of its files. */
export interface FoundVersion {
  source: ModelSource;
  stamp: string;
}

/**
 * The report page the trainer writes beside a model file: `report.html` beside `model.<ext>`, or
 * `<stem>.report.html` beside `<stem>.<ext>` (MODEL_PATH), like the card.
 */
export function reportPath(source: ModelSource): string {
  const stem = basename(source.file, extname(source.file));
  return join(dirname(source.file), stem === 'model' ? 'report.html' : `${stem}.report.html`);
}

/**
 * Every model version on disk now, with its stamp, by name (versions ascending); files that vanished
 * while scanning are left out. Throws ModelLoadError when the models folder cannot be read.
 */
export function scanVersions(location: ModelLocation): Map<string, FoundVersion[]> {
  const found = new Map<string, FoundVersion[]>();
  for (const source of scanModels(location).sources) {
    const stamp = stampOf(source);
    if (stamp === null) continue;
    const list = found.get(source.name) ?? [];
    list.push({ source, stamp });
    found.set(source.name, list);
  }
  return found;
}
