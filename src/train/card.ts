/**
 * The model card (model.json) and the ONNX metadata derived from it. The card is the contract with the
 * server: field names are those of the API (name, task, features, target, labels, dropout,
 * aleatoric_std, metrics, ...).
 */
import { basename } from 'node:path';
import type { ClassificationMetrics, RegressionMetrics } from './card-metrics.js';
import { ensembleRecord } from './ensemble.js';
import { LOG_VARIANCE_NAME } from './export-onnx.js';
import { type TrainOptions, trainingRecord } from './options.js';
import { MIN_RATIO } from './refit-correction.js';
import type { AppliedRefitCorrection, TargetGrid, TemperatureMetrics, TrainedModel } from './train.js';
import type { TuneResult } from './tune.js';

export interface DataRef {
  file: string;
  sha256: string;
  rows: number;
}

export interface ModelCard {
  format: 'dropout-serve/1';
  name: string;
  task: 'regression' | 'classification';
  features: string[];
  target: string;
  labels?: string[];
  /** Graph input and the output the server reads. */
  input: string;
  output: string;
  /** What `output` holds: regression values, or class logits (softmax is applied by the consumer). */
  output_kind: 'regression' | 'logits';
  /** Rate of each Dropout node, in graph order (the input dropout first when there is one). */
  dropout: number[];
  /** Dropout rate on the standardised inputs (0: no input Dropout node). */
  input_dropout: number;
  /** An ensemble (--members): its members and how the served answer is formed (ensemble.ts). */
  ensemble?: ReturnType<typeof ensembleRecord>;
  architecture: {
    inputs: number;
    hidden: number[];
    outputs: number;
    activation: string;
    input_dropout: number;
    hidden_dropout: number[];
  };
  /** Regression noise model. */
  noise?: 'homoscedastic' | 'heteroscedastic';
  /**
   * Graph outputs by meaning (regression): `mean` always; `log_variance` for heteroscedastic models,
   * the natural log of the aleatoric variance in target units² per row and MC sample. (Not `outputs`:
   * GET /v1/models adds its own `outputs`, the graph's output tensors, to the card.)
   */
  output_roles?: { mean: string; log_variance?: string };
  /**
   * Calibrated observation noise σ in target units (regression), added to the served variance.
   * Homoscedastic: the noise, std = √(MC variance + σ²). Heteroscedastic: a floor on top of the predicted
   * variance, std = √(MC variance of the mean + MC mean of exp(log_variance) + σ²) (0 when the predicted
   * variances fit the calibration rows).
   */
  aleatoric_std?: number;
  /**
   * Regression: the served epistemic std is epistemic_scale × the MC std of the mean, so the total std is
   * √(epistemic_scale²·MC variance [+ MC mean of exp(log_variance)] + aleatoric_std²); fitted jointly with
   * aleatoric_std by maximum likelihood on the calibration rows.
   */
  epistemic_scale?: number;
  calibration?: {
    method: string;
    mc_samples: number;
    rows: number;
    source: string;
    /** A target on a coarse grid: its step, the noise before rounding, and how σ was chosen (grid-calibration.ts). */
    grid?: { step: number; latent_std: number; method: string };
  };
  /** Default interval of the uncertainty route (regression): `conformal` or `gaussian`. */
  interval_method?: 'conformal' | 'gaussian';
  /**
   * Split-conformal calibration (regression): the sorted scores |y − mean| / std of the calibration rows,
   * std the served total std. The interval at level a is mean ± q·std, q the ⌈(n + 1)·a⌉-th smallest
   * score (+∞ when that rank exceeds n).
   */
  conformal?: { score: string; rows: number; source: string; scores: number[] };
  /** Classification: every MC sample's logits are divided by this before its softmax (Guo et al. 2017). */
  temperature?: number;
  /** Per-feature statistics of the training rows (raw units, `features` order). */
  feature_stats: { rows: number; min: number[]; max: number[]; mean: number[]; std: number[] };
  training: Record<string, unknown>;
  /** Per-epoch losses (at most HISTORY_POINTS epochs, evenly spaced, the last always kept). */
  history: { epoch: number[]; train_loss: number[]; val_loss: (number | null)[] };
  tuning?: TuneResult['card'];
  metrics: {
    validation: RegressionMetrics | ClassificationMetrics;
    test?: RegressionMetrics | ClassificationMetrics;
    /**
     * Classification: NLL and ECE of the MC-averaged probabilities on the calibration rows, before and
     * after temperature scaling, and the reliability diagram after it.
     */
    temperature_scaling?: TemperatureMetrics;
  };
  data: DataRef;
  test_data?: DataRef;
  onnx: { opset: number; training_mode_input: string; note: string };
  created_at?: string;
}

