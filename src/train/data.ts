/**
 * CSV → numeric matrices for training. Every problem in a file is reported as a DataError naming the
 * file, the 1-based line and the column, so a user can open the file at the right place.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { Rng } from '../util/rng.js';
import { CsvRecords, checkHeader } from './csv-records.js';
import { DataError } from './data-error.js';
import { isShared, sharedFloat64 } from './shared-memory.js';
import { DatasetBuilder, MAX_INFERRED_CLASSES, NUMBER_RE, ReadAgainAsClassification } from './dataset-builder.js';

export { DataError } from './data-error.js';
export { MAX_INFERRED_CLASSES } from './dataset-builder.js';

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
 * Parse RFC 4180 CSV text into a table of strings (csv-records.ts has the rules). Small files only:
 * readDataset reads a file of any size into a Dataset without the table.
 */
export function parseCsv(text: string, file = '<csv>'): CsvTable {
  const records: { cells: string[]; line: number }[] = [];
  const csv = new CsvRecords(file, (cells, line) => records.push({ cells, line }));
  csv.push(text);
  csv.end();
  if (records.length === 0) throw new DataError(`${file}: the file is empty (no header row)`);
  const header = records[0]!.cells;
  checkHeader(header, records[0]!.line, file);
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

function cannotRead(file: string, err: unknown): DataError {
  return new DataError(
    `${file}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
  );
}

export function readCsvFile(file: string): { table: CsvTable; sha256: string } {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (err) {
    throw cannotRead(file, err);
  }
  const sha256 = createHash('sha256').update(buf).digest('hex');
  return { table: parseCsv(buf.toString('utf8'), file), sha256 };
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

export function inferTask(values: string[]): Task {
  const numeric = values.every((v) => NUMBER_RE.test(v));
  if (!numeric) return 'classification';
  const nums = values.map(Number);
  const distinct = new Set(nums);
  return nums.every(Number.isInteger) && distinct.size <= MAX_INFERRED_CLASSES ? 'classification' : 'regression';
}

/**
 * Build a Dataset with `read(builder)`, once more as a classification target when an inferred target
 * shows a text value after it was kept as numbers (ReadAgainAsClassification).
 */
function build(file: string, opts: DatasetOptions, read: (b: DatasetBuilder) => void): Dataset {
  try {
    const b = new DatasetBuilder(file, opts);
    read(b);
    return b.finish();
  } catch (err) {
    if (!(err instanceof ReadAgainAsClassification)) throw err;
    const b = new DatasetBuilder(file, { ...opts, task: 'classification' });
    read(b);
    return b.finish();
  }
}

/** Turn a parsed table into a numeric dataset. */
export function toDataset(table: CsvTable, opts: DatasetOptions): Dataset {
  return build(table.file, opts, (b) => {
    b.header(table.header);
    for (let i = 0; i < table.rows.length; i++) b.row(table.rows[i]!, table.lines[i]!);
  });
}

/** Bytes read at a time: large enough for few system calls, small against the dataset's own arrays. */
const CHUNK_BYTES = 1 << 20;

/** Feed the file's text to `onText` in chunks (UTF-8 decoded across chunk ends); its SHA-256, hex. */
function readChunks(file: string, onText: (text: string) => void): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw cannotRead(file, err);
  }
  try {
    const hash = createHash('sha256');
    const decoder = new StringDecoder('utf8');
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    for (;;) {
      let got: number;
      try {
        got = readSync(fd, buf, 0, CHUNK_BYTES, null);
      } catch (err) {
        throw cannotRead(file, err);
      }
      if (got === 0) break;
      hash.update(buf.subarray(0, got));
      onText(decoder.write(buf.subarray(0, got)));
    }
    onText(decoder.end());
    return hash.digest('hex');
  } finally {
    closeSync(fd);
  }
}

/**
 * Read a CSV file straight into a Dataset, in chunks (memory: the typed arrays, not the text or its
 * rows), with the errors of parseCsv and toDataset. Returns the dataset and the file's SHA-256.
 */
export function readDataset(file: string, opts: DatasetOptions): { data: Dataset; sha256: string } {
  let sha256 = '';
  const data = build(file, opts, (b) => {
    let header = true;
    const csv = new CsvRecords(file, (cells, line) => {
      if (!header) return b.row(cells, line);
      checkHeader(cells, line, file);
      b.header(cells);
      header = false;
    });
    sha256 = readChunks(file, (text) => csv.push(text));
    csv.end();
    if (header) throw new DataError(`${file}: the file is empty (no header row)`);
  });
  return { data, sha256 };
}

/** `ds` itself when its arrays are in shared memory, else a copy of it that is (sharedFloat64). */
export function sharedDataset(ds: Dataset): Dataset {
  if (isShared(ds.x) && isShared(ds.y)) return ds;
  const x = sharedFloat64(ds.x.length);
  const y = sharedFloat64(ds.y.length);
  x.set(ds.x);
  y.set(ds.y);
  return { ...ds, x, y };
}

/** Select rows of a dataset by index (into shared memory: sharedFloat64). */
export function subset(ds: Dataset, idx: ArrayLike<number>): Dataset {
  const f = ds.f;
  const x = sharedFloat64(idx.length * f);
  const y = sharedFloat64(idx.length);
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
