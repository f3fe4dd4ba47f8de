/**
 * The import rules of ARCHITECTURE.md, checked on the sources: every import specifier of every file
 * under src/ (static, dynamic and require), resolved to a repository path for relative ones.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : /\.(ts|mts|cjs|js)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/** Import specifiers of a file: packages as written, relative ones as repository paths (src/…). */
function importsOf(file: string, text = readFileSync(file, 'utf8')): string[] {
  const specs = [
    ...text.matchAll(
      /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)|\brequire\(\s*['"]([^'"]+)['"]\s*\)/gm,
    ),
  ].map((m) => m[1] ?? m[2] ?? m[3] ?? m[4]!);
  return specs.map((s) => (s.startsWith('.') ? normalize(join(dirname(file), s)).replace(/\.js$/, '.ts') : s));
}

const SOURCES = files('src').map((file) => ({ file, imports: importsOf(file) }));
const isFastify = (s: string): boolean => s === 'fastify' || s.startsWith('@fastify/') || s.startsWith('fastify-');
const under = (dir: string) => (p: string) => p.startsWith(`${dir}/`);

/** Files of `dir` that import something `bad` matches, with what they import. */
function offenders(
  dir: string,
  bad: (spec: string) => boolean,
  except: (file: string) => boolean = () => false,
): string[] {
  return SOURCES.filter((s) => under(dir)(s.file) && !except(s.file)).flatMap((s) =>
    s.imports.filter(bad).map((i) => `${s.file} → ${i}`),
  );
}

describe('import rules (ARCHITECTURE.md)', () => {
  it('the scanner sees every kind of import', () => {
    const text = `import a from 'x';\nimport { b } from "../y.js";\nimport type { C } from './z.js';\nexport { d } from 'w';\nimport 'side';\nconst e = await import('dyn');\nconst f = require('req');`;
    expect(importsOf('src/model/m.ts', text)).toEqual(['x', 'src/y.ts', 'src/model/z.ts', 'w', 'side', 'dyn', 'req']);
    expect(SOURCES.length).toBeGreaterThan(40);
  });

  it('src/train, src/model and src/serving never import Fastify', () => {
    for (const dir of ['src/train', 'src/model', 'src/serving']) expect(offenders(dir, isFastify), dir).toEqual([]);
  });

  it('only src/model/onnx/ort.ts imports onnxruntime-node', () => {
    expect(
      offenders(
        'src',
        (s) => s === 'onnxruntime-node',
        (f) => f === 'src/model/onnx/ort.ts',
      ),
    ).toEqual([]);
  });

  it('src/onnx-proto (the protobuf codec) imports only protobufjs', () => {
    expect(offenders('src/onnx-proto', (s) => s !== 'protobufjs' && !under('src/onnx-proto')(s))).toEqual([]);
  });

  it('outside src/model/onnx, only src/model/formats.ts knows the ONNX implementation (everything else uses the Model interface)', () => {
    expect(
      offenders('src', under('src/model/onnx'), (f) => under('src/model/onnx')(f) || f === 'src/model/formats.ts'),
    ).toEqual([]);
  });

  it('src/model imports no serving, server or training code; src/serving no server code and no prom-client', () => {
    expect(offenders('src/model', (s) => ['src/serving', 'src/server', 'src/train'].some((d) => under(d)(s)))).toEqual(
      [],
    );
    expect(offenders('src/serving', (s) => under('src/server')(s) || s === 'prom-client')).toEqual([]);
  });

  it('src/train imports no serving or server code', () => {
    expect(offenders('src/train', (s) => under('src/serving')(s) || under('src/server')(s))).toEqual([]);
  });

  it('src/report is pure: it imports only src/util and src/uncertainty (data in, HTML out: no files, no Fastify, no runtime)', () => {
    expect(
      offenders('src/report', (s) => !['src/report', 'src/util', 'src/uncertainty'].some((d) => under(d)(s))),
    ).toEqual([]);
  });

  it('src/uncertainty, the one core of MC statistics and scoring rules, imports only src/util: no package, no model, no trainer', () => {
    expect(offenders('src/uncertainty', (s) => !under('src/uncertainty')(s) && !under('src/util')(s))).toEqual([]);
    expect(SOURCES.filter((s) => under('src/uncertainty')(s.file)).length).toBeGreaterThan(5);
  });

  it('the statistics are computed once: the trainer, the report and the model import them from src/uncertainty', () => {
    for (const dir of ['src/model', 'src/train', 'src/report'])
      expect(
        SOURCES.some((s) => under(dir)(s.file) && s.imports.some(under('src/uncertainty'))),
        dir,
      ).toBe(true);
  });

  it('the protocol codecs (src/server/protocol) are pure: no Fastify', () => {
    expect(offenders('src/server/protocol', isFastify)).toEqual([]);
  });

  it('only src/config.ts reads process.env', () => {
    const readers = SOURCES.filter(
      (s) => s.file !== 'src/config.ts' && /process\.env\b/.test(readFileSync(s.file, 'utf8')),
    ).map((s) => s.file);
    expect(readers).toEqual([]);
  });
});