/** Most epochs kept in the card's history. */
export const HISTORY_POINTS = 500;

export interface CardExtras {
  tuning?: TuneResult;
  /** The default interval method (regression). */
  intervalMethod: 'conformal' | 'gaussian';
}

/** The card's record of a target on a coarse grid. */
const gridRecord = (g: TargetGrid) => ({
  step: g.step,
  latent_std: g.latentStd,
  method:
    'the target is recorded on a grid of this step: (epistemic_scale, latent_std) by the likelihood of the grid cell (y − mean = uniform rounding ± step/2 + N(0, epistemic_scale²·MC variance + latent_std²)), and aleatoric_std chosen so the Gaussian 90% interval covers 90% of the calibration rows under that model',
});

/** The regression fields: noise model, output roles, calibration, the interval and the conformal scores. */
function regressionFields(m: TrainedModel, opts: TrainOptions, intervalMethod: CardExtras['intervalMethod']) {
  const hetero = m.noise === 'heteroscedastic';
  return {
    noise: m.noise,
    output_roles: hetero ? { mean: 'prediction', log_variance: LOG_VARIANCE_NAME } : { mean: 'prediction' },
    aleatoric_std: m.aleatoricStd,
    epistemic_scale: m.epistemicScale,
    calibration: {
      method: hetero
        ? 'heteroscedastic (Kendall & Gal 2017): std = √(epistemic_scale²·MC variance of the mean + MC mean of exp(log_variance) + aleatoric_std²); epistemic_scale and aleatoric_std (a floor) jointly by maximum likelihood on calibration rows'
        : 'Gaussian maximum likelihood of (epistemic_scale, σ) on calibration rows: y ~ N(MC mean, epistemic_scale²·MC variance + σ²) (Gal & Ghahramani 2016, eq. 8, with the MC spread rescaled)',
      mc_samples: opts.mcSamples,
      rows: m.calibrationRows,
      source: m.calibrationSource,
      ...(m.targetGrid ? { grid: gridRecord(m.targetGrid) } : {}),
      ...(m.refitCorrection ? { refit_correction: refitCorrectionRecord(m.refitCorrection) } : {}),
    },
    interval_method: intervalMethod,
    conformal: {
      score: '|y − mean| / std, std the served total std',
      rows: m.conformalScores.length,
      source: m.calibrationSource,
      scores: Array.from(m.conformalScores),
    },
  } satisfies Partial<ModelCard>;
}

/** The card's record of the refit's correction of a cross-fitted calibration (refit-correction.ts). */
function refitCorrectionRecord(c: AppliedRefitCorrection) {
  return {
    method: `Burman (1989): the out-of-fold residuals scaled by √ratio, ratio = (cv_mse + refit_mse − folds_mse) / cv_mse in [${MIN_RATIO}, 1]: how much less the refit on all rows errs than the fold networks, both measured on every training row (dropout off); not applied to a target on a coarse grid`,
    cv_mse: c.cvMse,
    refit_mse: c.refitMse,
    folds_mse: c.foldsMse,
    ratio: c.ratio,
    residual_scale: c.residualScale,
  };
}

/** The classification fields: the temperature and its calibration. */
function classificationFields(m: TrainedModel, opts: TrainOptions) {
  return {
    temperature: m.temperature,
    calibration: {
      method:
        "temperature scaling of every MC sample's logits, fitted by NLL of the MC-averaged probabilities (Guo et al. 2017)",
      mc_samples: opts.mcSamples,
      rows: m.calibrationRows,
      source: m.calibrationSource,
      ...(m.targetGrid ? { grid: gridRecord(m.targetGrid) } : {}),
    },
  } satisfies Partial<ModelCard>;
}

