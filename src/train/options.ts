/**
 * The trainer's options, declared once: flag, default, help, parser and card field of each. The CLI's
 * parser and usage text (cli-args.ts, usage.ts), the `TrainOptions` type and its defaults, the card's
 * `training` record and the docs' option table (`npm run docs:options`) all come from these two tables,
 * the way src/config.ts declares the server's environment.
 */
import { availableParallelism } from 'node:os';
import type { Task } from './data.js';
import type { EngineKind } from './engine.js';
import type { Activation } from './mlp.js';
import type { FittedNetwork } from './train.js';

/** A bad command line: cli.ts prints the message and the usage text, and exits 2. */
export class UsageError extends Error {}

export type NoiseModel = 'homoscedastic' | 'heteroscedastic';

/** Where the calibration rows of a tuned model come from (tune.ts). */
export const CALIBRATION_SOURCES = ['crossfit', 'validation', 'holdout', 'winner'] as const;

/** How a cross-fitted calibration accounts for the refit training on every row (refit-correction.ts). */
export const REFIT_CORRECTIONS = ['burman', 'off'] as const;
export type RefitCorrectionKind = (typeof REFIT_CORRECTIONS)[number];

/** The groups of the usage text and the docs table, in their order. */
export const SECTIONS = {
  data: 'Data',
  network: 'Network',
  training: 'Training',
  calibration: 'Calibration and intervals',
  tuning: 'Tuning (--tune)',
  output: 'Output',
} as const;

export interface OptionSpec<T> {
  /** The flag without its dashes. */
  flag: string;
  /** What the flag takes (usage and docs), e.g. `N` or `relu|tanh|gelu`; absent for a switch. */
  arg?: string;
  section: keyof typeof SECTIONS;
  help: string;
  default: T;
  /** The default shown when it is not the value itself (a machine's core count). */
  shownDefault?: string;
  /** The default of a `--tune` run, when it differs. */
  tuneDefault?: T;
  /** Parses the flag's text; throws a UsageError naming the flag. Absent for a switch (true when given). */
  parse?: (text: string, flag: string) => T;
  required?: boolean;
  /** A one-letter alias (`-h`). */
  short?: string;
  /** Only with --tune. */
  tuneOnly?: boolean;
  /** Chosen by --tune, so not allowed with it. */
  tuned?: boolean;
  /** Its field in the card's `training` record, and the value written there when it is not the option's. */
  card?: string;
  cardValue?: (m: Pick<FittedNetwork, 'task' | 'spec' | 'noise'>) => unknown;
}

const option = <T>(spec: OptionSpec<T>): OptionSpec<T> => spec;

/** A number of the flag's text that passes `check` (`what` names the range in the message). */
export function num(check: (x: number) => boolean, what: string): (text: string, flag: string) => number {
  return (text, flag) => {
    const x = Number(text);
    if (text.trim() === '' || !Number.isFinite(x) || !check(x))
      throw new UsageError(`--${flag} ${text}: expected ${what}`);
    return x;
  };
}

/** A comma list of numbers, each passing `check`. */
export function list(check: (x: number) => boolean, what: string): (text: string, flag: string) => number[] {
  const one = num(check, what);
  return (text, flag) => text.split(',').map((s) => one(s.trim(), flag));
}

/** One of `choices`. */
export function oneOf<C extends string>(choices: readonly C[]): (text: string, flag: string) => C {
  const expected =
    choices.length > 2 ? `${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1]}` : choices.join(' or ');
  return (text, flag) => {
    if (!(choices as readonly string[]).includes(text)) throw new UsageError(`--${flag} ${text}: expected ${expected}`);
    return text as C;
  };
}

const int = Number.isInteger;
const rate = (x: number): boolean => x >= 0 && x < 1;
const fraction = (x: number): boolean => x > 0 && x < 1;
const NOISE_MODELS = ['homoscedastic', 'heteroscedastic'] as const;
const hiddenWidths = list((x) => int(x) && x >= 1 && x <= 4096, 'positive integer widths (≤ 4096)');

/**
 * The hidden width of a tuned run unless --hidden says otherwise. Measured on the full UCI benchmark
 * (`npm run bench -- uci --hidden 200` against the default run at 100, the same 20 splits of each
 * dataset, paired test-LL differences): boston +0.024 ± 0.030, concrete +0.019 ± 0.018, energy
 * +0.038 ± 0.016, yacht +0.160 ± 0.051, wine (see README), for 1.4–1.9× the training CPU; concrete's
 * test LL reaches the paper's (−2.946 ± 0.027 against −2.93) only at 200. An earlier look (concrete
 * splits 0–3, p 0.05, 4000 epochs): width 50 → test LL −3.06, 100 → −3.03, 200 → −3.00.
 */
