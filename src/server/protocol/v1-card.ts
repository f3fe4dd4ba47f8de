/**
 * What /v1 shows of a model, in three sizes (issue 21: a listing is for people and dashboards, the
 * calibration data belongs in the card file):
 * - `encodeModelSummary`: one short record per model for GET /v1/models;
 * - `encodeModel`: the card without raw arrays for GET /v1/models/{name} (LIGHT_FIELDS: the conformal
 *   scores as a count and the quantiles they give, the training history as its length and last values,
 *   feature statistics only when short);
 * - `encodeModelCard`: the whole card plus what the server read from the graph, for tools
 *   (GET /v1/models/{name}/card).
 * Pure: no Fastify here. None of them is on the inference path.
 */
import type { Model, ModelDescription } from '../../model/model.js';
import { DEFAULT_UNCERTAINTY, type IntervalMethod, describeUncertainty } from '../../model/uncertainty.js';
import { conformalQuantile } from '../../uncertainty/intervals.js';

/** The levels whose split-conformal quantile the card view shows (the multipliers intervals use). */
export const CONFORMAL_SUMMARY_LEVELS = [0.5, 0.8, 0.9, 0.95] as const;

/** Feature statistics stay in the card view up to this many features (five numbers per feature). */
export const FEATURE_STATS_MAX_FEATURES = 16;

/** A model's card as /v1 shows it: the description plus the version answered and the served versions. */
export type ModelCardView = ModelDescription & { version: string; versions: string[] };

export interface ModelSummary {
  name: string;
  version: string;
  versions: string[];
  task: ModelDescription['task'];
  inputs: ModelDescription['inputs'];
  outputs: ModelDescription['outputs'];
  mc_available: boolean;
  interval_methods?: IntervalMethod[];
}

/** One short record of GET /v1/models: what a client needs to call the model, no card data. */
export function encodeModelSummary(m: Model, versions: string[]): ModelSummary {
  const d = m.describe();
  const u = describeUncertainty(m.task, m.uncertainty ?? DEFAULT_UNCERTAINTY);
  return {
    name: m.name,
    version: m.version,
    versions,
    task: m.task,
    inputs: d.inputs,
    outputs: d.outputs,
    mc_available: m.mcAvailable,
    ...(u.interval_methods ? { interval_methods: u.interval_methods as IntervalMethod[] } : {}),
  };
}

/**
 * The whole card of GET /v1/models/{name}/card: the card file's fields passed through, plus inputs,
 * outputs and MC availability, its version and the served versions, and the uncertainty settings it
 * serves with (noise, epistemic_scale, interval_method, or temperature).
 */
export function encodeModelCard(m: Model, versions: string[]): ModelCardView {
  return {
    ...m.describe(),
    ...describeUncertainty(m.task, m.uncertainty ?? DEFAULT_UNCERTAINTY),
    version: m.version,
    versions,
  };
}

type Record_ = Record<string, unknown>;
const isRecord = (v: unknown): v is Record_ => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNumbers = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number');

/** Conformal scores (ascending) → `scores_summary`: their count, range and the quantile each summary level gives. */
function summariseConformal(v: unknown): unknown {
  if (!isRecord(v) || !isNumbers(v.scores)) return v;
  const { scores, ...rest } = v;
  const quantiles: Record<string, number | null> = {};
  for (const level of CONFORMAL_SUMMARY_LEVELS) {
    const q = conformalQuantile(scores, level);
    quantiles[String(level)] = Number.isFinite(q) ? q : null;
  }
  const summary = { count: scores.length, min: scores[0] ?? null, max: scores.at(-1) ?? null, quantiles };
  return { ...rest, scores_summary: summary };
}

/** A training curve: a number per point (null where there was none, e.g. no validation rows). */
const isCurve = (v: unknown): v is (number | null)[] =>
  Array.isArray(v) && v.every((x) => typeof x === 'number' || x === null);

/** Per-epoch curves → each curve's number of points and its last value (null when it has none). */
function summariseHistory(v: unknown): unknown {
  if (!isRecord(v)) return v;
  const out: Record_ = {};
  for (const [key, curve] of Object.entries(v)) {
    out[key] = isCurve(curve) ? { points: curve.length, last: curve.findLast((x) => x !== null) ?? null } : curve;
  }
  return out;
}

/** Feature statistics kept when the model has few features; else only the row count (the card has them). */
function shortFeatureStats(v: unknown): unknown {
  if (!isRecord(v) || !Array.isArray(v.min) || v.min.length <= FEATURE_STATS_MAX_FEATURES) return v;
  return {
    rows: v.rows,
    features: v.min.length,
    omitted: 'more features than the card view shows; GET /v1/models/{name}/card has them',
  };
}

/** The card fields GET /v1/models/{name} shortens, and how (every other field passes through). */
const LIGHT_FIELDS: Record<string, (v: unknown) => unknown> = {
  conformal: summariseConformal,
  history: summariseHistory,
  feature_stats: shortFeatureStats,
};

/** The card view of GET /v1/models/{name}: the whole card with LIGHT_FIELDS shortened. */
export function encodeModel(m: Model, versions: string[]): ModelCardView {
  const card = encodeModelCard(m, versions);
  for (const [field, lighten] of Object.entries(LIGHT_FIELDS)) {
    if (card[field] !== undefined) card[field] = lighten(card[field]);
  }
  return card;
}
