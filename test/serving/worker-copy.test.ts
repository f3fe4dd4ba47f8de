/**
 * What an MC worker thread holds (issue 20): its copy of a model is loaded from the main thread's bytes
 * with the main model's copyOptions, so the load-time self-check (runs at every shape up to
 * MC_MAX_RUN_ROWS, whose buffers the thread would keep) is not repeated and its outcome (the shared
 * prefix kept or dropped) is the main thread's; it takes the card the main thread validated, so it never
 * loads zod (about 6 MB of every worker thread); and the worker's module graph has no training, server
 * or report code in it.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { loadModel } from '../../src/model/formats.js';
import { DEFAULT_RUNTIME_OPTIONS, type ModelSource } from '../../src/model/model.js';

const checks = vi.hoisted(() => ({ count: 0, cards: 0 }));

vi.mock('../../src/model/onnx/self-check.js', async (importOriginal) => {
  const graph = await importOriginal<typeof import('../../src/model/onnx/self-check.js')>();
  return {
    ...graph,
    selfCheck: (...args: Parameters<typeof graph.selfCheck>) => {
      checks.count++;
      return graph.selfCheck(...args);
    },
  };
});

vi.mock('../../src/model/card-schema.js', async (importOriginal) => {
  const schema = await importOriginal<typeof import('../../src/model/card-schema.js')>();
  const safeParse: typeof schema.CardSchema.safeParse = (...args) => {
    checks.cards++;
    return schema.CardSchema.safeParse(...args);
  };
  return { ...schema, CardSchema: { ...schema.CardSchema, safeParse } };
});

const source: ModelSource = {
  name: 'diabetes',
  file: 'models/diabetes/model.onnx',
  card: 'models/diabetes/model.json',
};
const x = Float32Array.from([
  59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87, 48, 1, 21.6, 87, 183, 103.2, 70, 3, 3.8918, 69,
]);
const opts = { samples: 500, interval: 0.9, seed: 3 };

describe('a worker copy of a model', () => {
  it('skips the self-check, keeps the shared prefix the main model kept, and answers as it does', async () => {
    checks.count = 0;
    const main = await loadModel(source, DEFAULT_RUNTIME_OPTIONS);
    expect(checks.count).toBe(2); // the plain and the shared-prefix graph
    expect(main.copyOptions?.()).toEqual({ ...DEFAULT_RUNTIME_OPTIONS, selfCheck: false, sharedPrefix: true });
    checks.count = 0;
    const copy = await loadModel(source, { ...DEFAULT_RUNTIME_OPTIONS, ...main.copyOptions?.() });
    expect(checks.count).toBe(0);
    expect(copy.describe().shared_prefix).toBe(true);
    expect((await copy.sample(x, 2, opts)).stats).toEqual((await main.sample(x, 2, opts)).stats);
    await Promise.all([main.close(), copy.close()]);
  });

  it('a copy gets the main model options: without the shared prefix when it has none, whatever the pool options say', async () => {
    const main = await loadModel(source, { ...DEFAULT_RUNTIME_OPTIONS, sharedPrefix: false, maxRunRows: 1000 });
    const options = main.copyOptions?.();
    expect(options).toEqual({ ...DEFAULT_RUNTIME_OPTIONS, selfCheck: false, sharedPrefix: false, maxRunRows: 1000 });
    const copy = await loadModel(source, { ...DEFAULT_RUNTIME_OPTIONS, ...options });
    expect(copy.maxRunRows).toBe(1000);
    expect(copy.describe().shared_prefix).toBe(false);
    expect((await copy.sample(x, 2, opts)).stats).toEqual((await main.sample(x, 2, opts)).stats);
    await Promise.all([main.close(), copy.close()]);
  });
});

/** `source` with its files read, as the repository passes it (ModelSource.contents). */
function withContents(source: ModelSource): ModelSource {
  const card = source.card ? readFileSync(source.card, 'utf8') : null;
  return { ...source, contents: { model: readFileSync(source.file), card } };
}

describe("a worker copy takes the main thread's card, not validating it again (issue 20: no zod in a worker)", () => {
  const tensorCard = { task: 'classification', temperature: 1.5, note: 'passed through' };
  const tensorSource: ModelSource = {
    name: 'bayes_cnn',
    file: 'test/fixtures/tensor/bayes_cnn.onnx',
    card: 'test/fixtures/tensor/bayes_cnn.json',
    contents: { model: readFileSync('test/fixtures/tensor/bayes_cnn.onnx'), card: JSON.stringify(tensorCard) },
  };

  it.each([
    ['a tabular model', withContents(source)],
    ['a tensor model', tensorSource],
  ])('%s: the main thread validates the card once, its copy not at all, and both serve the same card', async (_, s) => {
    checks.cards = 0;
    const main = await loadModel(s, DEFAULT_RUNTIME_OPTIONS);
    expect(checks.cards).toBe(1);
    const copy = await loadModel(s, { ...DEFAULT_RUNTIME_OPTIONS, ...main.copyOptions?.() });
    expect(checks.cards).toBe(1);
    expect(copy.describe()).toEqual(main.describe());
    await Promise.all([main.close(), copy.close()]);
  });

  it('a copy without the bytes the main thread read (its card read from the disk again) validates it', async () => {
    checks.cards = 0;
    const copy = await loadModel(source, { ...DEFAULT_RUNTIME_OPTIONS, selfCheck: false });
    expect(checks.cards).toBe(1);
    await copy.close();
  });
});

/**
 * The project files a module imports, transitively (static relative imports, and dynamic ones unless
 * `staticOnly`; type-only imports are erased), and its packages.
 */
function moduleGraph(entry: string, staticOnly = false): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s([^;]*?)from\s+'([^']+)'|import\('([^']+)'\)/g)) {
      if (m[1]?.startsWith('type ') || (staticOnly && m[3])) continue;
      const spec = m[2] ?? m[3]!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else if (!spec.startsWith('node:'))
        packages.add(
          spec
            .split('/')
            .slice(0, spec.startsWith('@') ? 2 : 1)
            .join('/'),
        );
    }
  };
  visit(resolve(entry));
  return { files: [...files].map((f) => relative(process.cwd(), f)).sort(), packages: [...packages].sort() };
}

describe('the worker module graph', () => {
  it('loads models and runs Monte Carlo, nothing else: no training, server, report or serving-side code', () => {
    const { files, packages } = moduleGraph('src/serving/mc-worker.ts');
    expect(files).toContain(join('src', 'model', 'onnx', 'load.ts'));
    expect(files.filter((f) => /^src\/(train|server|report)\//.test(f))).toEqual([]);
    expect(files.filter((f) => f.startsWith('src/serving/')).sort()).toEqual([
      'src/serving/mc-worker.ts',
      'src/serving/wire.ts',
      'src/serving/worker-held.ts',
    ]);
    expect(packages).toEqual(['onnxruntime-node', 'protobufjs', 'zod']);
  });

  it('imports zod only through the card schema, imported only when a card is validated (never by a copy: above)', () => {
    const { files, packages } = moduleGraph('src/serving/mc-worker.ts', true);
    expect(packages).toEqual(['onnxruntime-node', 'protobufjs']);
    expect(files).not.toContain(join('src', 'model', 'card-schema.ts'));
    const zodImporters = moduleGraph('src/serving/mc-worker.ts').files.filter((f) =>
      /from 'zod'|import\('zod'\)/.test(readFileSync(f, 'utf8')),
    );
    expect(zodImporters).toEqual([join('src', 'model', 'card-schema.ts')]);
  });
});