export const TUNE_HIDDEN = 200;

/** The default grid's architecture from TUNE_DEEP_FIT_ROWS fit rows on: two hidden layers of 50. */
export const TUNE_DEEP: number[] = [50, 50];

/**
 * Fit rows (the tuning split's training rows) from which the default `--tune` grid's architecture is
 * TUNE_DEEP instead of one layer of TUNE_HIDDEN (issue 22: Gal & Ghahramani's 2-layer MC dropout results
 * are most of the best published networks on the UCI sets). Measured paired per split against the
 * committed one-layer run (`nice -n 19 npm run bench -- uci --datasets D --splits 5 --jobs 1 --hidden
 * 50,50`, test LL new − old, splits 0–4): concrete (742 fit rows) +0.088 ± 0.042, wine (1151) +0.023 ±
 * 0.021, energy (553) +0.012 ± 0.059; power-plant (6889) split 0 +0.055; and below, yacht (222) −0.355 ±
 * 0.136 (RMSE 0.44 → 0.97), boston (364) −0.016 on splits 0–2, while the shipped diabetes model (283 fit rows) chose 2 × 50 when the grid offered it and
 * its test RMSE went 57.0 → 63.4. So two layers from where they gained (concrete), one below where they
 * gained nothing (energy). Choosing the depth on validation instead (`--tune-hidden 200/50,50`) kept
 * little of concrete's gain (+0.055 ± 0.046).
 */
export const TUNE_DEEP_FIT_ROWS = 600;

/**
 * The architectures the default `--tune` grid searches for `fitRows` fit rows (each with every
 * (dropout, c) pair; tune.ts defaultGrid), unless --hidden fixes one or --tune-hidden lists others: one
 * layer of TUNE_HIDDEN below TUNE_DEEP_FIT_ROWS, TUNE_DEEP from there; classifiers one layer (the rule is
 * measured on regression only).
 */
export function tuneArchitectures(task: 'regression' | 'classification', fitRows: number): number[][] {
  return task === 'regression' && fitRows >= TUNE_DEEP_FIT_ROWS ? [TUNE_DEEP] : [[TUNE_HIDDEN]];
}

/** How the default architecture is chosen, in words (the help and the card's grid rule). */
export const TUNE_ARCHITECTURE_RULE = `${TUNE_HIDDEN}; ${TUNE_DEEP.join(',')} for regression from ${TUNE_DEEP_FIT_ROWS} fit rows`;

/** The minibatch size of a tuned run unless --batch-size says otherwise: the paper's (their code), and cheaper per row than 32. */
export const TUNE_BATCH_SIZE = 128;

/**
 * The options of a training run (`TrainOptions`), in the order of the card's `training` record. The
 * regression noise model: homoscedastic, one σ calibrated on validation rows; heteroscedastic, a second
 * output (the log-variance) trained under the Gaussian NLL (Kendall & Gal 2017).
 */
