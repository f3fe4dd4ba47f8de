/**
 * `npm run train -- --data FILE --target COL --name NAME [options]` (the options: options.ts).
 * The only file of src/train that prints or writes files.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stream } from '../util/rng.js';
import { buildCard, type DataRef, type ModelCard } from './card.js';
import { type CliArgs, parseCli } from './cli-args.js';
import { DataError, type Dataset, readDataset, splitRows } from './data.js';
import { exportOnnx, OPSET } from './export-onnx.js';
import type { ClassificationMetrics, RegressionMetrics } from './card-metrics.js';
import { type TrainOptions, UsageError } from './options.js';
import { modelReport, trainCommand } from './report-input.js';
import { type EpochLog, type TrainedModel, trainOnSplit, validationSplit } from './train.js';
import { customGrid, type TuneProgress, type TuneResult, tune } from './tune.js';
import { estimateTuning, type TuningEstimate } from './tune-estimate.js';
import { formatEta, type PhaseEstimate, tuneProgressText } from './tune-progress.js';
import { usageText } from './usage.js';

export { type CliArgs, parseCli } from './cli-args.js';

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
  estimate: PhaseEstimate | null,
): { onProgress: (p: TuneProgress) => void; done: () => void } {
  const tty = stream.isTTY === true;
  const width = 24;
  let lastCandidates = 0;
  let lastDraw = 0;
  return {
    onProgress(p) {
      if (quiet) return;
      const text = tuneProgressText(p, estimate);
      if (tty) {
        const now = performance.now();
        if (now - lastDraw < 100 && p.runsDone === lastCandidates) return;
        lastDraw = now;
        lastCandidates = p.runsDone;
        const filled = Math.round((p.stepsDone / p.stepsTotal) * width);
        stream.write(`\r[${'='.repeat(filled)}${' '.repeat(width - filled)}] ${text}\x1b[K`);
      } else if (p.runsDone !== lastCandidates) {
        lastCandidates = p.runsDone;
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

/** The rows a run reads: the training rows and the test rows, with what the card records of them. */
interface Inputs {
  data: Dataset;
  dataRef: DataRef;
  test?: Dataset;
  testRef?: DataRef;
  testSource: string;
}

/** What a run made: the model, its options (a tuned run's winner's) and the network behind the validation metrics. */
interface Trained {
  model: TrainedModel;
  opts: TrainOptions;
  tuning?: TuneResult;
  validation: TuneResult['validation'];
  trainMs: number;
  /** CPU seconds of the whole process, worker threads included (getrusage of the process). */
  cpuS: number;
}

function readInputs(args: CliArgs): Inputs {
  const inputs = readRows(args);
  if (inputs.data.task === 'classification' && args.opts.noise === 'heteroscedastic')
    throw new DataError('--noise heteroscedastic applies to regression only');
  return inputs;
}

function readRows(args: CliArgs): Inputs {
  const { data, sha256 } = readDataset(args.data, { target: args.target, task: args.task });
  const dataRef = { file: args.data, sha256, rows: data.n };
  if (args.testData) {
    const t = readDataset(args.testData, {
      target: args.target,
      task: data.task,
      features: data.features,
      labels: data.task === 'classification' ? data.labels : undefined,
    });
    const test = t.data;
    return {
      data,
      dataRef,
      test,
      testRef: { file: args.testData, sha256: t.sha256, rows: test.n },
      testSource: 'test-data',
    };
  }
  if (args.testSplit > 0) {
    const [rest, test] = splitRows(data, args.testSplit, stream(args.opts.seed, 'testSplit'), 'test split');
    return { data: rest, dataRef, test, testSource: `test-split ${args.testSplit} of data (seeded)` };
  }
  return { data, dataRef, testSource: 'none' };
}

const rowsText = ({ data, test }: Inputs): string =>
  `${data.task}, ${data.n} rows × ${data.f} features${test ? `, ${test.n} test rows` : ''}`;

async function tuneRun(args: CliArgs, inputs: Inputs): Promise<Omit<Trained, 'trainMs' | 'cpuS'>> {
  const { data, test } = inputs;
  const fitRows = Math.round(data.n * (1 - args.opts.valSplit));
  const grid = customGrid(data.task, fitRows, args.grid);
  const estimate = args.quiet ? null : estimateTuning(data, args.opts, grid, { ...args, testRows: test?.n });
  if (estimate) {
    const threads = Math.max(1, Math.min(args.threads, grid.candidates.length));
    const halving = estimate.search.kind === 'halving';
    process.stderr.write(
      `tuning ${args.name}: ${rowsText(inputs)}; ` +
        `${grid.candidates.length} candidates × ${halving ? 'successive halving' : `${grid.epochs.length} training lengths`} on ${threads} thread(s), seed ${args.opts.seed}\n`,
    );
    process.stderr.write(`${estimateText(estimate, threads)}\n`);
  }
  const progress = tuneReporter(process.stderr, args.quiet, estimate);
  const { threads, calibration, calibrationFraction, refitCorrection } = args;
  const tuneOpts = {
    threads,
    grid,
    calibration,
    calibrationFraction,
    refitCorrection,
    onProgress: progress.onProgress,
    budget: args.budget,
    members: args.members,
  };
  const tuning = await tune(data, args.opts, tuneOpts, test);
  progress.done();
  if (args.members > 1 && !tuning.model.ensemble && !args.quiet)
    process.stderr.write(
      `note: --members ${args.members} applies where the calibration is cross-fitted (regression, the full grid); this run calibrated on '${tuning.card.calibration.source}', so it serves one network\n`,
    );
  return { model: tuning.model, opts: tuning.options, tuning, validation: tuning.validation };
}

