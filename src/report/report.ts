/**
 * The model report: one self-contained HTML page (inline CSS and inline SVG; no script, no external
 * resource) for a person deciding whether to trust a model. Pure: data in, HTML string out.
 *
 * Every figure is a `<figure id="fig-…" data-plot="…">`; tests and the server rely on those ids.
 */
import {
  CALIBRATION_CURVE_LEVELS,
  type CoveragePoint,
  calibrationCurve,
  conformalCalibrationCurve,
  pitValues,
  reliabilityBins,
} from '../uncertainty/calibration.js';
import { totalStd } from '../uncertainty/moments.js';
import { quantile } from '../uncertainty/quantiles.js';
import { normalQuantile } from '../util/special-functions.js';
import { confusionMatrix, histogram, topClass } from './plot-data.js';
import {
  categoryChart,
  COLORS,
  decimateIndices,
  escapeXml as esc,
  extent,
  formatNumber,
  heatmap,
  Plot,
  positiveExtent,
  type LegendItem,
} from './svg.js';

/** Rows of one regression split (validation or test). All arrays have one entry per row, target units. */
export interface RegressionRows {
  /** Observed target per row. */
  y: ArrayLike<number>;
  /** Monte Carlo mean prediction per row (dropout on, T passes). */
  mean: ArrayLike<number>;
  /** Epistemic std per row: the spread of the T Monte Carlo passes. */
  epistemicStd: ArrayLike<number>;
  /**
   * Aleatoric (noise) std: one number for a homoscedastic model (the card's aleatoric_std), or one per
   * row for a heteroscedastic one. The served predictive std is √(epistemicStd² + aleatoricStd²).
   */
  aleatoricStd: number | ArrayLike<number>;
}

/** Rows of one classification split (validation or test). */
export interface ClassificationRows {
  /** True class index per row, 0 … classes−1 (indices into ReportInput.classification.labels). */
  labels: ArrayLike<number>;
  /** Monte Carlo-averaged class probabilities, row-major rows × classes: before temperature scaling, or the only ones. */
  probs: ArrayLike<number>;
  /** The same after temperature scaling (rows × classes); give it with classification.temperature. */
  probsCalibrated?: ArrayLike<number>;
  /**
   * Mutual information per row between the prediction and the weights, in nats:
   * H[mean_t p_t] − mean_t H[p_t] (of the served probabilities, i.e. after temperature scaling when any).
   */
  mutualInformation: ArrayLike<number>;
}

/** One point of the training history. Losses are in the trainer's own units (see lossName). */
export interface EpochPoint {
  epoch: number;
  /** Mean minibatch loss of the epoch, dropout on. */
  trainLoss: number;
  /** Validation loss after the epoch, dropout off. */
  valLoss: number;
}

/** Hyper-parameter search results (`--tune`). */
export interface TuningInput {
  /** What the score is, e.g. "validation NLL". */
  metric: string;
  /** True (the default) when a lower score is better. */
  lowerIsBetter?: boolean;
  /** Each candidate's settings (name → value) and validation score. */
  candidates: { settings: Record<string, string | number | boolean | readonly number[]>; score: number }[];
  /** Index into candidates of the chosen one. */
  chosen: number;
}

/**
 * The model card fields the report reads (model.json as written by the trainer is assignable to it).
 * Every other top-level field of the object is listed under "other card fields".
 */
export interface ReportCard {
  name?: string;
  task?: string;
  target?: string;
  features?: readonly string[];
  labels?: readonly string[];
  /** split name (validation, test, …) → metric name → value; rendered as a table. */
  metrics?: object;
  /** Training settings (name → value); rendered as a table. */
  training?: object;
  created_at?: string;
}

export interface ReportInput {
  /** Model name (models/NAME). */
  name: string;
  task: 'regression' | 'classification';
  /** The command that made the model, e.g. "npm run train -- --data data/wine.csv …". */
  command: string;
  /** The model card (model.json) as an object. */
  card: ReportCard;
  /** Per-epoch losses, in epoch order. */
  history: readonly EpochPoint[];
  /** Epoch with the lowest validation loss (marked on the loss curve); 0 or absent = not marked. */
  bestEpoch?: number;
  /** Name of the loss for the axis title, e.g. "MSE, standardised target" (default: card.training.loss, else "loss"). */
  lossName?: string;
  /** Present after a hyper-parameter search. */
  tuning?: TuningInput;
  /** Required when task is regression. */
  regression?: {
    validation: RegressionRows;
    /** Held-out test rows, when the model was trained with --test-data/--test-split. */
    test?: RegressionRows;
    /**
     * The card's split-conformal scores |y − mean| / std (sorted ascending): the calibration curve then
     * also shows the conformal intervals mean ± q·std.
     */
    conformalScores?: ArrayLike<number>;
    /** The model's default interval (card.interval_method); the glance reports its 90% coverage. Default gaussian. */
    intervalMethod?: 'conformal' | 'gaussian';
  };
  /** Required when task is classification. */
  classification?: {
    /** Class names, index = class index. */
    labels: readonly string[];
    /** The fitted softmax temperature, when temperature scaling was applied (rows then carry probsCalibrated). */
    temperature?: number;
    validation: ClassificationRows;
    test?: ClassificationRows;
  };
  /** Shown in the footer (the renderer never reads the clock, so the same input gives the same page). */
  generatedAt?: string;
}

/**
 * The page needs nothing but its own inline <style> (and inline SVG, which is markup): no script, no
 * fetch of any kind. The page carries this policy in a <meta> so a saved copy keeps it; serve it as a
 * header too (frame-ancestors only works there).
 */
export const REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

const METRIC_HELP: Record<string, string> = {
  rmse: 'root mean squared error of the prediction (target units)',
  rmse_mc: 'the same for the Monte Carlo mean',
  r2: 'coefficient of determination',
  crps: 'continuous ranked probability score of the predictive distribution (target units; lower is better)',
  nll: 'mean negative log-likelihood of the predictive distribution (nats; lower is better)',
  coverage_90: 'fraction of targets inside the Gaussian 90% interval, mean ± 1.645σ',
  coverage_90_epistemic_only: 'the same with the Monte Carlo spread alone (no noise term)',
  coverage_50: 'fraction inside the Gaussian 50% interval',
  coverage_80: 'fraction inside the Gaussian 80% interval',
  coverage_95: 'fraction inside the Gaussian 95% interval',
  interval_width_90: 'mean width of the Gaussian 90% interval (target units)',
  conformal_coverage_50: 'fraction inside the split-conformal 50% interval',
  conformal_coverage_80: 'fraction inside the split-conformal 80% interval',
  conformal_coverage_90: 'fraction inside the split-conformal 90% interval',
  conformal_coverage_95: 'fraction inside the split-conformal 95% interval',
  conformal_interval_width_90: 'mean width of the split-conformal 90% interval (target units)',
  mean_std: 'mean predictive std (target units)',
  accuracy: 'accuracy of the dropout-off prediction',
  mc_accuracy: 'accuracy of the Monte Carlo-averaged prediction',
  ece: 'expected calibration error, 15 bins (lower is better)',
  brier: 'multi-class Brier score (lower is better)',
  rows: 'rows evaluated',
};

