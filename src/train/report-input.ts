/**
 * The model report's input from a trained model (src/report renders it): the training history and the
 * tuning candidates from the card, and per-row Monte Carlo predictions on the validation and test rows,
 * recomputed with the masks the trainer's metrics used (same seeds, same samples), so the page shows the
 * very numbers behind card.metrics. Pure: no clock, no files (cli.ts writes the page).
 */
import {
  renderReport,
  type ClassificationRows,
  type RegressionRows,
  type ReportCard,
  type ReportInput,
  type TuningInput,
} from '../report/report.js';
import { stream } from '../util/rng.js';
import { entropy } from '../uncertainty/probabilities.js';
import type { ModelCard } from './card.js';
import type { Dataset } from './data.js';
import { averageProbabilities } from './temperature.js';
import { mcLogits, mcPredictive, standardise, type TrainedModel, type TrainOptions } from './train.js';

export interface ReportSources {
  /** The command that made the model (shown as given). */
  command: string;
  /** The card as written to model.json (created_at is left out of the page: same input, same bytes). */
  card: ModelCard;
  /** The exported model (test rows). */
  model: TrainedModel;
  /**
   * The validation rows and the network that measured card.metrics.validation on them: the model itself
   * after a plain run, the winning candidate after --tune (the refit trained on those rows).
   */
  validation: { model: TrainedModel; data: Dataset };
  test?: Dataset;
  /** The run's options: the seed and Monte Carlo samples of the metrics. */
  opts: Pick<TrainOptions, 'seed' | 'mcSamples'>;
}

/** `npm run train -- ARGS` with each argument quoted for a POSIX shell where it needs to be. */
export function trainCommand(argv: readonly string[]): string {
  const quote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return ['npm run train --', ...argv.map(quote)].join(' ');
}

/** Seeds of the Monte Carlo masks behind card.metrics (train() and tune() pass these to evaluate()). */
export function metricSeeds(seed: number): { validation: number; test: number } {
  return { validation: stream(seed, 'validationMetrics'), test: stream(seed, 'testMetrics') };
}

/**
 * The factor on the Monte Carlo std that the server serves as epistemic std: the fitted model's
 * `epistemicScale` when it has one, else the card's `epistemic_scale`, else 1.
 */
export function epistemicScale(m: TrainedModel, card: ModelCard): number {
  const fromModel = (m as { epistemicScale?: unknown }).epistemicScale;
  if (typeof fromModel === 'number' && Number.isFinite(fromModel)) return fromModel;
  const fromCard = (card as { epistemic_scale?: unknown }).epistemic_scale;
  return typeof fromCard === 'number' && Number.isFinite(fromCard) ? fromCard : 1;
}

/** Served regression statistics of each row: MC mean, epistemic std (scaled as served), aleatoric std. */
export function regressionRows(
  m: TrainedModel,
  card: ModelCard,
  ds: Dataset,
  samples: number,
  seed: number,
): RegressionRows {
  const xs = standardise(ds.x, ds.n, ds.f, m.xMean, m.xStd);
  const p = mcPredictive(m, xs, ds.n, samples, seed);
  const scale = epistemicScale(m, card);
  const s2 = m.aleatoricStd ** 2;
  return {
    y: Float64Array.from(ds.y),
    mean: p.mean,
    epistemicStd: p.epistemicVar.map((v) => scale * Math.sqrt(v)),
    // heteroscedastic: the MC mean of the predicted variance plus the calibrated floor σ², per row
    aleatoricStd: p.aleatoricVar ? p.aleatoricVar.map((a) => Math.sqrt(a + s2)) : m.aleatoricStd,
  };
}

/**
 * Served classification statistics of each row: MC-averaged probabilities with every pass's logits
 * divided by 1 (before) and by the model's temperature (served), and the mutual information
 * H(p̄) − (1/T) Σ H(p_t) of the served ones (src/uncertainty/accumulators.ts computes it the same way).
 */
