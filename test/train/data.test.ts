import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DataError,
  fitStandardiser,
  inferTask,
  parseCsv,
  readCsvFile,
  readDataset,
  splitRows,
  toDataset,
} from '../../src/train/data.js';
import { CsvRecords } from '../../src/train/csv-records.js';

const dir = mkdtempSync(join(tmpdir(), 'ds-data-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
/** The file read both ways, streamed (readDataset) and as a table (toDataset): the same dataset or the same error. */
function load(text: string, target = 'y', task?: 'regression' | 'classification') {
  const p = file('t.csv', text);
  const outcome = (fn: () => unknown) => {
    try {
      return { ok: fn() };
    } catch (err) {
      return { err };
    }
  };
  const streamed = outcome(() => readDataset(p, { target, task }).data);
  const table = outcome(() => toDataset(readCsvFile(p).table, { target, task }));
  expect(streamed).toEqual(table);
  if (streamed.err) throw streamed.err;
  return streamed.ok as ReturnType<typeof toDataset>;
}
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DataError);
    return (err as Error).message.replace(dir, '<dir>');
  }
  throw new Error('expected a DataError');
}

describe('parseCsv', () => {
  it('reads quoted fields with commas, escaped quotes, newlines, CRLF and a BOM', () => {
    const t = parseCsv('\ufeffa,"b, c",d\r\n1,"say ""hi""",3\r\n4,"two\nlines",6\r\n', 'x.csv');
    expect(t.header).toEqual(['a', 'b, c', 'd']);
    expect(t.rows).toEqual([
      ['1', 'say "hi"', '3'],
      ['4', 'two\nlines', '6'],
    ]);
    expect(t.lines).toEqual([2, 3]);
  });
  it('gives the same records however the text is cut into chunks', () => {
    const text = '\ufeffa,"b, c",d\r\n1,"say ""hi""",3\r\n4,"two\nlines",6\r\n\r\n7, 8 ,""\r\n';
    const recordsOf = (chunks: string[]) => {
      const out: [string[], number][] = [];
      const csv = new CsvRecords('x.csv', (cells, line) => out.push([cells, line]));
      for (const c of chunks) csv.push(c);
      csv.end();
      return out;
    };
    const whole = recordsOf([text]);
    expect(whole).toEqual([
      [['a', 'b, c', 'd'], 1],
      [['1', 'say "hi"', '3'], 2],
      [['4', 'two\nlines', '6'], 3],
      [['7', '8', ''], 6],
    ]);
    // every cut point, including inside "" escapes, CRLFs and the BOM's neighbour
    for (let cut = 1; cut < text.length; cut++) expect(recordsOf([text.slice(0, cut), text.slice(cut)])).toEqual(whole);
    expect(recordsOf([...text])).toEqual(whole);
  });
  it('streams a file larger than its read chunk into the same dataset as the table', () => {
    const lines = Array.from({ length: 60_000 }, (_, i) => `${i * 0.5},"${i % 7}",${(i * 37) % 101}.25`);
    const p = file('big.csv', `a,b,y\r\n${lines.join('\r\n')}\r\n`);
    const streamed = readDataset(p, { target: 'y' });
    const table = readCsvFile(p);
    expect(streamed.sha256).toBe(table.sha256);
    expect(streamed.data).toEqual(toDataset(table.table, { target: 'y' }));
    expect([streamed.data.n, streamed.data.x[2 * 59_999], streamed.data.y[59_999]]).toEqual([60_000, 29_999.5, 84.25]);
  });
  it('reads an inferred target again as classes when a text value follows many numbers', () => {
    const rows = Array.from({ length: 30 }, (_, i) => `${i},${i}.5`);
    const ds = load(`a,y\n${rows.join('\n')}\nx,cat\n`.replace('x,cat', '30,cat'));
    expect([ds.task, ds.labels.length, ds.labels[0], ds.labels[30], ds.y[0], ds.y[30]]).toEqual([
      'classification',
      31,
      '0.5',
      'cat',
      0,
      30,
    ]);
    const few = load('a,y\n1,3\n2,10\n3,3\n4,1.0\n5,1\n');
    expect([few.task, few.labels, Array.from(few.y)]).toEqual([
      'classification',
      ['1.0', '1', '3', '10'],
      [2, 3, 2, 0, 1],
    ]);
    const reg = load('a,y\n1,3\n2,10\n3,3.5\n');
    expect([reg.task, Array.from(reg.y)]).toEqual(['regression', [3, 10, 3.5]]);
  });
  it('skips blank lines and keeps true line numbers', () => {
    const t = parseCsv('a,y\n\n1,2\n\n3,4\n', 'x.csv');
    expect(t.lines).toEqual([3, 5]);
  });
});