const STYLE = `
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#222;background:#f6f6f4}
main{max-width:1180px;margin:0 auto;padding:20px 16px 32px}
header h1{margin:0;font-size:1.7em;letter-spacing:-.01em}
.sub{color:#555;margin:2px 0 0}
section{margin-top:26px}
h2{font-size:1.2em;margin:0 0 10px;padding-bottom:4px;border-bottom:1px solid #d8d8d4}
.glance{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,250px),1fr));gap:10px;margin:0;padding:0;list-style:none}
.glance li{background:#fff;border:1px solid #e0e0dc;border-radius:6px;padding:8px 12px}
.glance b{display:block;font-size:1.35em;font-variant-numeric:tabular-nums}
.glance span{color:#555;font-size:.88em}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,460px),1fr));gap:14px}
figure{margin:0;min-width:0;background:#fff;border:1px solid #e0e0dc;border-radius:6px;padding:10px 12px 12px;break-inside:avoid;page-break-inside:avoid}
figure h3{margin:0 0 4px;font-size:1em}
figure svg{display:block;width:100%;height:auto;max-width:720px;margin:0 auto;font-family:inherit}
figcaption{font-size:.86em;color:#4a4a4a;margin-top:6px}
.wide{grid-column:1/-1}
#training .grid{align-items:start}
.tables{column-width:440px;column-gap:14px}
.tables>.scroll{break-inside:avoid;page-break-inside:avoid;display:inline-block;width:100%;margin:0 0 14px;vertical-align:top}
.scroll{overflow-x:auto;background:#fff;border:1px solid #e0e0dc;border-radius:6px}
.scroll.inner{border:0;border-radius:0;margin-top:8px}
table{border-collapse:collapse;width:100%;font-size:.9em;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:8px 10px 2px}
th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{font-weight:600;color:#333}
td.num,th.num{text-align:right;white-space:nowrap}
td.help{color:#666;font-size:.92em;min-width:9em}
td.val{overflow-wrap:anywhere}
#tuning-table td,#tuning-table th{white-space:nowrap;padding:4px 7px}
tr.chosen td{font-weight:700;background:#fff4e5}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}
pre{white-space:pre-wrap;word-break:break-word;background:#fff;border:1px solid #e0e0dc;border-radius:6px;padding:10px 12px;margin:0}
.chips{display:flex;flex-wrap:wrap;gap:4px;padding:8px 10px;margin:0;list-style:none}
.chips li{background:#eef3f8;border-radius:4px;padding:1px 6px;font-size:.85em}
.note{color:#666;font-size:.86em}
.cap{font-weight:600;padding:8px 10px 0;margin:0;font-size:.9em}
footer{margin-top:28px;color:#777;font-size:.8em}
@media (max-width:520px){main{padding:12px 8px 24px}body{font-size:14px}figure{padding:8px}}
@media print{
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 body{background:#fff;font-size:10pt}
 main{max-width:none;padding:0}
 .grid{grid-template-columns:minmax(0,1fr) minmax(0,1fr)}
 #tuning-table td,#tuning-table th{white-space:normal}
 .scroll{overflow:visible}
 th,td{padding:3px 5px}
 figure,.glance li,.scroll,pre{border-color:#ccc}
 h2,h3{break-after:avoid;page-break-after:avoid}
 tr{break-inside:avoid}
}
`;

interface Figure {
  id: string;
  kind: string;
  title: string;
  svg: string;
  caption: string;
  /** HTML after the caption (e.g. a table). */
  extra?: string;
  wide?: boolean;
}

function figureHtml(f: Figure): string {
  return (
    `<figure id="fig-${esc(f.id)}" data-plot="${esc(f.kind)}"${f.wide ? ' class="wide"' : ''}>` +
    `<h3>${esc(f.title)}</h3>${f.svg}<figcaption>${f.caption}</figcaption>${f.extra ?? ''}</figure>`
  );
}

/** First letter upper-case (captions start with a split name). */
const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
const pct = (v: number, digits = 1): string => (Number.isFinite(v) ? `${(v * 100).toFixed(digits)}%` : '—');
const num = (v: number, digits = 4): string => formatNumber(v, digits);

function finiteCount(a: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i]!)) n++;
  return n;
}

