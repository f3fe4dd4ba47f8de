/**
 * CSV → numeric matrices for training. Every problem in a file is reported as a DataError naming the
 * file, the 1-based line and the column, so a user can open the file at the right place.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Rng } from '../util/rng.js';

export class DataError extends Error {
  override name = 'DataError';
}

export type Task = 'regression' | 'classification';

export interface CsvTable {
  file: string;
  header: string[];
  /** Cells of each data row, as text. */
  rows: string[][];
  /** 1-based line number of each data row in the file (quoted newlines make it differ from index+2). */
  lines: number[];
}

/**
 * Parse RFC 4180 CSV: comma separator, double-quoted fields with "" escapes and embedded newlines,
 * CRLF or LF line ends, an optional UTF-8 BOM. Blank lines are skipped. Ragged rows are errors.
 */
export function parseCsv(text: string, file = '<csv>'): CsvTable {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const records: { cells: string[]; line: number }[] = [];
  let cells: string[] = [];
  let field = '';
  let inQuotes = false;
  let fieldQuoted = false;
  let line = 1;
  let recordLine = 1;
  const endField = (): void => {
    cells.push(fieldQuoted ? field : field.trim());
    field = '';
    fieldQuoted = false;
  };
  const endRecord = (): void => {
    endField();
    const blank = cells.length === 1 && cells[0] === '';
    if (!blank) records.push({ cells, line: recordLine });
    cells = [];
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inQuotes) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else inQuotes = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
      continue;
    }
    if (c === '"') {
      if (field.trim() !== '') {
        throw new DataError(`${file}:${line}: a quote inside an unquoted field (column ${cells.length + 1})`);
      }
      field = '';
      inQuotes = true;
      fieldQuoted = true;
    } else if (c === ',') {
      endField();
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
      recordLine = line;
    } else {
      field += c;
    }
  }
  if (inQuotes) throw new DataError(`${file}:${recordLine}: unterminated quoted field`);
  if (field !== '' || cells.length > 0) endRecord();

  if (records.length === 0) throw new DataError(`${file}: the file is empty (no header row)`);
  const header = records[0]!.cells;
  const seen = new Set<string>();
  header.forEach((h, j) => {
    if (h === '') throw new DataError(`${file}:${records[0]!.line}: column ${j + 1} has an empty name in the header`);
    if (seen.has(h)) throw new DataError(`${file}:${records[0]!.line}: column name "${h}" appears twice in the header`);
    seen.add(h);
  });
  const rows: string[][] = [];
  const lines: number[] = [];
  for (const r of records.slice(1)) {
    if (r.cells.length !== header.length) {
      throw new DataError(`${file}:${r.line}: ragged row: ${r.cells.length} fields, the header has ${header.length}`);
    }
    rows.push(r.cells);
    lines.push(r.line);
  }
  if (rows.length === 0) throw new DataError(`${file}: the file has a header but no data rows`);
  return { file, header, rows, lines };
}

