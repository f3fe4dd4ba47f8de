import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCli } from '../../src/train/cli.js';
import {
  ALL_OPTIONS,
  DEFAULT_TRAIN_OPTIONS,
  TRAIN_OPTIONS,
  trainDefaults,
  trainingRecord,
} from '../../src/train/options.js';
import { OPTIONS_BEGIN, OPTIONS_END, optionsMarkdown, usageText, withOptionsTable } from '../../src/train/usage.js';

const base = ['--data', 'x.csv', '--target', 'y', '--name', 'n'];

describe('trainer options, declared once', () => {
  it("docs/training.md holds the tables' option table (npm run docs:options writes it)", () => {
    const doc = readFileSync('docs/training.md', 'utf8');
    const region = doc.slice(doc.indexOf(OPTIONS_BEGIN) + OPTIONS_BEGIN.length, doc.indexOf(OPTIONS_END));
    expect(region.trim()).toBe(optionsMarkdown());
    expect(withOptionsTable(doc)).toBe(doc);
  });

  it('withOptionsTable replaces a stale table and keeps the text around it', () => {
    const stale = `# T\n\nbefore\n${OPTIONS_BEGIN}\n| old |\n${OPTIONS_END}\nafter\n`;
    const fresh = withOptionsTable(stale);
    expect(fresh).not.toContain('| old |');
    expect(fresh).toBe(`# T\n\nbefore\n${OPTIONS_BEGIN}\n${optionsMarkdown()}\n${OPTIONS_END}\nafter\n`);
    expect(() => withOptionsTable('# no markers')).toThrow('train-options:begin');
  });

  it('the usage text and the docs table name every flag with its default', () => {
    const usage = usageText();
    const table = optionsMarkdown();
    for (const o of ALL_OPTIONS) {
      expect(usage).toContain(`--${o.flag}`);
      expect(table).toContain(`\`--${o.flag}`);
    }
    expect(table).toContain('| `--hidden N[,N…]` | 50 (--tune: 200) |');
    expect(table).toContain('| `--tune-hidden N[,N…]/N[,N…]…` | 200; 50,50 for regression from 600 fit rows |');
    expect(usage).toContain(
      '--threads N\n      tuning worker threads (0 = inline) (default: available cores, at most 8; needs --tune)',
    );
  });

  it('each default reads back through its own parser; no flags give the defaults, --tune its own', () => {
    for (const o of Object.values(TRAIN_OPTIONS) as {
      default: unknown;
      parse: (t: string, f: string) => unknown;
      flag: string;
    }[]) {
      const text = Array.isArray(o.default) ? o.default.join(',') : String(o.default);
      expect(o.parse(text, o.flag)).toEqual(o.default);
    }
    expect(parseCli(base).opts).toEqual(DEFAULT_TRAIN_OPTIONS);
    expect(parseCli([...base, '--tune']).opts).toEqual({ ...DEFAULT_TRAIN_OPTIONS, hidden: [200], batchSize: 128 });
    expect(trainDefaults(true)).toEqual({ ...DEFAULT_TRAIN_OPTIONS, hidden: [200], batchSize: 128 });
    expect(parseCli([...base, '--tune', '--hidden', '7']).opts.hidden).toEqual([7]);
    // the architectures searched: the default grid's, the one --hidden gives, or --tune-hidden's
    expect(parseCli([...base, '--tune']).grid.hidden).toBeUndefined();
    expect(parseCli([...base, '--tune', '--hidden', '7,3']).grid.hidden).toEqual([[7, 3]]);
    expect(parseCli([...base, '--tune', '--tune-hidden', '100/50,50/20,20,20']).grid.hidden).toEqual([
      [100],
      [50, 50],
      [20, 20, 20],
    ]);
  });

  it('parses every kind of flag into CliArgs, and rejects with the flag named', () => {
    const a = parseCli([...base, '--tune', '--tune-noise', 'homoscedastic,heteroscedastic', '--tune-epochs', '5,10']);
    expect(a.grid).toEqual({ noise: ['homoscedastic', 'heteroscedastic'], epochs: [5, 10] });
    expect(a).toMatchObject({
      data: 'x.csv',
      target: 'y',
      name: 'n',
      tune: true,
      calibration: 'crossfit',
      out: 'models',
    });
    expect(() => parseCli([...base, '--tune', '--calibration', 'later'])).toThrow(
      '--calibration later: expected crossfit, validation, holdout or winner',
    );
    expect(() => parseCli([...base, '--engine', 'wasm', '--activation', 'tanh'])).toThrow(
      '--engine wasm supports --activation relu only (got tanh)',
    );
    expect(() => parseCli([...base, '--task', 'classification', '--noise', 'heteroscedastic'])).toThrow(
      '--noise heteroscedastic applies to regression only',
    );
    expect(() => parseCli([...base, '--test-data', 'a', '--test-split', '0.1'])).toThrow('not both');
    expect(() => parseCli([...base, '--bogus'])).toThrow("Unknown option '--bogus'");
    expect(() => parseCli(['-h'])).toThrow(/^$/);
  });

  it("the card's training record: the options' fields in table order, the trained dropout and noise", () => {
    const opts = { ...DEFAULT_TRAIN_OPTIONS, hidden: [8, 4], dropout: [0.1], noise: 'heteroscedastic' as const };
    const spec = { inputs: 3, hidden: [8, 4], outputs: 2, activation: 'relu' as const, dropout: [0.1, 0.1] };
    const reg = trainingRecord(opts, { task: 'regression', spec, noise: 'heteroscedastic' });
    expect(Object.keys(reg)).toEqual([
      'hidden',
      'dropout',
      'input_dropout',
      'noise',
      'activation',
      'epochs',
      'batch_size',
      'lr',
      'weight_decay',
      'patience',
      'val_split',
      'seed',
    ]);
    expect(reg).toMatchObject({ hidden: [8, 4], dropout: [0.1, 0.1], noise: 'heteroscedastic', batch_size: 32 });
    const cls = trainingRecord(DEFAULT_TRAIN_OPTIONS, { task: 'classification', spec, noise: 'homoscedastic' });
    expect(JSON.parse(JSON.stringify(cls))).not.toHaveProperty('noise');
  });
});