export const TRAIN_OPTIONS = {
  hidden: option({
    flag: 'hidden',
    arg: 'N[,N…]',
    section: 'network',
    help: `hidden widths, a comma list for several layers (64,64); given with --tune it fixes the architecture, else the grid searches --tune-hidden's (default: ${TUNE_ARCHITECTURE_RULE})`,
    default: [50],
    // a tuned run's base options (the grid's candidates carry their own widths)
    tuneDefault: [TUNE_HIDDEN],
    parse: (text, flag) => hiddenWidths(text, flag),
    card: 'hidden',
  }),
  dropout: option({
    flag: 'dropout',
    arg: 'P[,P…]',
    section: 'network',
    help: 'one rate for every hidden layer, or one per layer (0.5,0.3)',
    default: [0.3],
    parse: list(rate, 'rates in [0, 1)'),
    tuned: true,
    card: 'dropout',
    cardValue: (m) => m.spec.dropout,
  }),
  inputDropout: option({
    flag: 'input-dropout',
    arg: 'P',
    section: 'network',
    help: 'dropout rate on the standardised inputs (a Dropout op in the graph; 0 = none)',
    default: 0,
    parse: num(rate, 'a rate in [0, 1)'),
    card: 'input_dropout',
  }),
  noise: option<NoiseModel>({
    flag: 'noise',
    arg: NOISE_MODELS.join('|'),
    section: 'network',
    help: 'regression noise: one calibrated σ, or a predicted log-variance output',
    default: 'homoscedastic',
    parse: oneOf(NOISE_MODELS),
    tuned: true,
    card: 'noise',
    cardValue: (m) => (m.task === 'regression' ? m.noise : undefined),
  }),
  activation: option<Activation>({
    flag: 'activation',
    arg: 'relu|tanh|gelu',
    section: 'network',
    help: 'hidden activation',
    default: 'relu',
    parse: oneOf(['relu', 'tanh', 'gelu'] as const),
    card: 'activation',
  }),
  epochs: option({
    flag: 'epochs',
    arg: 'N',
    section: 'training',
    help: 'training epochs',
    default: 300,
    parse: num((x) => int(x) && x >= 1, 'a positive integer'),
    tuned: true,
    card: 'epochs',
  }),
  batchSize: option({
    flag: 'batch-size',
    arg: 'N',
    section: 'training',
    help: 'minibatch rows',
    default: 32,
    tuneDefault: TUNE_BATCH_SIZE,
    parse: num((x) => int(x) && x >= 1, 'a positive integer'),
    card: 'batch_size',
  }),
  lr: option({
    flag: 'lr',
    arg: 'X',
    section: 'training',
    help: 'Adam learning rate',
    default: 1e-3,
    parse: num((x) => x > 0 && x < 10, 'a learning rate in (0, 10)'),
    card: 'lr',
  }),
  weightDecay: option({
    flag: 'weight-decay',
    arg: 'X',
    section: 'training',
    help: 'L2 weight decay (PyTorch Adam semantics)',
    default: 1e-4,
    parse: num((x) => x >= 0, 'a number ≥ 0'),
    tuned: true,
    card: 'weight_decay',
  }),
  patience: option({
    flag: 'patience',
    arg: 'N',
    section: 'training',
    help: 'stop after N epochs without a better validation loss, restoring the best weights (0 = off)',
    default: 0,
    parse: num((x) => int(x) && x >= 0, 'an integer ≥ 0'),
    tuned: true,
    card: 'patience',
  }),
  valSplit: option({
    flag: 'val-split',
    arg: 'F',
    section: 'data',
    help: 'fraction of --data held out for validation and calibration',
    default: 0.2,
    parse: num(fraction, 'a fraction in (0, 1)'),
    card: 'val_split',
  }),
  seed: option({
    flag: 'seed',
    arg: 'N',
    section: 'training',
    help: 'seed of every random stream (splits, initialisation, minibatches, masks): same seed, same bytes',
    default: 0,
    parse: num((x) => int(x) && x >= 0 && x < 2 ** 32, 'an integer in [0, 2^32)'),
    card: 'seed',
  }),
  nllBeta: option({
    flag: 'nll-beta',
    arg: 'β',
    section: 'training',
    help: 'heteroscedastic training: β-NLL (Seitzer et al. 2022), β in [0, 1]; 0 = the plain Gaussian NLL',
    default: 0,
    parse: num((x) => x >= 0 && x <= 1, 'a number in [0, 1]'),
  }),
  mcSamples: option({
    flag: 'mc-samples',
    arg: 'N',
    section: 'calibration',
    help: 'Monte Carlo passes for calibration, tuning scores and metrics',
    default: 200,
    parse: num((x) => int(x) && x >= 2 && x <= 100000, 'an integer in [2, 100000]'),
  }),
  engine: option<'auto' | EngineKind>({
    flag: 'engine',
    arg: 'auto|wasm|js',
    section: 'training',
    help: 'minibatch kernels: auto = WebAssembly SIMD for relu, JavaScript otherwise',
    default: 'auto',
    parse: oneOf(['auto', 'wasm', 'js'] as const),
  }),
};