export function readCsvFile(file: string): { table: CsvTable; sha256: string } {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (err) {
    throw new DataError(
      `${file}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  const sha256 = createHash('sha256').update(buf).digest('hex');
  return { table: parseCsv(buf.toString('utf8'), file), sha256 };
}

const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function parseNumber(table: CsvTable, row: number, col: number): number {
  const text = table.rows[row]![col]!;
  const where = `${table.file}:${table.lines[row]}: column "${table.header[col]}"`;
  if (text === '') throw new DataError(`${where}: missing value`);
  if (!NUMBER_RE.test(text)) throw new DataError(`${where}: "${text}" is not a number`);
  const v = Number(text);
  if (!Number.isFinite(v)) throw new DataError(`${where}: "${text}" is out of range`);
  return v;
}

export interface Dataset {
  task: Task;
  features: string[];
  target: string;
  /** Row-major features, n × f. */
  x: Float64Array;
  /** Regression: target values. Classification: label index per row. */
  y: Float64Array;
  labels: string[];
  n: number;
  f: number;
}

export interface DatasetOptions {
  target: string;
  task?: Task;
  /** When given (test data), the feature columns must be exactly these, in any column order. */
  features?: string[];
  /** When given (test data), class labels must come from this list. */
  labels?: string[];
}

/** Few distinct integer values (≤ this many) make a numeric target a classification target. */
export const MAX_INFERRED_CLASSES = 10;

export function inferTask(values: string[]): Task {
  const numeric = values.every((v) => NUMBER_RE.test(v));
  if (!numeric) return 'classification';
  const nums = values.map(Number);
  const distinct = new Set(nums);
  return nums.every(Number.isInteger) && distinct.size <= MAX_INFERRED_CLASSES ? 'classification' : 'regression';
}

/** Turn a parsed table into a numeric dataset. */
export function toDataset(table: CsvTable, opts: DatasetOptions): Dataset {
  const targetCol = table.header.indexOf(opts.target);
  if (targetCol < 0) {
    throw new DataError(`${table.file}: unknown target column "${opts.target}" (columns: ${table.header.join(', ')})`);
  }
  let features = table.header.filter((_, j) => j !== targetCol);
  if (opts.features) {
    const missing = opts.features.filter((f) => !table.header.includes(f));
    if (missing.length) throw new DataError(`${table.file}: missing feature column(s): ${missing.join(', ')}`);
    const extra = features.filter((f) => !opts.features!.includes(f));
    if (extra.length)
      throw new DataError(`${table.file}: unexpected column(s) not in the training data: ${extra.join(', ')}`);
    features = opts.features;
  }
  if (features.length === 0)
    throw new DataError(`${table.file}: no feature columns besides the target "${opts.target}"`);
  const featureCols = features.map((f) => table.header.indexOf(f));
  const n = table.rows.length;
  const f = features.length;
  const x = new Float64Array(n * f);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < f; j++) x[i * f + j] = parseNumber(table, i, featureCols[j]!);
  }
  const targetText = table.rows.map((r, i) => {
    const v = r[targetCol]!;
    if (v === '') throw new DataError(`${table.file}:${table.lines[i]}: column "${opts.target}": missing value`);
    return v;
  });
  const task = opts.task ?? inferTask(targetText);
  const y = new Float64Array(n);
  let labels: string[] = [];
  if (task === 'regression') {
    for (let i = 0; i < n; i++) y[i] = parseNumber(table, i, targetCol);
  } else {
    if (opts.labels) {
      labels = opts.labels;
    } else {
      const distinct = [...new Set(targetText)];
      const allNumeric = distinct.every((v) => NUMBER_RE.test(v));
      labels = allNumeric ? distinct.sort((a, b) => Number(a) - Number(b)) : distinct.sort();
      if (labels.length < 2) {
        throw new DataError(
          `${table.file}: the target column "${opts.target}" has a single class ("${labels[0]}"); classification needs at least two`,
        );
      }
    }
    const index = new Map(labels.map((l, k) => [l, k]));
    for (let i = 0; i < n; i++) {
      const k = index.get(targetText[i]!);
      if (k === undefined) {
        throw new DataError(
          `${table.file}:${table.lines[i]}: column "${opts.target}": unknown class "${targetText[i]}" (known: ${labels.join(', ')})`,
        );
      }
      y[i] = k;
    }
  }
  return { task, features, target: opts.target, x, y, labels, n, f };
}

/** Select rows of a dataset by index. */
export function subset(ds: Dataset, idx: ArrayLike<number>): Dataset {
  const f = ds.f;
  const x = new Float64Array(idx.length * f);
  const y = new Float64Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i]!;
    x.set(ds.x.subarray(r * f, r * f + f), i * f);
    y[i] = ds.y[r]!;
  }
  return { ...ds, x, y, n: idx.length };
}

/**
 * Seeded random split into (rest, held-out) with round(n·fraction) held-out rows; both parts must keep
 * at least `minRows` rows.
 */
export function splitRows(ds: Dataset, fraction: number, seed: number, what: string, minRows = 2): [Dataset, Dataset] {
  const idx = new Uint32Array(ds.n);
  for (let i = 0; i < ds.n; i++) idx[i] = i;
  new Rng(seed).shuffle(idx);
  const held = Math.round(ds.n * fraction);
  if (held < minRows || ds.n - held < minRows) {
    throw new DataError(
      `${ds.n} rows are too few for a ${what} of ${fraction}: it would leave ${ds.n - held} and ${held} rows (need at least ${minRows} in each)`,
    );
  }
  return [subset(ds, idx.subarray(held)), subset(ds, idx.subarray(0, held))];
}

export interface Standardiser {
  mean: Float64Array;
  std: Float64Array;
}

/**
 * Column means and population standard deviations; a constant column gets std 1 so that it
 * standardises to 0 instead of NaN.
 */
export function fitStandardiser(values: Float64Array, n: number, cols: number): Standardiser {
  const mean = new Float64Array(cols);
  const std = new Float64Array(cols);
  for (let i = 0; i < n; i++) for (let j = 0; j < cols; j++) mean[j]! += values[i * cols + j]!;
  for (let j = 0; j < cols; j++) mean[j]! /= n;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < cols; j++) {
      const d = values[i * cols + j]! - mean[j]!;
      std[j]! += d * d;
    }
  }
  for (let j = 0; j < cols; j++) {
    const s = Math.sqrt(std[j]! / n);
    std[j] = s > 1e-12 * Math.max(1, Math.abs(mean[j]!)) ? s : 1;
  }
  return { mean, std };
}
