/** zod schemas of the /v1 and health routes: validator, TypeScript type and OpenAPI at once. */
import { z } from 'zod';
import { onRequestNames } from '../../uncertainty/statistics.js';
import type { Config } from '../../config.js';
import { INTERVAL_METHODS } from '../../model/uncertainty.js';
import { AUTO_DEFAULT_MAX_SAMPLES, AUTO_DEFAULT_TOLERANCE, AUTO_MIN_SAMPLES } from '../../uncertainty/stopping.js';
import { Regression, predictionSchema } from '../protocol/v1.js';
import {
  modelParamsFastPath,
  predictFastPath,
  uncertaintyFastPath,
  versionQueryFastPath,
  withFastPath,
} from './fast-path.js';

export const ErrorBody = z
  .object({
    statusCode: z.number().int(),
    error: z.string(),
    message: z.string().describe('What is wrong: the field, row and expectation'),
    code: z.string().optional(),
  })
  .describe('Fastify error shape');

export const ReportPage = z
  .string()
  .describe(
    'One self-contained HTML page (inline CSS and SVG; no script, nothing fetched), written by `npm run train` beside the model',
  );

export const ModelParams = withFastPath(
  z.object({ name: z.string().min(1).max(200).describe('Model name (folder under models/)') }),
  modelParamsFastPath,
);

export const VersionQuery = withFastPath(
  z.object({
    version: z
      .string()
      .min(1)
      .max(100)
      .optional()
      .describe('A served version of the model (default: the highest served)'),
  }),
  versionQueryFastPath,
);

/**
 * Numbers nested to a tensor's row shape ([[1, 2], [3, 4]] for a [-1, 2, 2] input), rows of rank 7 at
 * most (V2's shapes have 8 dims at most). Spelt out level by level: a recursive zod schema (z.lazy)
 * becomes a dangling $ref in the OpenAPI document.
 */
const nestedTo = (depth: number): z.ZodType =>
  depth === 0 ? z.number() : z.union([z.number(), z.array(nestedTo(depth - 1))]);
const NestedNumbers = z.array(nestedTo(6));

const Row = z
  .union([
    z.array(z.number()).describe('Feature values in the order of the model card `features`'),
    z.record(z.string(), z.number()).describe('Feature values keyed by feature name'),
    NestedNumbers.describe("A tensor model with one input: the values of one row, nested to the input's row shape"),
    z
      .record(z.string(), z.union([z.number(), NestedNumbers]))
      .describe("A tensor model: each input's row (nested to its row shape) keyed by input name"),
  ])
  .describe('One row');

export const Instances = z
  .array(Row)
  .min(1)
  .describe(
    "Rows to score (1..MAX_BATCH_ROWS). Tensor models take TF Serving's row format: each instance a nested array of the input's row shape, or an object keyed by input name",
  );

/** TF Serving's columnar format: each input's whole batch (tensor models). */
export const Columnar = z
  .union([
    NestedNumbers.describe("A model with one input: its batch, nested to the input's shape (the rows first)"),
    z.record(z.string(), NestedNumbers).describe("Each input's batch, nested to its shape, keyed by input name"),
  ])
  .describe(
    'Tensor models, instead of `instances`: the columnar format of TF Serving (`inputs`), every input holding the same rows',
  );

export const PredictBody = withFastPath(
  z.union([
    z.object({ instances: Instances }),
    z.object({ inputs: Columnar }),
    Instances.describe('A bare array of rows (same as {"instances": [...]})'),
  ]),
  predictFastPath,
);

/** `instances`, or `inputs` (columnar), exactly one of them. */
function rowsOrColumns(body: { instances?: unknown; inputs?: unknown }, ctx: z.RefinementCtx): void {
  if (body.instances === undefined && body.inputs === undefined)
    ctx.addIssue({ code: 'custom', path: ['instances'], message: 'Invalid input: expected array, received undefined' });
  else if (body.instances !== undefined && body.inputs !== undefined)
    ctx.addIssue({ code: 'custom', path: ['inputs'], message: 'send either instances or inputs, not both' });
}

export function uncertaintyBody(config: Pick<Config, 'MC_MAX_SAMPLES' | 'MC_DEFAULT_SAMPLES'>) {
  return withFastPath(uncertaintySchema(config), uncertaintyFastPath(config.MC_MAX_SAMPLES));
}