/** Default worker threads: the machine's parallelism, capped. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(8, availableParallelism()));
}

/** The command line's own options (what to read and write, tuning), in CliArgs. */
export const RUN_OPTIONS = {
  data: option<string>({
    flag: 'data',
    arg: 'FILE',
    section: 'data',
    help: 'the training rows: a CSV file with a header',
    default: '',
    parse: (text) => text,
    required: true,
  }),
  target: option<string>({
    flag: 'target',
    arg: 'COL',
    section: 'data',
    help: 'the target column',
    default: '',
    parse: (text) => text,
    required: true,
  }),
  name: option<string>({
    flag: 'name',
    arg: 'NAME',
    section: 'output',
    help: "the model's name and folder: letters, digits, '.', '_' or '-' (at most 64)",
    default: '',
    parse: (text) => {
      if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(text)) return text;
      throw new UsageError(
        `--name ${text}: use letters, digits, '.', '_' or '-' (at most 64, not starting with a symbol)`,
      );
    },
    required: true,
  }),
  task: option<Task | undefined>({
    flag: 'task',
    arg: 'regression|classification',
    section: 'data',
    help: 'the task',
    default: undefined,
    shownDefault: 'inferred from the target column',
    parse: oneOf(['regression', 'classification'] as const),
  }),
  testData: option<string | undefined>({
    flag: 'test-data',
    arg: 'FILE',
    section: 'data',
    help: 'held-out rows: metrics and interval coverage are reported on them',
    default: undefined,
    shownDefault: 'none',
    parse: (text) => text,
  }),
  testSplit: option({
    flag: 'test-split',
    arg: 'F',
    section: 'data',
    help: 'instead of --test-data, hold out this fraction of --data as test rows (seeded)',
    default: 0,
    shownDefault: 'none',
    parse: num(fraction, 'a fraction in (0, 1)'),
  }),
  intervalMethod: option<'conformal' | 'gaussian'>({
    flag: 'interval-method',
    arg: 'conformal|gaussian',
    section: 'calibration',
    help: "the card's default interval (regression)",
    default: 'conformal',
    parse: oneOf(['conformal', 'gaussian'] as const),
  }),
  tune: option({
    flag: 'tune',
    section: 'tuning',
    help: `search the architecture, dropout, weight decay, training length and noise model on a validation split of the training rows, then refit on all of them (batch size ${TUNE_BATCH_SIZE} unless --batch-size is given)`,
    default: false,
  }),
  threads: option({
    flag: 'threads',
    arg: 'N',
    section: 'tuning',
    help: 'tuning worker threads (0 = inline)',
    default: defaultThreads(),
    shownDefault: 'available cores, at most 8',
    parse: num((x) => int(x) && x >= 0 && x <= 64, 'an integer in [0, 64]'),
    tuneOnly: true,
  }),
  calibration: option<(typeof CALIBRATION_SOURCES)[number]>({
    flag: 'calibration',
    arg: CALIBRATION_SOURCES.join('|'),
    section: 'tuning',
    help: 'tuned models: fit the noise, epistemic scale and conformal scores on out-of-fold predictions of every training row (crossfit, 5 folds; regression), on the tuning validation rows, on rows held out of the refit (--calibration-fraction), or on the tuning validation rows with the winning candidate served as it is, without a refit (winner)',
    default: 'crossfit',
    parse: oneOf(CALIBRATION_SOURCES),
    tuneOnly: true,
  }),
  refitCorrection: option<RefitCorrectionKind>({
    flag: 'refit-correction',
    arg: REFIT_CORRECTIONS.join('|'),
    section: 'tuning',
    help: "--calibration crossfit: scale the out-of-fold residuals by Burman's (1989) estimate of how much less the refit on all rows errs than the fold networks (both measured on the same rows), so that the noise, epistemic scale and conformal scores are fitted to the served refit rather than to networks trained on 4/5 of the rows (not for a target on a coarse grid); off: the fold networks' residuals as they are",
    default: 'burman',
    parse: oneOf(REFIT_CORRECTIONS),
    tuneOnly: true,
  }),
  calibrationFraction: option({
    flag: 'calibration-fraction',
    arg: 'F',
    section: 'tuning',
    help: 'the fraction of the training rows held out of the refit with --calibration holdout',
    default: 0.2,
    parse: num(fraction, 'a fraction in (0, 1)'),
    tuneOnly: true,
  }),
  members: option({
    flag: 'members',
    arg: 'M',
    section: 'tuning',
    help: "networks in the served ensemble where the calibration is cross-fitted (regression, the full grid: small data; elsewhere 1): the winner's settings trained with M seeds (folds and refit), served as their uniform mixture (each Monte Carlo pass is one member's, the prediction their average); M times the calibration's training and the serving's compute",
    default: 1,
    parse: num((x) => int(x) && x >= 1 && x <= 10, 'an integer in [1, 10]'),
    tuneOnly: true,
  }),
  tuneDropout: option<number[] | undefined>({
    flag: 'tune-dropout',
    arg: 'P,P…',
    section: 'tuning',
    help: "the grid's dropout rates",
    default: undefined,
    shownDefault: 'the default grid',
    parse: list(rate, 'rates in [0, 1)'),
    tuneOnly: true,
  }),
  tuneWeightDecay: option<number[] | undefined>({
    flag: 'tune-weight-decay',
    arg: 'C,C…',
    section: 'tuning',
    help: "the grid's weight decays as c in λ = c/N (N the fit rows)",
    default: undefined,
    shownDefault: 'the default grid',
    parse: list((x) => x >= 0, 'numbers ≥ 0 (c in λ = c/N)'),
    tuneOnly: true,
  }),
  tuneEpochs: option<number[] | undefined>({
    flag: 'tune-epochs',
    arg: 'N,N…',
    section: 'tuning',
    help: "the grid's training lengths",
    default: undefined,
    shownDefault: 'the default grid',
    parse: list((x) => int(x) && x >= 1, 'positive integers'),
    tuneOnly: true,
  }),
  tuneNoise: option<NoiseModel[] | undefined>({
    flag: 'tune-noise',
    arg: NOISE_MODELS.join(','),
    section: 'tuning',
    help: "the grid's noise models",
    default: undefined,
    shownDefault: 'the default grid',
    parse: (text, flag) => text.split(',').map((v) => oneOf(NOISE_MODELS)(v.trim(), flag)),
    tuneOnly: true,
  }),
  tuneHidden: option<number[][] | undefined>({
    flag: 'tune-hidden',
    arg: 'N[,N…]/N[,N…]…',
    section: 'tuning',
    help: "the grid's architectures: hidden widths as for --hidden, architectures separated by '/' (200/50,50: one layer of 200 or two of 50, chosen on validation); --hidden fixes one",
    default: undefined,
    shownDefault: TUNE_ARCHITECTURE_RULE,
    parse: (text, flag) => text.split('/').map((a) => hiddenWidths(a, flag)),
    tuneOnly: true,
  }),
  tuneBudget: option<number | 'grid' | undefined>({
    flag: 'tune-budget',
    arg: 'STEPS|grid',
    section: 'tuning',
    help: 'search in this many optimiser steps by successive halving (score every candidate, the better half trains on to twice the length, until one is left), the batch size and training lengths from the data size (batch 128, doubled per doubling of the fit rows past 16,384, at most 1024, unless --batch-size); grid: every candidate trains to the longest length. Default: the full grid while fit rows × the longest length stay under 10⁷, else 800,000 steps (the longest run at most the grid longest length) at 4 × the learning rate, the winner served without a refit and calibrated on the tuning validation rows (--calibration winner)',
    default: undefined,
    shownDefault: 'by the data size',
    parse: (text, flag) =>
      text === 'grid'
        ? 'grid'
        : num((x) => int(x) && x >= 1, 'a positive integer number of steps, or grid')(text, flag),
    tuneOnly: true,
  }),
  out: option({
    flag: 'out',
    arg: 'DIR',
    section: 'output',
    help: 'writes DIR/NAME/model.onnx, model.json, report.md and report.html',
    default: 'models',
    parse: (text) => text,
  }),
  quiet: option({ flag: 'quiet', section: 'output', help: 'no progress on stderr', default: false }),
  help: option({ flag: 'help', short: 'h', section: 'output', help: 'this text', default: false }),
};