describe('bad CSV files give named errors', () => {
  it('empty file', () => {
    expect(errorOf(() => load(''))).toMatchInlineSnapshot(`"<dir>/t.csv: the file is empty (no header row)"`);
  });
  it('header only', () => {
    expect(errorOf(() => load('a,y\n'))).toMatchInlineSnapshot(`"<dir>/t.csv: the file has a header but no data rows"`);
  });
  it('non-numeric value', () => {
    expect(errorOf(() => load('a,b,y\n1,2,3\n1,abc,3\n'))).toMatchInlineSnapshot(
      `"<dir>/t.csv:3: column "b": "abc" is not a number"`,
    );
  });
  it('missing value', () => {
    expect(errorOf(() => load('a,b,y\n1,2,3\n1,,3\n'))).toMatchInlineSnapshot(
      `"<dir>/t.csv:3: column "b": missing value"`,
    );
  });
  it('ragged row', () => {
    expect(errorOf(() => load('a,b,y\n1,2,3\n1,2\n'))).toMatchInlineSnapshot(
      `"<dir>/t.csv:3: ragged row: 2 fields, the header has 3"`,
    );
  });
  it('unknown target column', () => {
    expect(errorOf(() => load('a,b,c\n1,2,3\n', 'y'))).toMatchInlineSnapshot(
      `"<dir>/t.csv: unknown target column "y" (columns: a, b, c)"`,
    );
  });
  it('a single class', () => {
    expect(errorOf(() => load('a,y\n1,x\n2,x\n3,x\n'))).toMatchInlineSnapshot(
      `"<dir>/t.csv: the target column "y" has a single class ("x"); classification needs at least two"`,
    );
  });
  it('fewer rows than a split needs', () => {
    const ds = load('a,y\n1,1.5\n2,2.5\n3,3.5\n');
    expect(errorOf(() => splitRows(ds, 0.2, 0, 'validation split'))).toMatchInlineSnapshot(
      `"3 rows are too few for a validation split of 0.2: it would leave 2 and 1 rows (need at least 2 in each)"`,
    );
  });
  it('unreadable file', () => {
    expect(errorOf(() => readCsvFile(join(dir, 'nope.csv')))).toMatchInlineSnapshot(
      `"<dir>/nope.csv: cannot read the file (ENOENT)"`,
    );
  });
  it('unterminated quote, and a quoted last field without a final newline', () => {
    expect(errorOf(() => load('a,y\n1,2\n3,"4\n'))).toMatchInlineSnapshot(`"<dir>/t.csv:3: unterminated quoted field"`);
    expect(Array.from(load('a,y\n1,2.5\n3,"4.5"').y)).toEqual([2.5, 4.5]);
  });
  it('infinite number', () => {
    expect(errorOf(() => load('a,y\n1e999,1.5\n'))).toMatchInlineSnapshot(
      `"<dir>/t.csv:2: column "a": "1e999" is out of range"`,
    );
  });
});

describe('datasets', () => {
  it('infers the task from the target column', () => {
    expect(inferTask(['1.5', '2', '3'])).toBe('regression');
    expect(inferTask(['0', '1', '1', '0'])).toBe('classification');
    expect(inferTask(['cat', 'dog'])).toBe('classification');
    expect(inferTask(Array.from({ length: 50 }, (_, i) => String(i)))).toBe('regression');
  });
  it('keeps string labels sorted and numeric labels in numeric order', () => {
    expect(load('a,y\n1,b\n2,a\n3,c\n').labels).toEqual(['a', 'b', 'c']);
    expect(load('a,y\n1,10\n2,9\n3,10\n').labels).toEqual(['9', '10']);
  });
  it('a constant feature standardises to 0, not NaN', () => {
    const ds = load('a,c,y\n1,5,1.5\n2,5,2.5\n3,5,3.5\n');
    const st = fitStandardiser(ds.x, ds.n, ds.f);
    expect(st.std[1]).toBe(1);
    expect(st.mean[1]).toBe(5);
  });
  it('reads the shipped datasets', () => {
    const d = toDataset(readCsvFile('data/diabetes.csv').table, { target: 'target' });
    expect([d.task, d.n, d.f]).toEqual(['regression', 442, 10]);
    const w = toDataset(readCsvFile('data/wine.csv').table, { target: 'class' });
    expect([w.task, w.n, w.f, w.labels]).toEqual(['classification', 178, 13, ['class_0', 'class_1', 'class_2']]);
  });
});