/** The training loss, as the card names it. */
function lossName(m: TrainedModel, opts: TrainOptions): string {
  if (m.task !== 'regression') return 'softmax cross-entropy';
  if (m.noise !== 'heteroscedastic') return 'MSE on the standardised target';
  return opts.nllBeta > 0
    ? `β-NLL with a predicted log-variance, β = ${opts.nllBeta} (Seitzer et al. 2022), standardised target`
    : 'Gaussian NLL with a predicted log-variance, standardised target (Kendall & Gal 2017)';
}

/** The `training` record: the options (options.ts), then what the run did. */
function trainingOf(m: TrainedModel, opts: TrainOptions, testSource: string, tuned: boolean): ModelCard['training'] {
  return {
    ...trainingRecord(opts, m),
    epochs_run: m.epochsRun,
    best_epoch: m.bestEpoch,
    train_rows: m.trainRows,
    val_rows: m.valRows,
    test_source: testSource,
    engine: m.engine,
    optimizer: 'Adam (PyTorch semantics, L2 weight decay)',
    loss: lossName(m, opts),
    tuned,
  };
}

/** Per-epoch losses, at most HISTORY_POINTS epochs evenly spaced, the last always kept. */
function historyOf(m: TrainedModel): ModelCard['history'] {
  const step = Math.max(1, Math.ceil(m.history.length / HISTORY_POINTS));
  const kept = m.history.filter((_, i) => i % step === 0 || i === m.history.length - 1);
  const finite = (v: number): number | null => (Number.isFinite(v) ? v : null);
  return {
    epoch: kept.map((h) => h.epoch),
    train_loss: kept.map((h) => h.trainLoss),
    val_loss: kept.map((h) => finite(h.valLoss)),
  };
}

/** The rate of every Dropout node in graph order (export-onnx.ts): input, each member's layers, the selectors. */
function graphDropout(m: TrainedModel): number[] {
  const pIn = m.spec.inputDropout ?? 0;
  const members = 1 + (m.ensemble?.length ?? 0);
  const layers = Array.from({ length: members }, () => m.spec.dropout).flat();
  const selectors = members > 1 ? ensembleRecord(members).selector_dropout : [];
  return [...(pIn > 0 ? [pIn] : []), ...layers, ...selectors];
}

/**
 * The card (model.json, and the ONNX metadata) of a trained model: what it is, how the server serves its
 * uncertainty, how it was trained and measured, and on which data.
 */
export function buildCard(
  name: string,
  m: TrainedModel,
  opts: TrainOptions,
  data: DataRef,
  test: DataRef | undefined,
  testSource: string,
  opset: number,
  extras: CardExtras = { intervalMethod: 'conformal' },
): ModelCard {
  const reg = m.task === 'regression';
  const pIn = m.spec.inputDropout ?? 0;
  return {
    format: 'dropout-serve/1',
    name,
    task: m.task,
    features: m.features,
    target: m.target,
    ...(m.task === 'classification' ? { labels: m.labels } : {}),
    input: 'input',
    output: reg ? 'prediction' : 'logits',
    output_kind: reg ? 'regression' : 'logits',
    dropout: graphDropout(m),
    input_dropout: pIn,
    architecture: {
      inputs: m.spec.inputs,
      hidden: m.spec.hidden,
      outputs: m.spec.outputs,
      activation: m.spec.activation,
      input_dropout: pIn,
      hidden_dropout: m.spec.dropout,
    },
    ...(m.ensemble?.length ? { ensemble: ensembleRecord(m.ensemble.length + 1) } : {}),
    ...(reg ? regressionFields(m, opts, extras.intervalMethod) : classificationFields(m, opts)),
    feature_stats: { rows: m.trainRows, ...m.featureStats },
    training: trainingOf(m, opts, testSource, extras.tuning !== undefined),
    history: historyOf(m),
    ...(extras.tuning ? { tuning: extras.tuning.card } : {}),
    metrics: { ...m.metrics, ...(m.temperatureMetrics ? { temperature_scaling: m.temperatureMetrics } : {}) },
    data: { ...data, file: basename(data.file) },
    ...(test ? { test_data: { ...test, file: basename(test.file) } } : {}),
    onnx: {
      opset,
      training_mode_input: 'training_mode',
      note: "Feed training_mode=false for predictions (dropout off) and true for Monte Carlo dropout. Disable onnxruntime's EliminateDropout optimizer or it deletes the Dropout nodes.",
    },
  };
}
