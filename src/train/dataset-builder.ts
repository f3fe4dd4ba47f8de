/**
 * CSV records → a Dataset's typed arrays, one row at a time: features parsed into a growing
 * Float64Array as they arrive, the target as a number, or as a label index (the text of each distinct
 * label kept once) while the task or the labels are not known yet. No row of strings outlives its line.
 */
import { DataError } from './data-error.js';
import type { Dataset, DatasetOptions, Task } from './data.js';
import { sharedFloat64 } from './shared-memory.js';

export const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Few distinct integer values (≤ this many) make a numeric target a classification target. */
export const MAX_INFERRED_CLASSES = 10;

/**
 * Thrown when an inferred target turns out to be a classification target (a text value) after its
 * earlier values were kept only as numbers: the caller reads the rows again with task classification.
 */
export class ReadAgainAsClassification extends Error {}

/** A Float64Array that doubles when full. */
class Growing {
  data = new Float64Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  /** The values, in an array of their own size in shared memory (data.ts sharedFloat64). */
  done(): Float64Array {
    const out = sharedFloat64(this.length);
    out.set(this.data.subarray(0, this.length));
    return out;
  }
}

function parseNumber(text: string, where: () => string): number {
  if (text === '') throw new DataError(`${where()}: missing value`);
  if (!NUMBER_RE.test(text)) throw new DataError(`${where()}: "${text}" is not a number`);
  const v = Number(text);
  if (!Number.isFinite(v)) throw new DataError(`${where()}: "${text}" is out of range`);
  return v;
}

/** Distinct labels in their order: numeric order when all are numbers, else text order. */
function labelOrder(texts: string[]): string[] {
  const allNumeric = texts.every((v) => NUMBER_RE.test(v));
  return allNumeric ? [...texts].sort((a, b) => Number(a) - Number(b)) : [...texts].sort();
}

/** Builds a Dataset from a header and rows of cells (see the file comment). */
export class DatasetBuilder {
  private features: string[] = [];
  private featureCols: number[] = [];
  private targetCol = -1;
  private width = 0;
  private readonly x = new Growing();
  private readonly y = new Growing();
  /** Label text → index, while the target may be (or is) a classification target without given labels. */
  private dictionary: Map<string, number> | null;
  /** Inferring the task: every target so far is a number, and these are its distinct values. */
  private numeric = true;
  private readonly distinctNumbers = new Set<number>();
  /** An inferred target read as numbers: the first value out of range, an error if it stays regression. */
  private outOfRange: DataError | null = null;

  constructor(
    private readonly file: string,
    private readonly opts: DatasetOptions,
  ) {
    this.dictionary = opts.task === 'regression' ? null : new Map(opts.labels?.map((l, k) => [l, k]));
  }

  /** Check the header against the target and the expected features. */
  header(header: string[]): void {
    const { file, opts } = this;
    this.width = header.length;
    this.targetCol = header.indexOf(opts.target);
    if (this.targetCol < 0) {
      throw new DataError(`${file}: unknown target column "${opts.target}" (columns: ${header.join(', ')})`);
    }
    let features = header.filter((_, j) => j !== this.targetCol);
    if (opts.features) {
      const missing = opts.features.filter((f) => !header.includes(f));
      if (missing.length) throw new DataError(`${file}: missing feature column(s): ${missing.join(', ')}`);
      const extra = features.filter((f) => !opts.features!.includes(f));
      if (extra.length)
        throw new DataError(`${file}: unexpected column(s) not in the training data: ${extra.join(', ')}`);
      features = opts.features;
    }
    if (features.length === 0) throw new DataError(`${file}: no feature columns besides the target "${opts.target}"`);
    this.features = features;
    this.featureCols = features.map((f) => header.indexOf(f));
  }

  /** Parse one data row (its cells as text, `line` its 1-based line in the file). */
  row(cells: string[], line: number): void {
    if (cells.length !== this.width) {
      throw new DataError(`${this.file}:${line}: ragged row: ${cells.length} fields, the header has ${this.width}`);
    }
    for (let j = 0; j < this.featureCols.length; j++) {
      const text = cells[this.featureCols[j]!]!;
      const v = NUMBER_RE.test(text) ? Number(text) : Number.NaN;
      // the slow path only to name the problem
      this.x.push(
        Number.isFinite(v) ? v : parseNumber(text, () => `${this.file}:${line}: column "${this.features[j]}"`),
      );
    }
    const text = cells[this.targetCol]!;
    const where = (): string => `${this.file}:${line}: column "${this.opts.target}"`;
    if (text === '') throw new DataError(`${where()}: missing value`);
    if (this.opts.task === 'regression') this.y.push(parseNumber(text, where));
    else if (this.opts.labels) this.y.push(this.knownLabel(text, line));
    else if (this.opts.task === 'classification') this.y.push(this.labelIndex(text));
    else this.y.push(this.inferred(text, where));
  }

  private knownLabel(text: string, line: number): number {
    const k = this.dictionary!.get(text);
    if (k === undefined) {
      throw new DataError(
        `${this.file}:${line}: column "${this.opts.target}": unknown class "${text}" (known: ${this.opts.labels!.join(', ')})`,
      );
    }
    return k;
  }

  private labelIndex(text: string): number {
    const d = this.dictionary!;
    const k = d.get(text);
    if (k !== undefined) return k;
    d.set(text, d.size);
    return d.size - 1;
  }

  /**
   * The task is inferred (inferTask's rule): the label index while the values could be classes (a text
   * value, or integers with few distinct values), the number once they cannot.
   */
  private inferred(text: string, where: () => string): number {
    if (!NUMBER_RE.test(text)) {
      if (!this.dictionary) throw new ReadAgainAsClassification();
      this.numeric = false;
      return this.labelIndex(text);
    }
    if (!this.numeric) return this.labelIndex(text);
    const v = Number(text);
    if (!Number.isFinite(v)) this.outOfRange ??= new DataError(`${where()}: "${text}" is out of range`);
    if (!this.dictionary) return v;
    this.distinctNumbers.add(v);
    if (Number.isInteger(v) && this.distinctNumbers.size <= MAX_INFERRED_CLASSES) return this.labelIndex(text);
    // a regression target unless a text value comes (then: read again): label indices → numbers
    const texts = [...this.dictionary.keys()];
    const y = this.y.data;
    for (let i = 0; i < this.y.length; i++) y[i] = Number(texts[y[i]!]);
    this.dictionary = null;
    return v;
  }

  /** The Dataset of the rows so far. */
  finish(): Dataset {
    const n = this.y.length;
    if (n === 0) throw new DataError(`${this.file}: the file has a header but no data rows`);
    const task: Task = this.opts.task ?? (this.dictionary ? 'classification' : 'regression');
    if (task === 'regression' && this.outOfRange) throw this.outOfRange;
    const base = { task, features: this.features, target: this.opts.target, n, f: this.features.length };
    if (task === 'regression' || this.opts.labels) {
      return { ...base, x: this.x.done(), y: this.y.done(), labels: this.opts.labels ?? [] };
    }
    const texts = [...this.dictionary!.keys()];
    const labels = labelOrder(texts);
    if (labels.length < 2) {
      throw new DataError(
        `${this.file}: the target column "${this.opts.target}" has a single class ("${labels[0]}"); classification needs at least two`,
      );
    }
    const rank = new Map(labels.map((l, k) => [l, k]));
    const remap = texts.map((t) => rank.get(t)!);
    const y = this.y.done();
    for (let i = 0; i < n; i++) y[i] = remap[y[i]!]!;
    return { ...base, x: this.x.done(), y, labels };
  }
}