type ValuesOf<Table> = { -readonly [K in keyof Table]: Table[K] extends OptionSpec<infer T> ? T : never };

export type TrainOptions = ValuesOf<typeof TRAIN_OPTIONS>;
export type RunOptions = ValuesOf<typeof RUN_OPTIONS>;

/** Every option of the command line, the run's own first. */
export const ALL_OPTIONS: OptionSpec<unknown>[] = [...Object.values(RUN_OPTIONS), ...Object.values(TRAIN_OPTIONS)];

function defaultsOf<Table extends Record<string, OptionSpec<unknown>>>(table: Table, tune = false): ValuesOf<Table> {
  const entries = Object.entries(table).map(([key, o]) => [
    key,
    tune && 'tuneDefault' in o ? o.tuneDefault : o.default,
  ]);
  return Object.fromEntries(entries) as ValuesOf<Table>;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = defaultsOf(TRAIN_OPTIONS);

/** The defaults of a run (`tune`: of a --tune run). */
export function trainDefaults(tune: boolean): TrainOptions {
  return defaultsOf(TRAIN_OPTIONS, tune);
}
export const DEFAULT_RUN_OPTIONS: RunOptions = defaultsOf(RUN_OPTIONS);

/** The options' part of the card's `training` record, in table order. */
export function trainingRecord(
  opts: TrainOptions,
  m: Pick<FittedNetwork, 'task' | 'spec' | 'noise'>,
): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  for (const [key, o] of Object.entries(TRAIN_OPTIONS) as [keyof TrainOptions, OptionSpec<unknown>][]) {
    if (o.card) record[o.card] = o.cardValue ? o.cardValue(m) : opts[key];
  }
  return record;
}