function record(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function formatValue(v: unknown): string {
  if (typeof v === 'number') return num(v, 6);
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (v === null || v === undefined) return '—';
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return Array.from(v as ArrayLike<unknown>, formatValue).join(', ');
  return JSON.stringify(v);
}

/** A setting in a chart label: numbers to 3 significant digits. */
function shortValue(v: unknown): string {
  if (typeof v === 'number') return num(v, 3);
  if (Array.isArray(v)) return v.map(shortValue).join(',');
  return formatValue(v);
}

/** Flatten nested plain objects to dotted keys (arrays stay values). */
function flatten(obj: Record<string, unknown>, prefix = ''): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const [k, v] of Object.entries(obj)) {
    const r = record(v);
    if (r && !ArrayBuffer.isView(v)) out.push(...flatten(r, `${prefix}${k}.`));
    else out.push([`${prefix}${k}`, v]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Training figures

function lossFigure(input: ReportInput): Figure {
  const h = input.history;
  const epochs = h.map((p) => p.epoch);
  const train = h.map((p) => p.trainLoss);
  const val = h.map((p) => p.valLoss);
  const [plo, phi] = positiveExtent(train, val);
  const allPositive = [...train, ...val].every((v) => !Number.isFinite(v) || v > 0);
  const log = allPositive && finiteCount(train) + finiteCount(val) > 0 && phi / plo > 8;
  const lossName =
    input.lossName ??
    (typeof record(input.card.training)?.loss === 'string' ? (record(input.card.training)!.loss as string) : undefined);
  const best = input.bestEpoch && input.bestEpoch > 0 ? h.find((p) => p.epoch === input.bestEpoch) : undefined;
  const hasVal = finiteCount(val) > 0;
  const plot = new Plot({
    id: 'plot-loss',
    title: 'Training and validation loss per epoch',
    x: { label: 'epoch', domain: extent(epochs.length > 0 ? epochs : [0, 1]) },
    y: {
      label: `loss${lossName ? ` (${lossName})` : ''}${log ? ', log scale' : ''}`,
      domain: log ? [plo, phi] : extent(train, val),
      log,
    },
    legend: [
      { label: 'train (dropout on)', color: COLORS.blue },
      ...(hasVal ? [{ label: 'validation', color: COLORS.orange }] : []),
      ...(best ? [{ label: 'best epoch', color: COLORS.vermillion, kind: 'point' as const }] : []),
    ],
  });
  if (best) plot.vline(best.epoch, { color: COLORS.vermillion, width: 1, dash: '3 3', opacity: 0.7 });
  plot.line(epochs, train, { color: COLORS.blue });
  plot.line(epochs, val, { color: COLORS.orange });
  if (best) plot.marker(best.epoch, best.valLoss, `best epoch ${best.epoch}`);
  const last = h[h.length - 1];
  return {
    id: 'loss',
    kind: 'loss',
    title: 'Loss curves',
    svg: plot.toString(),
    caption: !last
      ? 'No loss curve: the model is the winning tuning candidate itself, served without a refit (--calibration winner); the validation scores of every candidate are below.'
      : hasVal
        ? `Train loss is the mean minibatch loss with dropout active, so it usually sits above the validation loss (dropout off). ` +
          (best
            ? `Lowest validation loss ${esc(num(best.valLoss))} at epoch ${best.epoch}`
            : 'No best epoch recorded') +
          (last ? `; ${last.epoch} epochs run, final validation loss ${esc(num(last.valLoss))}.` : '.')
        : `Train loss is the mean minibatch loss with dropout active. No validation loss: the final fit used every training row` +
          (input.tuning ? ' for the training length the tuning candidates chose on validation rows (below).' : '.') +
          (last ? ` ${last.epoch} epochs run, final train loss ${esc(num(last.trainLoss))}.` : ''),
  };
}

function tuningFigure(t: TuningInput): Figure {
  const lower = t.lowerIsBetter !== false;
  const order = t.candidates
    .map((_, i) => i)
    .sort((a, b) => {
      const sa = t.candidates[a]!.score;
      const sb = t.candidates[b]!.score;
      if (!Number.isFinite(sa)) return Number.isFinite(sb) ? 1 : a - b;
      if (!Number.isFinite(sb)) return -1;
      return (lower ? sa - sb : sb - sa) || a - b;
    });
  const keys = [...new Set(t.candidates.flatMap((c) => Object.keys(c.settings)))];
  const varying = keys.filter((k) => new Set(t.candidates.map((c) => formatValue(c.settings[k]))).size > 1);
  const labelKeys = varying.length > 0 ? varying : keys;
  const shown = order.slice(0, 30);
  const chart = categoryChart({
    id: 'plot-tuning',
    title: `Validation score of each tuning candidate (${t.metric})`,
    mode: 'dot',
    // values only (the caption names them), 3 digits: the labels must fit beside the chart
    categories: shown.map(
      (i) => `#${i + 1}  ${labelKeys.map((k) => shortValue(t.candidates[i]!.settings[k])).join(' · ')}`,
    ),
    values: shown.map((i) => t.candidates[i]!.score),
    highlight: shown.indexOf(t.chosen),
    valueLabel: `${t.metric} (${lower ? 'lower' : 'higher'} is better)`,
    valueText: (v) => num(v, 4),
  });
  // the table lists the settings that differ; the shared ones are said once below it
  const constant = keys.filter((k) => !varying.includes(k));
  const head = `<tr><th>#</th>${labelKeys.map((k) => `<th>${esc(k)}</th>`).join('')}<th class="num">score</th></tr>`;
  const rows = order
    .map((i) => {
      const c = t.candidates[i]!;
      return `<tr${i === t.chosen ? ' class="chosen"' : ''}><td>${i + 1}${i === t.chosen ? ' (chosen)' : ''}</td>${labelKeys.map((k) => `<td>${esc(typeof c.settings[k] === 'number' ? num(c.settings[k], 4) : formatValue(c.settings[k]))}</td>`).join('')}<td class="num">${esc(num(c.score, 4))}</td></tr>`;
    })
    .join('');
  const chosen = t.candidates[t.chosen];
  return {
    id: 'tuning',
    kind: 'tuning',
    title: 'Tuning candidates',
    svg: chart,
    caption:
      `${t.candidates.length} candidates, best first${t.candidates.length > shown.length ? ` (the best ${shown.length} drawn; all in the table below)` : ''}; ` +
      (chosen ? `the chosen one (#${t.chosen + 1}, score ${esc(num(chosen.score))}) is highlighted.` : 'none chosen.') +
      ` Labels: candidate #, then ${esc(labelKeys.join(' · '))}${varying.length > 0 && varying.length < keys.length ? ' (the settings that differ between candidates)' : ''}. Score: ${esc(t.metric)}.`,
    extra:
      `<div class="scroll inner"><table id="tuning-table"><thead>${head}</thead><tbody>${rows}</tbody></table></div>` +
      (varying.length > 0 && constant.length > 0
        ? `<p class="note">Same for every candidate: ${esc(constant.map((k) => `${k} ${formatValue(t.candidates[0]!.settings[k])}`).join(' · '))}.</p>`
        : ''),
  };
}

// ---------------------------------------------------------------------------------------------------
// Regression figures

interface RegSplit {
  name: string;
  rows: RegressionRows;
  std: Float64Array;
  aleatoric: Float64Array;
}

function regSplit(name: string, rows: RegressionRows): RegSplit {
  const n = rows.y.length;
  const aleatoric = Float64Array.from({ length: n }, (_, i) =>
    typeof rows.aleatoricStd === 'number' ? rows.aleatoricStd : rows.aleatoricStd[i]!,
  );
  return { name, rows, std: totalStd(rows.epistemicStd, aleatoric), aleatoric };
}

/** The colours of the validation and test splits in the calibration plot. */
const SPLIT_COLORS = [COLORS.blue, COLORS.vermillion];

function calibrationFigure(splits: RegSplit[], primary: RegSplit, conformal?: ArrayLike<number>): Figure {
  const plot = calibrationPlot(splits, primary, conformal !== undefined);
  const levels = [...CALIBRATION_CURVE_LEVELS];
  const epi = calibrationCurve(primary.rows.y, primary.rows.mean, primary.rows.epistemicStd, levels);
  plot.line(
    levels,
    epi.map((c) => c.observed),
    { color: COLORS.grey, dash: '5 3', width: 1.5 },
  );
  const summary = splits.map((s, i) => {
    drawCoverage(plot, levels, calibrationCurve(s.rows.y, s.rows.mean, s.std, levels), SPLIT_COLORS[i]!, false);
    return `${esc(s.name)} ${pct(calibrationCurve(s.rows.y, s.rows.mean, s.std, [0.9])[0]!.observed)}`;
  });
  const conformalSummary = conformal
    ? splits.map((s, i) => {
        const curve = conformalCalibrationCurve(s.rows.y, s.rows.mean, s.std, conformal, levels);
        drawCoverage(plot, levels, curve, SPLIT_COLORS[i]!, true);
        return `${esc(s.name)} ${pct(conformalCalibrationCurve(s.rows.y, s.rows.mean, s.std, conformal, [0.9])[0]!.observed)}`;
      })
    : [];
  const epi90 = calibrationCurve(primary.rows.y, primary.rows.mean, primary.rows.epistemicStd, [0.9])[0]!.observed;
  return {
    id: 'calibration',
    kind: 'calibration',
    title: 'Interval calibration',
    svg: plot.toString(),
    caption:
      `Share of rows inside the central interval mean ± z·σ at levels 5%…99%, σ the total predictive std. ` +
      `On the diagonal the intervals mean what they say; below it they are too narrow, above too wide. ` +
      `At 90%: ${summary.join(', ')} (MC dropout spread alone: ${pct(epi90)}).` +
      (conformal
        ? ` Dashed, open dots: the split-conformal intervals mean ± q·σ, q the level's quantile of the ${conformal.length} calibration scores |y − mean|/σ (∞ where they are too few for the level); at 90%: ${conformalSummary.join(', ')}.`
        : ''),
  };
}

/** The calibration plot's frame: legend, axes, the 95% chance band of a calibrated model, the diagonal. */
function calibrationPlot(splits: RegSplit[], primary: RegSplit, conformal: boolean): Plot {
  const legend: LegendItem[] = splits.map((s, i) => ({
    label: `${s.name} (${s.rows.y.length} rows)`,
    color: SPLIT_COLORS[i]!,
  }));
  if (conformal)
    legend.push(
      ...splits.map((s, i) => ({
        label: `${s.name}, conformal interval`,
        color: SPLIT_COLORS[i]!,
        kind: 'dash' as const,
      })),
    );
  legend.push({ label: `${primary.name}, MC spread only`, color: COLORS.grey, kind: 'dash' });
  legend.push({ label: `chance range, ${primary.rows.y.length} rows (95%)`, color: '#d9d9d9', kind: 'box' });
  const percent = (v: number): string => `${Math.round(v * 100)}%`;
  const plot = new Plot({
    id: 'plot-calibration',
    title: 'Observed against nominal coverage of central intervals',
    x: { label: 'nominal coverage of the central interval', domain: [0, 1], tickFormat: percent },
    y: { label: 'observed coverage', domain: [0, 1], tickFormat: percent },
    legend,
  });
  // Where a perfectly calibrated model's observed coverage falls 95% of the time with this many rows.
  const n = Math.max(1, finiteCount(primary.rows.y));
  const grid = Array.from({ length: 101 }, (_, i) => i / 100);
  const half = grid.map((p) => 1.96 * Math.sqrt((p * (1 - p)) / n));
  plot.band(
    grid,
    grid.map((p, i) => Math.max(0, p - half[i]!)),
    grid.map((p, i) => Math.min(1, p + half[i]!)),
    { color: '#999', opacity: 0.22 },
  );
  plot.diagonal();
  return plot;
}

/** One coverage curve: a solid line with dots (gaussian) or a dashed line with open dots (conformal). */
function drawCoverage(plot: Plot, levels: number[], curve: CoveragePoint[], color: string, conformal: boolean): void {
  const observed = curve.map((c) => c.observed);
  plot.line(levels, observed, conformal ? { color, dash: '6 3', width: 1.6 } : { color });
  plot.points(levels, observed, conformal ? { color, r: 2.4, opacity: 1, fill: false } : { color, r: 2.6, opacity: 1 });
}

function pitFigure(s: RegSplit): Figure {
  const pit = pitValues(s.rows.y, s.rows.mean, s.std);
  const n = pit.length;
  const bins = Math.min(20, Math.max(5, Math.round(Math.sqrt(n))));
  const h = histogram(pit, bins, 0, 1);
  const expected = n / bins;
  const half = 1.96 * Math.sqrt(n * (1 / bins) * (1 - 1 / bins));
  const plot = new Plot({
    id: 'plot-pit',
    title: 'Histogram of probability integral transform values',
    x: { label: 'PIT = Φ((y − mean) / σ)', domain: [0, 1] },
    y: { label: `rows (${s.name})`, domain: [0, Math.max(...h.counts, expected + half)] },
    legend: [
      { label: `${s.name} rows`, color: COLORS.blue, kind: 'box' },
      { label: 'uniform ± 95%', color: COLORS.grey, kind: 'dash' },
    ],
  });
  plot.rect(0, Math.max(0, expected - half), 1, expected + half, { color: '#999', opacity: 0.18 });
  plot.bars(h.edges, h.counts, { color: COLORS.blue, opacity: 0.8 });
  plot.hline(expected, { color: COLORS.grey, dash: '5 3', width: 1.4 });
  const tails = pit.filter((v) => v < 0.05 || v > 0.95).length / Math.max(1, n);
  return {
    id: 'pit',
    kind: 'pit',
    title: 'PIT histogram',
    svg: plot.toString(),
    caption:
      `Where each ${esc(s.name)} target falls in its predictive distribution, ${bins} bins. Flat = calibrated; ` +
      `U-shaped = overconfident (intervals too narrow); hump-shaped = underconfident; sloped = biased. ` +
      `${pct(tails)} of rows fall in the outer 5% tails (10% expected).`,
  };
}

function errorStdFigure(s: RegSplit): Figure {
  const { y, mean } = s.rows;
  const err = Float64Array.from({ length: y.length }, (_, i) => Math.abs(y[i]! - mean[i]!));
  const [slo, shi] = extent(s.std);
  const [, ehi] = extent(err);
  // RMS error over equal-count groups of rows ordered by σ: follows y = σ when σ is right on average.
  const idx = Array.from({ length: y.length }, (_, i) => i)
    .filter((i) => Number.isFinite(err[i]!) && Number.isFinite(s.std[i]!))
    .sort((a, b) => s.std[a]! - s.std[b]!);
  const groups = Math.min(8, Math.max(1, Math.floor(idx.length / 10)));
  const gx: number[] = [];
  const gy: number[] = [];
  for (let g = 0; g < groups; g++) {
    const part = idx.slice(Math.floor((g * idx.length) / groups), Math.floor(((g + 1) * idx.length) / groups));
    if (part.length === 0) continue;
    gx.push(part.reduce((a, i) => a + s.std[i]!, 0) / part.length);
    gy.push(Math.sqrt(part.reduce((a, i) => a + err[i]! ** 2, 0) / part.length));
  }
  const z90 = normalQuantile(0.95);
  const plot = new Plot({
    id: 'plot-error-std',
    title: 'Absolute error against predicted std',
    x: { label: 'predicted std σ (target units)', domain: [slo, shi] },
    y: { label: '|y − mean| (target units)', domain: [0, Math.max(ehi, z90 * shi)] },
    legend: [
      { label: `${s.name} rows`, color: COLORS.blue, kind: 'point' },
      { label: 'RMS error by σ group', color: COLORS.vermillion },
      { label: 'σ', color: COLORS.grey, kind: 'dash' },
      { label: '1.645σ (90% below)', color: COLORS.ink, kind: 'dash' },
    ],
  });
  const xs = [plot.x.lo, plot.x.hi];
  plot.line(xs, xs, { color: COLORS.grey, dash: '5 3', width: 1.3 });
  plot.line(
    xs,
    xs.map((v) => z90 * v),
    { color: COLORS.ink, dash: '2 3', width: 1.3 },
  );
  const drawn = plot.points(s.std, err, { color: COLORS.blue, r: 2.6, opacity: 0.5 });
  if (gx.length > 1) plot.line(gx, gy, { color: COLORS.vermillion, width: 2 });
  plot.points(gx, gy, { color: COLORS.vermillion, r: 3.2, opacity: 1 });
  const below = idx.filter((i) => err[i]! <= z90 * s.std[i]!).length / Math.max(1, idx.length);
  return {
    id: 'error-std',
    kind: 'error-vs-std',
    title: '|Error| against predicted std',
    svg: plot.toString(),
    caption:
      `Each dot is a ${esc(s.name)} row${drawn < y.length ? ` (${drawn} of ${y.length} drawn)` : ''}. Useful uncertainty grows with the error: ` +
      `the RMS error of rows grouped by σ should follow the σ line, and ${pct(below)} of rows lie below 1.645σ (90% expected).`,
  };
}

function predictedActualFigure(s: RegSplit, target: string): Figure {
  const { y, mean } = s.rows;
  const z = normalQuantile(0.95);
  const lo = Float64Array.from(mean, (m, i) => m - z * s.std[i]!);
  const hi = Float64Array.from(mean, (m, i) => m + z * s.std[i]!);
  const [a, b] = extent(y, mean);
  const covered = (i: number): boolean => y[i]! >= lo[i]! && y[i]! <= hi[i]!;
  const usable = Array.from({ length: y.length }, (_, i) => i).filter(
    (i) => Number.isFinite(y[i]!) && Number.isFinite(mean[i]!) && Number.isFinite(s.std[i]!),
  );
  const inside = usable.filter(covered);
  const pick = (ids: number[], arr: ArrayLike<number>): number[] => ids.map((i) => arr[i]!);
  const plot = new Plot({
    id: 'plot-predicted-actual',
    title: 'Predicted mean with 90% interval against the actual value',
    x: { label: `actual ${target}`, domain: [a, b] },
    y: { label: `predicted ${target} (MC mean)`, domain: [a, b] },
    legend: [
      { label: 'interval contains y', color: COLORS.blue, kind: 'point' },
      { label: 'interval misses y', color: COLORS.vermillion, kind: 'point' },
      { label: 'y = x', color: COLORS.grey, kind: 'dash' },
    ],
  });
  plot.diagonal();
  // One stride over all rows (not per group), so the share of misses drawn is the share in the data.
  const drawn = decimateIndices(usable.length, 400).map((j) => usable[j]!);
  const ins = drawn.filter(covered);
  const outs = drawn.filter((i) => !covered(i));
  plot.errorBars(pick(ins, y), pick(ins, lo), pick(ins, hi), { color: COLORS.blue, opacity: 0.35, cap: Infinity });
  plot.errorBars(pick(outs, y), pick(outs, lo), pick(outs, hi), {
    color: COLORS.vermillion,
    opacity: 0.6,
    cap: Infinity,
  });
  plot.points(pick(ins, y), pick(ins, mean), { color: COLORS.blue, r: 2.6, opacity: 0.85, cap: Infinity });
  plot.points(pick(outs, y), pick(outs, mean), { color: COLORS.vermillion, r: 2.8, opacity: 0.95, cap: Infinity });
  const shown = ins.length + outs.length;
  return {
    id: 'predicted-actual',
    kind: 'predicted-vs-actual',
    title: 'Predicted against actual, with 90% intervals',
    svg: plot.toString(),
    caption:
      `${esc(cap(s.name))} rows${shown < y.length ? ` (${shown} of ${y.length} drawn)` : ''}: Monte Carlo mean with its 90% interval (mean ± 1.645σ) against the actual value. ` +
      `${pct(inside.length / Math.max(1, usable.length))} of intervals contain the actual value. Intervals cut at the edge extend beyond the plot.`,
  };
}

function stdSplitFigure(s: RegSplit, heteroscedastic: boolean): Figure {
  const n = s.rows.y.length;
  const order = Array.from({ length: n }, (_, i) => i)
    .filter((i) => Number.isFinite(s.std[i]!))
    .sort((a, b) => s.std[a]! - s.std[b]!);
  const rank = order.map((_, j) => (order.length > 1 ? (j / (order.length - 1)) * 100 : 50));
  const epi = order.map((i) => s.rows.epistemicStd[i]!);
  const ale = order.map((i) => s.aleatoric[i]!);
  const tot = order.map((i) => s.std[i]!);
  const zeros = order.map(() => 0);
  const plot = new Plot({
    id: 'plot-std-split',
    title: 'Epistemic and aleatoric std per row',
    x: { label: `${s.name} rows, ordered by total σ (percentile)`, domain: [0, 100] },
    y: { label: 'std (target units)', domain: [0, Math.max(...extent(tot, epi, ale))] },
    legend: [
      { label: 'total σ', color: COLORS.ink },
      { label: 'epistemic (MC dropout)', color: COLORS.blue, kind: 'box' },
      { label: heteroscedastic ? 'aleatoric (per row)' : 'aleatoric (constant)', color: COLORS.orange },
    ],
  });
  plot.band(rank, zeros, epi, { color: COLORS.blue, opacity: 0.35 });
  plot.line(rank, epi, { color: COLORS.blue, width: 1.2 });
  plot.line(rank, ale, { color: COLORS.orange, width: 2 });
  plot.line(rank, tot, { color: COLORS.ink, width: 2 });
  let epiVar = 0;
  let totVar = 0;
  for (const i of order) {
    epiVar += s.rows.epistemicStd[i]! ** 2;
    totVar += s.std[i]! ** 2;
  }
  return {
    id: 'std-split',
    kind: 'std-split',
    title: 'Epistemic and aleatoric uncertainty',
    svg: plot.toString(),
    caption:
      `Per ${esc(s.name)} row: the model's own uncertainty (epistemic, spread of the dropout passes) and the noise in the data ` +
      `(aleatoric${heteroscedastic ? ', predicted per row' : ', one constant'}); σ² = epistemic² + aleatoric². ` +
      `Epistemic variance is ${pct(totVar > 0 ? epiVar / totVar : NaN)} of the total: ${totVar > 0 && epiVar / totVar < 0.2 ? 'most of the uncertainty is noise more data would not remove' : 'more data or a better model could reduce a good share of it'}.`,
  };
}

// ---------------------------------------------------------------------------------------------------
// Classification figures

interface ClsSplit {
  name: string;
  rows: ClassificationRows;
  k: number;
}

/** Left end of a confidence axis: the lowest filled 15-bin edge over the given probability sets, rounded down to 0.1. */
function confidenceFloor(s: ClsSplit, sets: ArrayLike<number>[]): number {
  let lo = 1;
  for (const p of sets)
    for (const b of reliabilityBins(p, s.rows.labels, s.k, 15).bins) if (b.count > 0) lo = Math.min(lo, b.lo);
  return Math.min(0.9, Math.floor(lo * 10 + 1e-9) / 10);
}

function reliabilityFigure(
  s: ClsSplit,
  probs: ArrayLike<number>,
  which: 'before' | 'after' | 'only',
  xLo: number,
  temperature?: number,
): Figure {
  const r = reliabilityBins(probs, s.rows.labels, s.k, 15);
  const filled = r.bins.filter((b) => b.count > 0);
  const plot = new Plot({
    id: `plot-reliability-${which}`,
    title: `Reliability diagram${which === 'only' ? '' : ` ${which} temperature scaling`}`,
    x: { label: `confidence (top-class probability)${xLo > 0 ? `, from ${xLo}` : ''}`, domain: [xLo, 1] },
    // the same floor on both axes keeps the diagonal at 45°; lower when a bin's accuracy is below it
    y: {
      label: `accuracy (${s.name})`,
      domain: [Math.min(xLo, ...filled.map((b) => Math.floor(b.accuracy * 10 + 1e-9) / 10)), 1],
    },
    legend: [
      { label: 'accuracy per bin', color: COLORS.blue, kind: 'box' },
      { label: 'gap to confidence', color: COLORS.vermillion, kind: 'box' },
      { label: 'perfect calibration', color: COLORS.grey, kind: 'dash' },
    ],
  });
  const hatch = plot.hatch(COLORS.vermillion);
  for (const b of filled) {
    plot.bars([b.lo, b.hi], [b.accuracy], { color: COLORS.blue, opacity: 0.85, gap: 1 });
    plot.rect(b.lo, b.accuracy, b.hi, b.confidence, { color: hatch, opacity: 1, stroke: COLORS.vermillion });
  }
  plot.diagonal();
  for (const b of filled)
    plot.text((b.lo + b.hi) / 2, Math.max(b.accuracy, b.confidence), String(b.count), {
      anchor: 'middle',
      dy: -5,
      size: 10,
      color: '#333',
    });
  const label =
    which === 'only'
      ? 'Reliability diagram'
      : which === 'before'
        ? 'Reliability before temperature scaling'
        : `Reliability after temperature scaling (T = ${num(temperature ?? NaN)})`;
  return {
    id: `reliability-${which}`,
    kind: `reliability-${which}`,
    title: label,
    svg: plot.toString(),
    caption:
      `${esc(cap(s.name))} rows in 15 equal-width confidence bins (row counts above the bars). A bar reaching the diagonal means a stated 90% is right 90% of the time; ` +
      `below it the model is overconfident, above it underconfident. ECE ${esc(num(r.ece, 3))} over ${r.rows} rows.`,
  };
}

function confidenceFigure(s: ClsSplit, probs: ArrayLike<number>): Figure {
  const t = topClass(probs, s.rows.labels, s.k);
  const lo = confidenceFloor(s, [probs]);
  const bins = 15;
  const right = histogram(
    t.confidence.filter((_, i) => t.correct[i]),
    bins,
    lo,
    1,
  );
  const wrong = histogram(
    t.confidence.filter((_, i) => !t.correct[i]),
    bins,
    lo,
    1,
  );
  const stacked = right.counts.map((c, i) => c + wrong.counts[i]!);
  const meanConf = t.confidence.reduce((a, b) => a + b, 0) / Math.max(1, t.confidence.length);
  const acc = t.correct.filter(Boolean).length / Math.max(1, t.correct.length);
  const plot = new Plot({
    id: 'plot-confidence',
    title: 'Histogram of top-class confidence, correct and wrong predictions',
    x: { label: 'confidence (top-class probability)', domain: [lo, 1] },
    y: { label: `rows (${s.name})`, domain: [0, Math.max(1, ...stacked)] },
    legend: [
      { label: `correct (${t.correct.filter(Boolean).length})`, color: COLORS.blue, kind: 'box' },
      { label: `wrong (${t.correct.filter((c) => !c).length})`, color: COLORS.vermillion, kind: 'box' },
      { label: `mean confidence ${pct(meanConf)}`, color: COLORS.ink, kind: 'dash' },
      { label: `accuracy ${pct(acc)}`, color: COLORS.green, kind: 'dash' },
    ],
  });
  plot.bars(right.edges, right.counts, { color: COLORS.blue, opacity: 0.8 });
  plot.bars(wrong.edges, stacked, { color: COLORS.vermillion, opacity: 0.9, bottoms: right.counts });
  plot.vline(meanConf, { color: COLORS.ink, dash: '5 3', width: 1.4 });
  plot.vline(acc, { color: COLORS.green, dash: '2 3', width: 1.8 });
  return {
    id: 'confidence',
    kind: 'confidence',
    title: 'Confidence histogram',
    svg: plot.toString(),
    caption:
      `How sure the served probabilities are on ${esc(s.name)} rows, stacked by whether the top class is right. ` +
      `Mean confidence above accuracy means overconfidence. Wrong predictions should sit at low confidence.`,
  };
}

function confusionFigure(s: ClsSplit, probs: ArrayLike<number>, labels: readonly string[]): Figure {
  const m = confusionMatrix(probs, s.rows.labels, s.k);
  const rowSums = m.map((r) => r.reduce((a, b) => a + b, 0));
  const total = rowSums.reduce((a, b) => a + b, 0);
  const correct = m.reduce((a, r, i) => a + r[i]!, 0);
  const svg = heatmap({
    id: 'plot-confusion',
    title: 'Confusion matrix: true class by predicted class',
    rowLabels: [...labels],
    colLabels: [...labels],
    values: m,
    shade: m.map((r, i) => r.map((v) => (rowSums[i]! > 0 ? v / rowSums[i]! : 0))),
    cellText: (v) => String(v),
    xLabel: 'predicted class',
    yLabel: 'true class',
  });
  const recall = labels.map((l, i) => `${esc(l)} ${pct(rowSums[i]! > 0 ? m[i]![i]! / rowSums[i]! : NaN, 0)}`);
  return {
    id: 'confusion',
    kind: 'confusion-matrix',
    title: 'Confusion matrix',
    svg,
    caption:
      `${esc(cap(s.name))} rows by true class (rows) and predicted class (columns); shading is the share of the true class. ` +
      `${correct} of ${total} right (${pct(total > 0 ? correct / total : NaN)}). Recall per class: ${recall.join(', ')}.`,
  };
}

function miFigure(s: ClsSplit, probs: ArrayLike<number>): Figure {
  const t = topClass(probs, s.rows.labels, s.k);
  const mi = t.index.map((i) => s.rows.mutualInformation[i]!);
  const groups = [
    { name: 'correct', values: mi.filter((_, j) => t.correct[j]), color: COLORS.blue },
    { name: 'wrong', values: mi.filter((_, j) => !t.correct[j]), color: COLORS.vermillion },
  ];
  const [plo, phi] = positiveExtent(mi);
  const log = mi.every((v) => !Number.isFinite(v) || v > 0) && finiteCount(mi) > 0 && phi / plo > 50;
  const plot = new Plot({
    id: 'plot-mutual-information',
    title: 'Mutual information of correct and wrong predictions',
    height: 240,
    x: {
      label: `mutual information (nats)${log ? ', log scale' : ''}`,
      domain: log ? [plo, phi] : [0, Math.max(1e-9, extent(mi)[1])],
      log,
    },
    y: {
      label: '',
      domain: [-0.6, 1.6],
      nice: false,
      tickValues: [0, 1],
      tickFormat: (v) => `${groups[v]?.name ?? ''} (${groups[v]?.values.length ?? 0})`,
      grid: false,
    },
  });
  groups.forEach((g, gi) => {
    if (g.values.length === 0) return;
    const q1 = quantile(g.values, 0.25);
    const q2 = quantile(g.values, 0.5);
    const q3 = quantile(g.values, 0.75);
    plot.rect(q1, gi - 0.32, q3, gi + 0.32, { color: g.color, opacity: 0.12, stroke: g.color });
    plot.segment(q2, gi - 0.32, q2, gi + 0.32, { color: g.color, width: 2.4 });
    // deterministic jitter (golden-ratio sequence) so dots with the same value do not hide each other
    const jitter = g.values.map((_, j) => gi + ((((j + 1) * 0.6180339887) % 1) - 0.5) * 0.5);
    plot.points(g.values, jitter, { color: g.color, r: 2.8, opacity: 0.7, cap: 600 });
  });
  const med = groups.map((g) => quantile(g.values, 0.5));
  return {
    id: 'mutual-information',
    kind: 'mutual-information',
    title: 'Mutual information: correct vs wrong',
    svg: plot.toString(),
    caption:
      `Epistemic uncertainty of each ${esc(s.name)} prediction (how much the dropout passes disagree); box = quartiles, bar = median. ` +
      `Useful uncertainty is higher on wrong predictions: median ${esc(num(med[0]!, 3))} (correct) vs ${esc(num(med[1]!, 3))} (wrong).`,
  };
}

// ---------------------------------------------------------------------------------------------------
// Tables

function metricsTable(card: ReportCard): string {
  const metrics = record(card.metrics);
  if (!metrics) return '';
  const splits = Object.entries(metrics).filter(
    (e): e is [string, Record<string, unknown>] => record(e[1]) !== undefined,
  );
  if (splits.length === 0) return '';
  const names = [...new Set(splits.flatMap(([, m]) => Object.keys(m)))];
  const head = `<tr><th>metric</th>${splits.map(([s]) => `<th class="num">${esc(s)}</th>`).join('')}<th>meaning</th></tr>`;
  const body = names
    .map(
      (k) =>
        `<tr><td><code>${esc(k).replace(/_/g, '_<wbr/>')}</code></td>${splits.map(([, m]) => `<td class="num">${esc(typeof m[k] === 'number' ? num(m[k], 4) : formatValue(m[k]))}</td>`).join('')}<td class="help">${esc(METRIC_HELP[k] ?? '')}</td></tr>`,
    )
    .join('');
  return `<div class="scroll"><table id="metrics-table"><caption>Metrics</caption><thead>${head}</thead><tbody>${body}</tbody></table></div>`;
}

function keyValueTable(id: string, caption: string, entries: [string, unknown][]): string {
  if (entries.length === 0) return '';
  const body = entries
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td class="val">${esc(formatValue(v))}</td></tr>`)
    .join('');
  return `<div class="scroll"><table id="${esc(id)}"><caption>${esc(caption)}</caption><tbody>${body}</tbody></table></div>`;
}

// ---------------------------------------------------------------------------------------------------

function glanceItem(value: string, text: string): string {
  return `<li><b>${esc(value)}</b><span>${esc(text)}</span></li>`;
}

/** Render the report page for one model. Throws when the input lacks the rows its task needs. */
export function renderReport(input: ReportInput): string {
  const figures: Figure[] = [lossFigure(input)];
  if (input.tuning && input.tuning.candidates.length > 0) figures.push(tuningFigure(input.tuning));
  const { uncertainty, glance } = UNCERTAINTY_SECTIONS[input.task](input);
  return pageHtml(input, glance, figures, uncertainty);
}

/** The uncertainty figures and the "at a glance" items of a report. */
interface UncertaintySection {
  uncertainty: Figure[];
  glance: string[];
}

/** Per task: its uncertainty figures and glance items. */
const UNCERTAINTY_SECTIONS: Record<ReportInput['task'], (input: ReportInput) => UncertaintySection> = {
  regression: regressionSection,
  classification: classificationSection,
};

function regressionSection(input: ReportInput): UncertaintySection {
  const card = input.card;
  const r = input.regression;
  if (!r) throw new Error('renderReport: a regression report needs input.regression');
  const splits = [regSplit('validation', r.validation), ...(r.test ? [regSplit('test', r.test)] : [])];
  const primary = splits[splits.length - 1]!;
  const heteroscedastic = typeof primary.rows.aleatoricStd !== 'number';
  const target = card.target ?? 'target';
  const conformal = r.conformalScores && r.conformalScores.length > 0 ? r.conformalScores : undefined;
  const served = r.intervalMethod === 'conformal' && conformal ? conformal : undefined;
  const uncertainty = [
    calibrationFigure(splits, primary, conformal),
    pitFigure(primary),
    errorStdFigure(primary),
    predictedActualFigure(primary, target),
    stdSplitFigure(primary, heteroscedastic),
  ];
  const glance: string[] = [];
  for (const s of splits) {
    const at90 = served
      ? conformalCalibrationCurve(s.rows.y, s.rows.mean, s.std, served, [0.9])
      : calibrationCurve(s.rows.y, s.rows.mean, s.std, [0.9]);
    glance.push(
      glanceItem(
        pct(at90[0]!.observed),
        `of ${s.name} targets inside their ${served ? 'conformal ' : ''}90% interval (${s.rows.y.length} rows)`,
      ),
    );
  }
  const mean = (a: ArrayLike<number>): number =>
    Array.from(a)
      .filter(Number.isFinite)
      .reduce((x, y, _, arr) => x + y / arr.length, 0);
  glance.push(glanceItem(num(mean(primary.std), 4), `mean predictive σ on ${primary.name} rows (${target} units)`));
  const rm = record(record(card.metrics)?.[primary.name]);
  if (rm && typeof rm.rmse === 'number')
    glance.push(
      glanceItem(num(rm.rmse, 4), `${primary.name} RMSE${typeof rm.r2 === 'number' ? `, R² ${num(rm.r2, 3)}` : ''}`),
    );
  return { uncertainty, glance };
}

function classificationSection(input: ReportInput): UncertaintySection {
  const c = input.classification;
  if (!c) throw new Error('renderReport: a classification report needs input.classification');
  const k = c.labels.length;
  const splitRows = c.test ?? c.validation;
  const s: ClsSplit = { name: c.test ? 'test' : 'validation', rows: splitRows, k };
  const after = splitRows.probsCalibrated;
  const served = after ?? splitRows.probs;
  const uncertainty: Figure[] = [];
  if (after) {
    const xLo = confidenceFloor(s, [splitRows.probs, after]);
    uncertainty.push(
      reliabilityFigure(s, splitRows.probs, 'before', xLo),
      reliabilityFigure(s, after, 'after', xLo, c.temperature),
    );
  } else {
    uncertainty.push(reliabilityFigure(s, splitRows.probs, 'only', confidenceFloor(s, [splitRows.probs])));
  }
  uncertainty.push(confidenceFigure(s, served), confusionFigure(s, served, c.labels), miFigure(s, served));
  const t = topClass(served, splitRows.labels, k);
  const glance = [
    glanceItem(
      pct(t.correct.filter(Boolean).length / Math.max(1, t.correct.length)),
      `accuracy on ${s.name} rows (${t.correct.length})`,
    ),
  ];
  const eceBefore = reliabilityBins(splitRows.probs, splitRows.labels, k).ece;
  if (after) {
    glance.push(
      glanceItem(
        `${num(eceBefore, 3)} → ${num(reliabilityBins(after, splitRows.labels, k).ece, 3)}`,
        `${s.name} ECE before → after temperature scaling (T = ${num(c.temperature ?? NaN, 3)})`,
      ),
    );
  } else {
    glance.push(glanceItem(num(eceBefore, 3), `${s.name} expected calibration error (15 bins)`));
  }
  const conf = t.confidence.reduce((a, b) => a + b, 0) / Math.max(1, t.confidence.length);
  glance.push(glanceItem(pct(conf), `mean top-class confidence on ${s.name} rows`));
  return { uncertainty, glance };
}

/** The page's subtitle: task, target, features, classes, date. */
function subtitle(input: ReportInput): string {
  const card = input.card;
  const features = card.features ?? [];
  return [
    input.task,
    card.target ? `target column: ${card.target}` : '',
    features.length > 0 ? `${features.length} feature${features.length === 1 ? '' : 's'}` : '',
    input.task === 'classification' && input.classification ? `${input.classification.labels.length} classes` : '',
    card.created_at ? `trained ${card.created_at}` : '',
  ]
    .filter(Boolean)
    .join(' · ');
}

/** The model card section: metrics, training settings, other fields, the features. */
function cardSectionHtml(card: ReportInput['card']): string {
  const training = record(card.training);
  const features = card.features ?? [];
  const skip = new Set(['features', 'labels', 'metrics', 'training', 'name', 'format']);
  const other = flatten(
    Object.fromEntries(Object.entries(card as Record<string, unknown>).filter(([k]) => !skip.has(k))),
  );
  return (
    `<section id="card"><h2>Model card</h2><div class="tables">${metricsTable(card)}${keyValueTable('settings-table', 'Training settings', training ? flatten(training) : [])}${keyValueTable('other-table', 'Other card fields', other)}</div>` +
    (features.length > 0
      ? `<div class="scroll" id="features"><p class="cap">Features (input order)</p><ol class="chips">${features.map((f) => `<li>${esc(f)}</li>`).join('')}</ol></div>`
      : '') +
    `</section>`
  );
}

function pageHtml(input: ReportInput, glance: string[], figures: Figure[], uncertainty: Figure[]): string {
  const noTest = input.task === 'regression' ? !input.regression?.test : !input.classification?.test;
  return (
    `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/><meta http-equiv="Content-Security-Policy" content="${esc(REPORT_CSP)}"/>` +
    `<meta name="viewport" content="width=device-width, initial-scale=1"/>` +
    `<meta name="color-scheme" content="light"/><title>${esc(input.name)} — model report</title><style>${STYLE}</style></head><body><main>` +
    `<header><h1>${esc(input.name)}</h1><p class="sub">${esc(subtitle(input))}</p></header>` +
    `<section id="glance"><h2>At a glance</h2><ul class="glance">${glance.join('')}</ul>` +
    (noTest
      ? `<p class="note">No test rows: the plots use the validation rows, which also chose the epoch and calibrated the uncertainty, so they flatter the model.</p>`
      : '') +
    `</section>` +
    `<section id="training"><h2>Training</h2><div class="grid">${figures.map(figureHtml).join('')}</div></section>` +
    `<section id="uncertainty"><h2>Uncertainty</h2><div class="grid">${uncertainty.map(figureHtml).join('')}</div></section>` +
    cardSectionHtml(input.card) +
    `<section id="command"><h2>Command</h2><pre><code>${esc(input.command)}</code></pre></section>` +
    `<footer>dropout-serve model report${input.generatedAt ? ` · generated ${esc(input.generatedAt)}` : ''}. Uncertainty from Monte Carlo dropout (Gal &amp; Ghahramani 2016).</footer>` +
    `</main></body></html>\n`
  );
}
