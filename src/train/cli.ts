/**
 * `npm run train -- --data FILE --target COL --name NAME [options]`
 * The only file of src/train that prints or writes files.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildCard, type DataRef } from './card.js';
import { DataError, type Dataset, readCsvFile, splitRows, toDataset, type Task } from './data.js';
import { OPSET, exportOnnx } from './export-onnx.js';
import { modelReport, trainCommand, validationRows } from './report-input.js';
import type { ClassificationMetrics, RegressionMetrics } from './card-metrics.js';
import {
  DEFAULT_TRAIN_OPTIONS,
  type EpochLog,
  type NoiseModel,
  train,
  type TrainedModel,
  type TrainOptions,
} from './train.js';
import {
  type CalibrationSource,
  defaultGrid,
  defaultThreads,
  type Grid,
  TUNE_BATCH_SIZE,
  TUNE_HIDDEN,
  tune,
  type TuneProgress,
  type TuneResult,
} from './tune.js';
import type { Activation } from './mlp.js';

const USAGE = `usage: npm run train -- --data FILE --target COL --name NAME [options]

  --task regression|classification   default: inferred from the target column
  --hidden 50                         hidden widths, comma list for several layers (64,64)
  --dropout 0.3                       one rate, or one per hidden layer (0.5,0.3)
  --activation relu|tanh|gelu         default relu
  --epochs 300  --batch-size 32  --lr 1e-3  --weight-decay 1e-4
  --patience N                        early stopping on validation loss (0 = off, default 0)
  --val-split 0.2                     fraction of --data held out for validation and calibration
  --test-data FILE                    held-out rows: metrics and interval coverage are reported on them
  --test-split F                      or hold out this fraction of --data as test rows (seeded)
  --mc-samples 200                    Monte Carlo passes for calibration, tuning scores and metrics
  --input-dropout 0                   dropout rate on the standardised inputs (a Dropout op in the graph)
  --noise homoscedastic|heteroscedastic  regression noise: one calibrated σ, or a predicted log-variance output
  --nll-beta 0                        heteroscedastic training: β-NLL (Seitzer et al. 2022), β in [0, 1]; 0 = plain NLL
  --interval-method conformal|gaussian   the card's default interval (regression; default conformal)
  --engine auto|wasm|js               minibatch kernels: auto = WebAssembly SIMD for relu, JavaScript otherwise
  --seed 0  --out models  --quiet

  --tune                              search dropout, weight decay, training length and noise model on a
                                      validation split of the training rows, then refit on all of them
                                      (hidden 200 and batch size 128 unless --hidden, --batch-size are given)
  --threads N                         tuning worker threads (default: available cores, at most 8; 0 = inline)
  --calibration crossfit|validation|holdout
                                      tuned models: fit the noise, epistemic scale and conformal scores on
                                      out-of-fold predictions of every training row (crossfit, 5 folds; the
                                      default for regression), on the tuning validation rows, or on rows
                                      held out of the refit (--calibration-fraction, default 0.2)
  --tune-dropout, --tune-weight-decay, --tune-epochs, --tune-noise   override the grid (comma lists;
                                      weight decay as c in λ = c/N)`;

class UsageError extends Error {}

function num(name: string, v: string | undefined, def: number, check: (x: number) => boolean, what: string): number {
  if (v === undefined) return def;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || !check(x)) throw new UsageError(`--${name} ${v}: expected ${what}`);
  return x;
}

function list(
  name: string,
  v: string | undefined,
  def: number[],
  check: (x: number) => boolean,
  what: string,
): number[] {
  if (v === undefined) return def;
  const xs = v.split(',').map((s) => num(name, s.trim(), NaN, check, what));
  if (xs.length === 0) throw new UsageError(`--${name}: empty list`);
  return xs;
}

export interface CliArgs {
  opts: TrainOptions;
  data: string;
  target: string;
  name: string;
  task?: Task;
  testData?: string;
  testSplit: number;
  out: string;
  quiet: boolean;
  intervalMethod: 'conformal' | 'gaussian';
  tune: boolean;
  threads: number;
  calibration: CalibrationSource;
  calibrationFraction: number;
  /** Grid overrides (undefined: the default grid's). */
  grid: { dropout?: number[]; decayTimesN?: number[]; epochs?: number[]; noise?: NoiseModel[] };
}

