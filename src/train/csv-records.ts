/**
 * An RFC 4180 tokenizer that takes the text in chunks: comma separator, double-quoted fields with ""
 * escapes and embedded newlines, CRLF or LF line ends, an optional UTF-8 BOM, blank lines skipped. Each
 * record goes to a callback with its 1-based line, so a file of any size is read in bounded memory.
 */
import { DataError } from './data-error.js';

const COMMA = 44;
const LF = 10;
const CR = 13;
const QUOTE = 34;

export class CsvRecords {
  private cells: string[] = [];
  private field = '';
  private inQuotes = false;
  private fieldQuoted = false;
  private line = 1;
  private recordLine = 1;
  private started = false;
  /** A CR ended the last chunk: an LF starting the next belongs to it. */
  private pendingCr = false;
  /** A quote inside quotes ended the last chunk: the next character says whether it was an escape. */
  private pendingQuote = false;

  constructor(
    private readonly file: string,
    private readonly onRecord: (cells: string[], line: number) => void,
  ) {}

  /** Tokenize the next chunk of text (chunks may split a record, a field or a CRLF anywhere). */
  push(text: string): void {
    if (text.length === 0) return;
    let i = 0;
    if (!this.started) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) i = 1;
    }
    if (this.pendingCr) {
      this.pendingCr = false;
      if (text.charCodeAt(i) === LF) i++;
    }
    if (this.pendingQuote) {
      this.pendingQuote = false;
      if (text.charCodeAt(i) === QUOTE) {
        this.field += '"';
        i++;
      } else this.inQuotes = false;
    }
    while (i < text.length) i = this.inQuotes ? this.quoted(text, i) : this.unquoted(text, i);
  }

  /** The end of the input: the last record, or an error for an open quote. */
  end(): void {
    if (this.pendingQuote) this.inQuotes = false;
    if (this.inQuotes) throw new DataError(`${this.file}:${this.recordLine}: unterminated quoted field`);
    if (this.field !== '' || this.cells.length > 0) this.endRecord();
  }

  /** Inside quotes from `i`: up to the next quote; returns where to go on. */
  private quoted(text: string, i: number): number {
    const q = text.indexOf('"', i);
    const end = q < 0 ? text.length : q;
    for (let k = text.indexOf('\n', i); k >= 0 && k < end; k = text.indexOf('\n', k + 1)) this.line++;
    this.field += text.slice(i, end);
    if (q < 0) return text.length;
    if (q + 1 === text.length) {
      this.pendingQuote = true;
      return text.length;
    }
    if (text.charCodeAt(q + 1) === QUOTE) {
      this.field += '"';
      return q + 2;
    }
    this.inQuotes = false;
    return q + 1;
  }

  /** Outside quotes from `i`: a run of plain characters, then the separator, line end or quote after it. */
  private unquoted(text: string, i: number): number {
    let j = i;
    for (; j < text.length; j++) {
      const c = text.charCodeAt(j);
      if (c === COMMA || c === LF || c === CR || c === QUOTE) break;
    }
    if (j > i) this.field += text.slice(i, j);
    if (j === text.length) return j;
    const c = text.charCodeAt(j++);
    if (c === QUOTE) {
      if (this.field.trim() !== '') {
        throw new DataError(
          `${this.file}:${this.line}: a quote inside an unquoted field (column ${this.cells.length + 1})`,
        );
      }
      this.field = '';
      this.inQuotes = true;
      this.fieldQuoted = true;
    } else if (c === COMMA) {
      this.endField();
    } else {
      if (c === CR) {
        if (j === text.length) this.pendingCr = true;
        else if (text.charCodeAt(j) === LF) j++;
      }
      this.endRecord();
      this.line++;
      this.recordLine = this.line;
    }
    return j;
  }

  private endField(): void {
    this.cells.push(this.fieldQuoted ? this.field : this.field.trim());
    this.field = '';
    this.fieldQuoted = false;
  }

  private endRecord(): void {
    this.endField();
    const cells = this.cells;
    this.cells = [];
    if (!(cells.length === 1 && cells[0] === '')) this.onRecord(cells, this.recordLine);
  }
}

/** Header names must be non-empty and distinct. */
export function checkHeader(header: string[], line: number, file: string): void {
  const seen = new Set<string>();
  header.forEach((h, j) => {
    if (h === '') throw new DataError(`${file}:${line}: column ${j + 1} has an empty name in the header`);
    if (seen.has(h)) throw new DataError(`${file}:${line}: column name "${h}" appears twice in the header`);
    seen.add(h);
  });
}