export function classificationRows(m: TrainedModel, ds: Dataset, samples: number, seed: number): ClassificationRows {
  const K = m.spec.outputs;
  const xs = standardise(ds.x, ds.n, ds.f, m.xMean, m.xStd);
  const logits = mcLogits(m, xs, ds.n, samples, seed);
  const T = m.temperature;
  const before = averageProbabilities(logits, samples, ds.n, K, 1);
  const served = T === 1 ? before : averageProbabilities(logits, samples, ds.n, K, T);
  const meanH = new Float64Array(ds.n);
  for (let s = 0; s < samples; s++) {
    // one pass at a time through the same function as the served probabilities
    const pass = averageProbabilities(logits.subarray(s * ds.n * K, (s + 1) * ds.n * K), 1, ds.n, K, T);
    for (let r = 0; r < ds.n; r++) meanH[r]! += entropy(pass, r * K, K) / samples;
  }
  const mi = meanH.map((h, r) => Math.max(0, entropy(served, r * K, K) - h));
  return {
    labels: Float64Array.from(ds.y),
    probs: before,
    ...(T === 1 ? {} : { probsCalibrated: served }),
    mutualInformation: mi,
  };
}

/** The tuning section: every candidate × training length and its validation score (higher is better). */
export function tuningInput(card: ModelCard): TuningInput | undefined {
  const t = card.tuning;
  if (!t || t.candidates.length === 0) return undefined;
  return {
    metric: card.task === 'regression' ? 'validation log-likelihood (nats)' : 'minus validation NLL (nats)',
    lowerIsBetter: false,
    candidates: t.candidates.map(({ score, ...settings }) => ({ settings, score: score ?? NaN })),
    chosen: t.chosen,
  };
}

/**
 * The card as the page lists it: without what the page draws (history, tuning candidates, conformal
 * scores, the calibration-rows reliability diagram) or what does not describe the model (created_at,
 * the tuning thread count).
 */
export function reportCard(card: ModelCard): ReportCard {
  const { created_at: _created, history: _history, tuning, conformal, metrics, ...rest } = card;
  const out: Record<string, unknown> = { ...rest };
  if (conformal) {
    const { scores: _scores, ...c } = conformal;
    out.conformal = c;
  }
  if (tuning) {
    const { candidates, chosen, threads: _threads, ...t } = tuning;
    out.tuning = { ...t, candidates: candidates.length, chosen: chosen + 1 };
  }
  const { temperature_scaling: ts, ...splits } = metrics;
  out.metrics = splits;
  if (ts) {
    const { reliability: _reliability, ...numbers } = ts;
    out.temperature_scaling = numbers;
  }
  return out as ReportCard;
}

/** The report input of a trained model. */
export function buildReportInput(s: ReportSources): ReportInput {
  const { card, model } = s;
  const seeds = metricSeeds(s.opts.seed);
  const samples = s.opts.mcSamples;
  const h = card.history;
  const history = h.epoch.map((epoch, i) => ({ epoch, trainLoss: h.train_loss[i]!, valLoss: h.val_loss[i] ?? NaN }));
  // a refit on all rows (--tune) has no validation loss, hence no best epoch to mark
  const hasVal = history.some((p) => Number.isFinite(p.valLoss));
  const tuning = tuningInput(card);
  const base = {
    name: card.name,
    command: s.command,
    card: reportCard(card),
    history,
    ...(hasVal ? { bestEpoch: model.bestEpoch } : {}),
    ...(tuning ? { tuning } : {}),
  };
  if (model.task === 'regression') {
    return {
      ...base,
      task: 'regression',
      regression: {
        validation: regressionRows(s.validation.model, card, s.validation.data, samples, seeds.validation),
        ...(s.test ? { test: regressionRows(model, card, s.test, samples, seeds.test) } : {}),
        ...(card.conformal && card.interval_method
          ? { intervalMethod: card.interval_method, conformalScores: card.conformal.scores }
          : {}),
      },
    };
  }
  return {
    ...base,
    task: 'classification',
    classification: {
      labels: model.labels,
      ...(model.temperature !== 1 ? { temperature: model.temperature } : {}),
      validation: classificationRows(s.validation.model, s.validation.data, samples, seeds.validation),
      ...(s.test ? { test: classificationRows(model, s.test, samples, seeds.test) } : {}),
    },
  };
}

/** The report page of a trained model (deterministic: the same model and rows give the same bytes). */
export function modelReport(s: ReportSources): string {
  return renderReport(buildReportInput(s));
}