const count = (n: number): string => n.toLocaleString('en-US');

/** The line before tuning: the steps and the time they will take at the speed measured. */
function estimateText(e: TuningEstimate, threads: number): string {
  const s = e.search;
  const cal =
    e.calibration === 'winner' ? 'the winner served without a refit' : `calibration on the ${e.calibration} rows`;
  const rule = s.kind === 'halving' && s.auto ? ` (by the data size; ${cal})` : '';
  const after = e.afterSteps > 0 ? `calibration and refit ≤ ${count(e.afterSteps)} steps` : 'calibration (no refit)';
  const search = s.kind === 'halving' ? `successive halving in ${count(s.steps)} steps${rule}` : 'the full grid';
  return (
    `estimate: ${search}: ${count(e.searchSteps)} steps ≈ ${formatEta(e.searchMs)} on ${threads} thread(s), ` +
    `then ${after} ≈ ${formatEta(e.afterMs)} ` +
    `(batch ${e.batchSize}, ${e.stepMs.toPrecision(3)} ms a step and ${formatEta(e.scoreMs)} a checkpoint's Monte Carlo score measured)`
  );
}

function trainRun(args: CliArgs, inputs: Inputs): Omit<Trained, 'trainMs' | 'cpuS'> {
  const opts = args.opts;
  if (!args.quiet) {
    process.stderr.write(
      `training ${args.name}: ${rowsText(inputs)}; ` +
        `hidden ${opts.hidden.join(',')} ${opts.activation}, dropout ${opts.dropout.join(',')}, ${opts.epochs} epochs, seed ${opts.seed}\n`,
    );
  }
  const progress = progressReporter(opts.epochs, process.stderr, args.quiet);
  const [fitRows, valRows] = validationSplit(inputs.data, opts);
  const model = trainOnSplit(fitRows, valRows, opts, inputs.test, progress.onEpoch);
  progress.done();
  return { model, opts, validation: { model, data: valRows } };
}

async function trainOrTune(args: CliArgs, inputs: Inputs): Promise<Trained> {
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  const made = args.tune ? await tuneRun(args, inputs) : trainRun(args, inputs);
  const trainMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuStart);
  return { ...made, trainMs, cpuS: (cpu.user + cpu.system) / 1e6 };
}

/** The run's one-paragraph summary (stdout and report.md). */
function summaryOf({ model, opts, tuning, trainMs, cpuS }: Trained, card: ModelCard): string {
  // a model served without a refit (calibration winner) keeps no history: its steps are not counted here
  const steps = model.history.length * Math.ceil(model.trainRows / Math.min(opts.batchSize, model.trainRows));
  const chosen = tuning
    ? `tuned: hidden ${opts.hidden.join(',')}, dropout ${opts.dropout[0]}, weight decay ${opts.weightDecay.toPrecision(3)}, ${opts.epochs} epochs, ${model.task === 'regression' ? `${model.noise}, ` : ''}refit on ${model.trainRows} rows${model.ensemble?.length ? ` (${model.ensemble.length + 1} members)` : ''}; `
    : '';
  return (
    `${chosen}epochs run ${model.epochsRun} (best ${model.bestEpoch}), ${steps > 0 ? `${steps} steps, ` : ''}${(trainMs / 1000).toFixed(2)} s (${cpuS.toFixed(2)} s CPU)` +
    (model.task === 'regression'
      ? `, aleatoric σ ${model.aleatoricStd.toPrecision(4)} (${card.target} units${model.noise === 'heteroscedastic' ? ', a floor on the predicted variance' : ''}), epistemic scale ${model.epistemicScale.toPrecision(4)}`
      : `, temperature ${model.temperature.toPrecision(4)}`)
  );
}

/** model.onnx, model.json, report.md and report.html in OUT/NAME, and the summary on stdout. */
function writeModel(args: CliArgs, argv: string[], inputs: Inputs, trained: Trained): void {
  const { model, opts, tuning, validation } = trained;
  const extras = { tuning, intervalMethod: args.intervalMethod };
  const card = buildCard(args.name, model, opts, inputs.dataRef, inputs.testRef, inputs.testSource, OPSET, extras);
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
  const table = metricsTable({ validation: model.metrics.validation, test: model.metrics.test });
  const summary = summaryOf(trained, card);
  writeFileSync(
    join(dir, 'report.md'),
    `# ${args.name}\n\n${summary}\n\n${table}\n\nCommand: \`npm run train -- ${argv.join(' ')}\`\n`,
  );
  const test = inputs.test;
  writeFileSync(
    join(dir, 'report.html'),
    modelReport({ command: trainCommand(argv), card, model, validation, test, opts }),
  );
  process.stdout.write(
    `${summary}\n\n${table}\n\nwrote ${join(dir, 'model.onnx')} (${onnx.length} bytes), model.json, report.md, report.html\n`,
  );
}

/** The CLI: 0 when the model was written, 1 on a data error, 2 on a usage error (0 for --help). */
export async function run(argv: string[]): Promise<number> {
  let args: CliArgs;
  try {
    args = parseCli(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.message) process.stderr.write(`error: ${err.message}\n`);
    process.stderr.write(`${usageText()}\n`);
    return err.message ? 2 : 0;
  }
  try {
    const inputs = readInputs(args);
    writeModel(args, argv, inputs, await trainOrTune(args, inputs));
    return 0;
  } catch (err) {
    if (!(err instanceof DataError)) throw err;
    process.stderr.write(`error: ${err.message}\n`);
    return 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  process.exitCode = await run(process.argv.slice(2));