export function parseCli(argv: string[]): CliArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        data: { type: 'string' },
        target: { type: 'string' },
        name: { type: 'string' },
        task: { type: 'string' },
        hidden: { type: 'string' },
        dropout: { type: 'string' },
        activation: { type: 'string' },
        epochs: { type: 'string' },
        'batch-size': { type: 'string' },
        lr: { type: 'string' },
        'weight-decay': { type: 'string' },
        patience: { type: 'string' },
        'val-split': { type: 'string' },
        'test-data': { type: 'string' },
        'test-split': { type: 'string' },
        'mc-samples': { type: 'string' },
        'input-dropout': { type: 'string' },
        noise: { type: 'string' },
        'nll-beta': { type: 'string' },
        'interval-method': { type: 'string' },
        tune: { type: 'boolean' },
        threads: { type: 'string' },
        calibration: { type: 'string' },
        'calibration-fraction': { type: 'string' },
        'tune-dropout': { type: 'string' },
        'tune-weight-decay': { type: 'string' },
        'tune-epochs': { type: 'string' },
        'tune-noise': { type: 'string' },
        engine: { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) throw new UsageError('');
  for (const req of ['data', 'target', 'name'] as const) {
    if (!values[req]) throw new UsageError(`--${req} is required`);
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(values.name!)) {
    throw new UsageError(
      `--name ${values.name}: use letters, digits, '.', '_' or '-' (at most 64, not starting with a symbol)`,
    );
  }
  if (values.task !== undefined && values.task !== 'regression' && values.task !== 'classification') {
    throw new UsageError(`--task ${values.task}: expected regression or classification`);
  }
  if (values.activation !== undefined && !['relu', 'tanh', 'gelu'].includes(values.activation)) {
    throw new UsageError(`--activation ${values.activation}: expected relu, tanh or gelu`);
  }
  if (values.engine !== undefined && !['auto', 'wasm', 'js'].includes(values.engine)) {
    throw new UsageError(`--engine ${values.engine}: expected auto, wasm or js`);
  }
  if (values.engine === 'wasm' && (values.activation ?? 'relu') !== 'relu') {
    throw new UsageError(`--engine wasm supports --activation relu only (got ${values.activation})`);
  }
  if (values['test-data'] && values['test-split']) throw new UsageError('give --test-data or --test-split, not both');
  const oneOf = <T extends string>(name: string, v: string | undefined, allowed: readonly T[], def: T): T => {
    if (v === undefined) return def;
    if (!(allowed as readonly string[]).includes(v))
      throw new UsageError(`--${name} ${v}: expected ${allowed.join(' or ')}`);
    return v as T;
  };
  const noise = oneOf('noise', values.noise, ['homoscedastic', 'heteroscedastic'] as const, 'homoscedastic');
  if (noise === 'heteroscedastic' && values.task === 'classification')
    throw new UsageError('--noise heteroscedastic applies to regression only');
  const tuneNoise = values['tune-noise']
    ?.split(',')
    .map((v) => oneOf('tune-noise', v.trim(), ['homoscedastic', 'heteroscedastic'] as const, 'homoscedastic'));
  const tuneOnly = [
    'threads',
    'calibration',
    'calibration-fraction',
    'tune-dropout',
    'tune-weight-decay',
    'tune-epochs',
    'tune-noise',
  ] as const;
  for (const k of tuneOnly) if (values[k] !== undefined && !values.tune) throw new UsageError(`--${k} needs --tune`);
  if (values.tune) {
    for (const k of ['dropout', 'weight-decay', 'epochs', 'noise', 'patience'] as const) {
      if (values[k] !== undefined)
        throw new UsageError(
          `--${k} is chosen by --tune (set the grid with --tune-dropout, --tune-weight-decay, --tune-epochs, --tune-noise)`,
        );
    }
  }
  const d = DEFAULT_TRAIN_OPTIONS;
  const int = (x: number): boolean => Number.isInteger(x);
  const opts: TrainOptions = {
    hidden: list(
      'hidden',
      values.hidden,
      values.tune ? [TUNE_HIDDEN] : d.hidden,
      (x) => int(x) && x >= 1 && x <= 4096,
      'positive integer widths (≤ 4096)',
    ),
    dropout: list('dropout', values.dropout, d.dropout, (x) => x >= 0 && x < 1, 'rates in [0, 1)'),
    activation: (values.activation as Activation | undefined) ?? d.activation,
    epochs: num('epochs', values.epochs, d.epochs, (x) => int(x) && x >= 1, 'a positive integer'),
    batchSize: num(
      'batch-size',
      values['batch-size'],
      values.tune ? TUNE_BATCH_SIZE : d.batchSize,
      (x) => int(x) && x >= 1,
      'a positive integer',
    ),
    lr: num('lr', values.lr, d.lr, (x) => x > 0 && x < 10, 'a learning rate in (0, 10)'),
    weightDecay: num('weight-decay', values['weight-decay'], d.weightDecay, (x) => x >= 0, 'a number ≥ 0'),
    patience: num('patience', values.patience, d.patience, (x) => int(x) && x >= 0, 'an integer ≥ 0'),
    valSplit: num('val-split', values['val-split'], d.valSplit, (x) => x > 0 && x < 1, 'a fraction in (0, 1)'),
    seed: num('seed', values.seed, d.seed, (x) => int(x) && x >= 0 && x < 2 ** 32, 'an integer in [0, 2^32)'),
    mcSamples: num(
      'mc-samples',
      values['mc-samples'],
      d.mcSamples,
      (x) => int(x) && x >= 2 && x <= 100000,
      'an integer in [2, 100000]',
    ),
    inputDropout: num(
      'input-dropout',
      values['input-dropout'],
      d.inputDropout,
      (x) => x >= 0 && x < 1,
      'a rate in [0, 1)',
    ),
    noise,
    nllBeta: num('nll-beta', values['nll-beta'], d.nllBeta, (x) => x >= 0 && x <= 1, 'a number in [0, 1]'),
    engine: (values.engine as TrainOptions['engine'] | undefined) ?? d.engine,
  };
  return {
    opts,
    data: values.data!,
    target: values.target!,
    name: values.name!,
    task: values.task as Task | undefined,
    testData: values['test-data'],
    testSplit: num('test-split', values['test-split'], 0, (x) => x > 0 && x < 1, 'a fraction in (0, 1)'),
    out: values.out ?? 'models',
    quiet: values.quiet ?? false,
    intervalMethod: oneOf(
      'interval-method',
      values['interval-method'],
      ['conformal', 'gaussian'] as const,
      'conformal',
    ),
    tune: values.tune ?? false,
    threads: num(
      'threads',
      values.threads,
      defaultThreads(),
      (x) => int(x) && x >= 0 && x <= 64,
      'an integer in [0, 64]',
    ),
    calibration: oneOf('calibration', values.calibration, ['crossfit', 'validation', 'holdout'] as const, 'crossfit'),
    calibrationFraction: num(
      'calibration-fraction',
      values['calibration-fraction'],
      0.2,
      (x) => x > 0 && x < 1,
      'a fraction in (0, 1)',
    ),
    grid: {
      dropout:
        values['tune-dropout'] === undefined
          ? undefined
          : list('tune-dropout', values['tune-dropout'], [], (x) => x >= 0 && x < 1, 'rates in [0, 1)'),
      decayTimesN:
        values['tune-weight-decay'] === undefined
          ? undefined
          : list('tune-weight-decay', values['tune-weight-decay'], [], (x) => x >= 0, 'numbers ≥ 0 (c in λ = c/N)'),
      epochs:
        values['tune-epochs'] === undefined
          ? undefined
          : list('tune-epochs', values['tune-epochs'], [], (x) => int(x) && x >= 1, 'positive integers'),
      noise: tuneNoise,
    },
  };
}