/** "auto"'s tolerance: a relative (regression) or absolute (probabilities) MC error in (0, 1]. */
export const Tolerance = z.number().gt(0).max(1);

/** The refinement of a body whose auto fields (`fields`: [tolerance, max_samples]) need `samples: "auto"`. */
export function autoOnly<T extends Record<string, unknown>>(
  samplesKey: keyof T & string,
  fields: readonly (keyof T & string)[],
): (body: T, ctx: z.RefinementCtx) => void {
  return (body, ctx) => {
    if (body[samplesKey] === 'auto') return;
    for (const f of fields)
      if (body[f] !== undefined)
        ctx.addIssue({ code: 'custom', path: [f], message: `${f} applies only with ${samplesKey} "auto"` });
  };
}

const autoSamplesHelp = (maxSamples: number): string =>
  `"auto": sample in chunks until the Monte Carlo error of every served mean and std (relative to the row's predictive std; of every class probability, absolute) is within \`tolerance\`, at least ${AUTO_MIN_SAMPLES} and at most \`max_samples\` (default min(${AUTO_DEFAULT_MAX_SAMPLES}, MC_MAX_SAMPLES=${maxSamples})); each row stops on its own (tabular models); the answer says \`samples_used\`, and each row its own when they differ`;

function uncertaintySchema(config: Pick<Config, 'MC_MAX_SAMPLES' | 'MC_DEFAULT_SAMPLES'>) {
  return z
    .object({
      instances: Instances.optional(),
      inputs: Columnar.optional(),
      samples: z
        .union([z.number().int().min(1).max(config.MC_MAX_SAMPLES), z.literal('auto')])
        .optional()
        .describe(
          `Monte Carlo passes T (1..MC_MAX_SAMPLES=${config.MC_MAX_SAMPLES}, default MC_DEFAULT_SAMPLES=${config.MC_DEFAULT_SAMPLES}), or ${autoSamplesHelp(config.MC_MAX_SAMPLES)}`,
        ),
      tolerance: Tolerance.optional().describe(
        `With samples "auto": the largest Monte Carlo error, 0 < x ≤ 1 (default ${AUTO_DEFAULT_TOLERANCE})`,
      ),
      max_samples: z
        .number()
        .int()
        .min(1)
        .max(config.MC_MAX_SAMPLES)
        .optional()
        .describe(
          `With samples "auto": the most samples (1..MC_MAX_SAMPLES; default min(${AUTO_DEFAULT_MAX_SAMPLES}, MC_MAX_SAMPLES)); rows × max_samples ≤ MC_MAX_WORK`,
        ),
      interval: z.number().gt(0).lt(1).optional().describe('Central interval level, 0 < x < 1 (default 0.9)'),
      interval_method: z
        .enum(INTERVAL_METHODS)
        .optional()
        .describe(
          "Regression: gaussian (mean ± z·std) or conformal (mean ± q·std, q the split-conformal quantile of the card's calibration scores; 422 when the model has none or too few for the level). Default: the model's interval_method",
        ),
      seed: z
        .number()
        .int()
        .min(0)
        .max(Number.MAX_SAFE_INTEGER)
        .optional()
        .describe('Seed of the dropout masks: the same seed gives the same answer'),
      return_samples: z.boolean().optional().describe('Also return the raw per-sample predictions'),
      statistics: z
        .array(z.string().max(64))
        .max(16)
        .optional()
        .describe(
          `Statistics served on request, by their field names (regression: ${onRequestNames('regression', 'v1').join(', ')}): each row then has them too; without, it has none of them and the server keeps no samples for them. A name that is not one of the model's is a 400`,
        ),
    })
    .superRefine(autoOnly('samples', ['tolerance', 'max_samples']))
    .superRefine(rowsOrColumns);
}

const Tensor = z.object({ name: z.string(), datatype: z.string(), shape: z.array(z.number()) });

