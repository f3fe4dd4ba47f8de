/**
 * The command line → CliArgs, from the option tables (options.ts): each flag parsed by its own parser,
 * then the rules between flags.
 */
import { parseArgs } from 'node:util';
import {
  ALL_OPTIONS,
  DEFAULT_RUN_OPTIONS,
  type OptionSpec,
  RUN_OPTIONS,
  type RunOptions,
  TRAIN_OPTIONS,
  type TrainOptions,
  trainDefaults,
  UsageError,
} from './options.js';
import type { GridOverrides } from './tune.js';

type GridFlags = 'tuneDropout' | 'tuneWeightDecay' | 'tuneEpochs' | 'tuneNoise' | 'tuneHidden' | 'tuneBudget' | 'help';

export interface CliArgs extends Omit<RunOptions, GridFlags> {
  opts: TrainOptions;
  /** Grid overrides (undefined: the default grid's; hidden: --tune-hidden, or the one --hidden gives). */
  grid: GridOverrides;
  /**
   * --tune-budget: the search's optimiser steps, and the batch size when --batch-size is given; 'grid' for
   * the full grid (also with --tune-epochs); absent: by the data size (tune-search.ts).
   */
  budget?: { steps: number; batchSize?: number } | 'grid';
}

type Texts = Record<string, string | boolean | undefined>;

function readFlags(argv: string[]): Texts {
  const options = Object.fromEntries(
    ALL_OPTIONS.map((o) => [
      o.flag,
      { type: o.parse ? ('string' as const) : ('boolean' as const), ...(o.short ? { short: o.short } : {}) },
    ]),
  );
  try {
    return parseArgs({ args: argv, options, strict: true }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The rules on which flags are given: required ones, exclusive ones, and --tune's. */
function checkPresence(given: Texts): void {
  for (const o of ALL_OPTIONS) if (o.required && !given[o.flag]) throw new UsageError(`--${o.flag} is required`);
  if (given['test-data'] && given['test-split']) throw new UsageError('give --test-data or --test-split, not both');
  for (const o of ALL_OPTIONS) {
    if (o.tuneOnly && given[o.flag] !== undefined && !given.tune) throw new UsageError(`--${o.flag} needs --tune`);
  }
  if (!given.tune) return;
  for (const o of ALL_OPTIONS) {
    if (o.tuned && given[o.flag] !== undefined)
      throw new UsageError(
        `--${o.flag} is chosen by --tune (set the grid with --tune-dropout, --tune-weight-decay, --tune-epochs, --tune-noise)`,
      );
  }
}

/** Each option of `table`: its flag parsed, or its default. */
function valuesOf<T>(table: Record<string, OptionSpec<unknown>>, given: Texts, defaults: Record<string, unknown>): T {
  const entries = Object.entries(table).map(([key, o]) => {
    const text = given[o.flag];
    if (text === undefined) return [key, defaults[key]];
    return [key, typeof text === 'boolean' || !o.parse ? text : o.parse(text, o.flag)];
  });
  return Object.fromEntries(entries) as T;
}

/** The rules between values. */
function checkValues(run: RunOptions, opts: TrainOptions): void {
  if (opts.engine === 'wasm' && opts.activation !== 'relu')
    throw new UsageError(`--engine wasm supports --activation relu only (got ${opts.activation})`);
  if (opts.noise === 'heteroscedastic' && run.task === 'classification')
    throw new UsageError('--noise heteroscedastic applies to regression only');
}

/** Parse the trainer's command line; throws a UsageError (message '' for --help). */
export function parseCli(argv: string[]): CliArgs {
  const given = readFlags(argv);
  if (given.help) throw new UsageError('');
  checkPresence(given);
  const run = valuesOf<RunOptions>(RUN_OPTIONS, given, DEFAULT_RUN_OPTIONS);
  const opts = valuesOf<TrainOptions>(TRAIN_OPTIONS, given, trainDefaults(run.tune));
  checkValues(run, opts);
  const { tuneDropout, tuneWeightDecay, tuneEpochs, tuneNoise, tuneHidden, tuneBudget, help: _help, ...rest } = run;
  if (tuneBudget !== undefined && tuneEpochs) throw new UsageError('give --tune-budget or --tune-epochs, not both');
  if (tuneHidden && given.hidden !== undefined) throw new UsageError('give --hidden or --tune-hidden, not both');
  const hidden = tuneHidden ?? (given.hidden !== undefined ? [opts.hidden] : undefined);
  const batchSize = given['batch-size'] !== undefined ? opts.batchSize : undefined;
  return {
    ...rest,
    opts,
    grid: {
      dropout: tuneDropout,
      decayTimesN: tuneWeightDecay,
      epochs: tuneEpochs,
      noise: tuneNoise,
      ...(hidden ? { hidden } : {}),
    },
    ...(tuneBudget === 'grid' || tuneEpochs ? { budget: 'grid' as const } : {}),
    ...(typeof tuneBudget === 'number' ? { budget: { steps: tuneBudget, batchSize } } : {}),
  };
}