function formatEta(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(1)}s`;
}

/** A one-line progress bar on a TTY, plain lines (every tenth of the run) otherwise. */
function progressReporter(
  epochs: number,
  stream: NodeJS.WriteStream,
  quiet: boolean,
): { onEpoch: (l: EpochLog) => void; done: () => void } {
  const tty = stream.isTTY === true;
  const every = Math.max(1, Math.round(epochs / 10));
  const width = 24;
  return {
    onEpoch(l) {
      if (quiet) return;
      const eta = (l.elapsedMs / l.epoch) * (epochs - l.epoch);
      const text = `epoch ${String(l.epoch).padStart(String(epochs).length)}/${epochs}  train ${l.trainLoss.toFixed(4)}  val ${l.valLoss.toFixed(4)}${l.best ? '*' : ' '}  ETA ${formatEta(eta)}`;
      if (tty) {
        const filled = Math.round((l.epoch / epochs) * width);
        stream.write(`\r[${'='.repeat(filled)}${' '.repeat(width - filled)}] ${text}\x1b[K`);
      } else if (l.epoch % every === 0 || l.epoch === 1) {
        stream.write(`${text}\n`);
      }
    },
    done() {
      if (tty && !quiet) stream.write('\n');
    },
  };
}

/** Tuning progress: a bar over all candidates' epochs on a TTY, a line per finished candidate otherwise. */
function tuneReporter(
  stream: NodeJS.WriteStream,
  quiet: boolean,
): { onProgress: (p: TuneProgress) => void; done: () => void } {
  const tty = stream.isTTY === true;
  const width = 24;
  let lastCandidates = 0;
  let lastDraw = 0;
  return {
    onProgress(p) {
      if (quiet) return;
      const eta = p.epochsDone > 0 ? (p.elapsedMs / p.epochsDone) * (p.epochsTotal - p.epochsDone) : NaN;
      const best = Number.isFinite(p.best) ? p.best.toFixed(4) : '-';
      const text = `tuning: candidate ${p.candidatesDone}/${p.candidates} done  best score ${best}  ETA ${formatEta(eta)}`;
      if (tty) {
        const now = performance.now();
        if (now - lastDraw < 100 && p.candidatesDone === lastCandidates) return;
        lastDraw = now;
        lastCandidates = p.candidatesDone;
        const filled = Math.round((p.epochsDone / p.epochsTotal) * width);
        stream.write(`\r[${'='.repeat(filled)}${' '.repeat(width - filled)}] ${text}\x1b[K`);
      } else if (p.candidatesDone !== lastCandidates) {
        lastCandidates = p.candidatesDone;
        stream.write(`${text}  (${formatEta(p.elapsedMs)} elapsed)\n`);
      }
    },
    done() {
      if (tty && !quiet) stream.write('\n');
    },
  };
}

function metricsTable(metrics: Record<string, RegressionMetrics | ClassificationMetrics | undefined>): string {
  const cols = Object.entries(metrics).filter(
    (e): e is [string, RegressionMetrics | ClassificationMetrics] => e[1] !== undefined,
  );
  const keys = Object.keys(cols[0]![1]);
  const fmt = (v: number, k: string): string =>
    k === 'rows' ? String(v) : Math.abs(v) >= 100 ? v.toFixed(2) : v.toFixed(4);
  const rows = [
    ['metric', ...cols.map((c) => c[0])],
    ...keys.map((k) => [k, ...cols.map((c) => fmt((c[1] as unknown as Record<string, number>)[k]!, k))]),
  ];
  const widths = rows[0]!.map((_, j) => Math.max(...rows.map((r) => r[j]!.length)));
  const line = (r: string[]): string =>
    `| ${r.map((c, j) => (j === 0 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join(' | ')} |`;
  return [
    line(rows[0]!),
    `|${widths.map((w, j) => (j === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...rows.slice(1).map(line),
  ].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  let args: CliArgs;
  try {
    args = parseCli(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      if (err.message) process.stderr.write(`error: ${err.message}\n`);
      process.stderr.write(`${USAGE}\n`);
      return err.message ? 2 : 0;
    }
    throw err;
  }
  try {
    const { table, sha256 } = readCsvFile(args.data);
    let data: Dataset = toDataset(table, { target: args.target, task: args.task });
    let test: Dataset | undefined;
    let testRef: DataRef | undefined;
    let testSource = 'none';
    if (args.testData) {
      const t = readCsvFile(args.testData);
      test = toDataset(t.table, {
        target: args.target,
        task: data.task,
        features: data.features,
        labels: data.task === 'classification' ? data.labels : undefined,
      });
      testRef = { file: args.testData, sha256: t.sha256, rows: test.n };
      testSource = 'test-data';
    } else if (args.testSplit > 0) {
      [data, test] = splitRows(data, args.testSplit, args.opts.seed * 7919, 'test split');
      testSource = `test-split ${args.testSplit} of data (seeded)`;
    }
    if (data.task === 'classification' && args.opts.noise === 'heteroscedastic')
      throw new DataError('--noise heteroscedastic applies to regression only');
    let opts = args.opts;
    const started = performance.now();
    const cpuStart = process.cpuUsage();
    let model: TrainedModel;
    let tuning: TuneResult | undefined;
    if (args.tune) {
      const dflt = defaultGrid(data.task, Math.round(data.n * (1 - opts.valSplit)));
      const grid = customGrid(data.task, Math.round(data.n * (1 - opts.valSplit)), dflt, args.grid);
      if (!args.quiet) {
        process.stderr.write(
          `tuning ${args.name}: ${data.task}, ${data.n} rows × ${data.f} features${test ? `, ${test.n} test rows` : ''}; ` +
            `${grid.candidates.length} candidates × ${grid.epochs.length} training lengths on ${Math.max(1, Math.min(args.threads, grid.candidates.length))} thread(s), seed ${opts.seed}\n`,
        );
      }
      const progress = tuneReporter(process.stderr, args.quiet);
      tuning = await tune(
        data,
        opts,
        {
          threads: args.threads,
          grid,
          calibration: args.calibration,
          calibrationFraction: args.calibrationFraction,
          onProgress: progress.onProgress,
        },
        test,
      );
      progress.done();
      model = tuning.model;
      opts = tuning.options;
    } else {
      if (!args.quiet) {
        process.stderr.write(
          `training ${args.name}: ${data.task}, ${data.n} rows × ${data.f} features${test ? `, ${test.n} test rows` : ''}; ` +
            `hidden ${opts.hidden.join(',')} ${opts.activation}, dropout ${opts.dropout.join(',')}, ${opts.epochs} epochs, seed ${opts.seed}\n`,
        );
      }
      const progress = progressReporter(opts.epochs, process.stderr, args.quiet);
      model = train(data, opts, test, progress.onEpoch);
      progress.done();
    }
    const trainMs = performance.now() - started;
    // the whole process, worker threads included (getrusage of the process)
    const cpu = process.cpuUsage(cpuStart);
    const cpuS = (cpu.user + cpu.system) / 1e6;
    const card = buildCard(
      args.name,
      model,
      opts,
      { file: args.data, sha256, rows: table.rows.length },
      testRef,
      testSource,
      OPSET,
      { tuning, intervalMethod: args.intervalMethod },
    );
    const onnx = exportOnnx(model, {
      'dropout_serve.card': JSON.stringify(card),
      features: JSON.stringify(card.features),
      ...(card.labels ? { labels: JSON.stringify(card.labels) } : {}),
      task: card.task,
    });
    const dir = join(args.out, args.name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.onnx'), onnx);
    writeFileSync(
      join(dir, 'model.json'),
      `${JSON.stringify({ ...card, created_at: new Date().toISOString() }, null, 2)}\n`,
    );
    const table2 = metricsTable({ validation: model.metrics.validation, test: model.metrics.test });
    const steps = model.history.length * Math.ceil(model.trainRows / Math.min(opts.batchSize, model.trainRows));
    const chosen = tuning
      ? `tuned: dropout ${opts.dropout[0]}, weight decay ${opts.weightDecay.toPrecision(3)}, ${opts.epochs} epochs, ${model.task === 'regression' ? `${model.noise}, ` : ''}refit on ${model.trainRows} rows; `
      : '';
    const summary =
      `${chosen}epochs run ${model.epochsRun} (best ${model.bestEpoch}), ${steps} steps, ${(trainMs / 1000).toFixed(2)} s (${cpuS.toFixed(2)} s CPU)` +
      (model.task === 'regression'
        ? `, aleatoric σ ${model.aleatoricStd.toPrecision(4)} (${card.target} units${model.noise === 'heteroscedastic' ? ', a floor on the predicted variance' : ''}), epistemic scale ${model.epistemicScale.toPrecision(4)}`
        : `, temperature ${model.temperature.toPrecision(4)}`);
    writeFileSync(
      join(dir, 'report.md'),
      `# ${args.name}\n\n${summary}\n\n${table2}\n\nCommand: \`npm run train -- ${argv.join(' ')}\`\n`,
    );
    const validation = tuning ? tuning.validation : { model, data: validationRows(data, opts) };
    writeFileSync(
      join(dir, 'report.html'),
      modelReport({ command: trainCommand(argv), card, model, validation, test, opts }),
    );
    process.stdout.write(
      `${summary}\n\n${table2}\n\nwrote ${join(dir, 'model.onnx')} (${onnx.length} bytes), model.json, report.md, report.html\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof DataError) {
      process.stderr.write(`error: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

/** The default grid with the CLI's overrides applied (the overrides replace a dimension's values). */
function customGrid(task: Task, fitRows: number, dflt: Grid, o: CliArgs['grid']): Grid {
  if (!o.dropout && !o.decayTimesN && !o.epochs && !o.noise) return dflt;
  const r = dflt.rule as { dropout: number[]; noise: NoiseModel[]; epochs: number[]; decay_times_n: number[] };
  const dropout = o.dropout ?? r.dropout;
  const decay = o.decayTimesN ?? r.decay_times_n;
  const noise = task === 'regression' ? (o.noise ?? r.noise) : ['homoscedastic' as const];
  const epochs = o.epochs ?? r.epochs;
  // dropout and weight decay as given: their product; else the default grid's (dropout, c) pairs
  const pairs: [number, number][] =
    o.dropout || o.decayTimesN
      ? dropout.flatMap((p) => decay.map((c): [number, number] => [p, c]))
      : (dflt.rule.pairs as [number, number][]);
  const candidates = noise.flatMap((nm) =>
    pairs.map(([p, c]) => ({ dropout: p, inputDropout: 0, weightDecay: c / fitRows, noise: nm })),
  );
  return {
    candidates,
    epochs,
    rule: { ...dflt.rule, dropout, decay_times_n: decay, pairs, noise, epochs, overridden: true },
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  process.exitCode = await run(process.argv.slice(2));