const modelFields = {
  name: z.string(),
  task: z.enum(['regression', 'classification']),
  features: z.array(z.string()),
  labels: z.array(z.string()).optional(),
  dropout: z.array(z.number()).describe('Dropout rate of each Dropout node, in graph order'),
  aleatoric_std: Regression.optional().describe(
    'Regression: the observation noise σ (homoscedastic) or the floor added to the predicted variance (heteroscedastic)',
  ),
  noise: z
    .enum(['homoscedastic', 'heteroscedastic'])
    .optional()
    .describe('Regression: one noise σ for all rows, or a predicted log-variance per row'),
  epistemic_scale: z
    .number()
    .optional()
    .describe('Regression: epistemic_std = epistemic_scale × the std of the Monte Carlo means'),
  interval_method: z
    .enum(INTERVAL_METHODS)
    .optional()
    .describe('Regression: the interval a request gets when it names none'),
  interval_methods: z
    .array(z.enum(INTERVAL_METHODS))
    .optional()
    .describe('Regression: the interval methods the model serves (conformal needs calibration scores in its card)'),
  temperature: z
    .number()
    .optional()
    .describe(
      "Classification: every Monte Carlo sample's logits are divided by it before the softmax (and in predict)",
    ),
  inputs: z.array(Tensor),
  outputs: z.array(Tensor),
  mc_available: z.boolean().describe('false when the graph has no Dropout node'),
  version: z.string().describe('The version this answer describes'),
  versions: z.array(z.string()).describe('The served versions of the model, ascending'),
};

export const ModelCard = z
  .looseObject(modelFields)
  .describe('The whole card file (its fields pass through) plus what the server read from the graph');

export const ModelEntry = z
  .looseObject({
    ...modelFields,
    conformal: z
      .looseObject({
        scores_summary: z
          .object({
            count: z.number().int(),
            min: z.number().nullable(),
            max: z.number().nullable(),
            quantiles: z
              .record(z.string(), z.number().nullable())
              .describe(
                'level → the split-conformal quantile of the scores (the interval multiplier at that level; null: too few rows)',
              ),
          })
          .optional(),
      })
      .optional()
      .describe('Split-conformal calibration: the scores summarised (the card file has them all)'),
    history: z
      .record(z.string(), z.unknown())
      .optional()
      .describe('Training curves: each as {points, last} (the card file has them all)'),
  })
  .describe(
    'The model card without raw arrays (conformal scores and training curves summarised, feature statistics only when short) plus what the server read from the graph',
  );

export const ModelSummary = z
  .object({
    name: z.string(),
    version: z.string(),
    versions: z.array(z.string()),
    task: z.enum(['regression', 'classification']),
    inputs: z.array(Tensor),
    outputs: z.array(Tensor),
    mc_available: z.boolean(),
    interval_methods: z.array(z.enum(INTERVAL_METHODS)).optional().describe('Regression: the interval methods served'),
  })
  .describe('One short record per model: GET /v1/models/{name} has its card');

export const ModelList = z.object({ models: z.array(ModelSummary) });

export const ClassPrediction = z.object({ label: z.string(), probabilities: z.record(z.string(), z.number()) });

/** A tensor model's row answer: nested to the output's row shape (the schema cannot name the shape). */
const TensorRow = z
  .unknown()
  .describe(
    "Tensor models: the output's row as nested arrays; a classifier {label, probabilities}: labels per position, probabilities with the class axis where the output has it",
  );

export const PredictResponse = z.object({
  model: z.string(),
  predictions: z
    .array(z.union([Regression, ClassPrediction, TensorRow]))
    .describe(
      'Regression: a number per row (an array when the model has several outputs); classification: {label, probabilities}; tensor models: nested arrays of the output row shape',
    ),
  out_of_range: z
    .array(z.array(z.string()))
    .optional()
    .describe(
      'Per row, the features far outside the training range (card feature_stats; OUT_OF_RANGE); present when a row has any',
    ),
});

export const UncertaintyResponse = z.object({
  model: z.string(),
  samples: z.union([z.number().int(), z.literal('auto')]),
  samples_used: z
    .number()
    .int()
    .optional()
    .describe(
      'samples "auto": the most samples any row used (each row stops on its own; rows that used fewer say so in their own `samples_used`)',
    ),
  tolerance: z.number().optional().describe('samples "auto": the tolerance used'),
  max_samples: z.number().int().optional().describe('samples "auto": the most samples it could have drawn'),
  interval: z.number().optional(),
  interval_method: z.enum(INTERVAL_METHODS).optional().describe('Regression: how the intervals were made'),
  seed: z
    .number()
    .int()
    .describe(
      "The seed of the dropout masks (the request's, or a fresh one): resend it to reproduce the answer exactly",
    ),
  predictions: z.array(z.union([predictionSchema('regression'), predictionSchema('classification')])),
});

export const Live = z.object({ status: z.literal('ok') });
export const Ready = z.object({ status: z.string(), models: z.array(z.string()) });
