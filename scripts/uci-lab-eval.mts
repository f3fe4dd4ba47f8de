/**
 * Offline comparison of selection and calibration rules on the UCI lab cache (scripts/uci-lab.mts).
 * Development only: figures for decisions; the reported figures come from `npm run bench -- uci`.
 *
 *   npx tsx scripts/uci-lab-eval.mts --datasets concrete --rules base,scale
 */
import { parseArgs } from 'node:util';
import { calibrateAleatoricStd, calibrateScaleAndNoise } from '../src/train/calibrate.js';
import { gaussianLogLik } from '../src/uncertainty/scoring.js';
import { conformalQuantile } from '../src/uncertainty/intervals.js';
import { normalQuantile } from '../src/util/special-functions.js';
import { type FoldRecord, type Pred, FOLDS, loadSplit, readRecord } from './uci-lab.mjs';

export interface Cal {
  /** Multiplies the epistemic variance (epistemic_scale²). */
  a: number;
  /** Multiplies the predicted aleatoric variance. */
  b: number;
  sigma: number;
}

export type CalMode = 'sigma' | 'scale' | 'scale2';

const LOG_2PI = Math.log(2 * Math.PI);

export function nll(r: number[], e: number[], al: number[] | null, c: Cal): number {
  let t = 0;
  const s2 = c.sigma * c.sigma;
  for (let i = 0; i < r.length; i++) {
    const v = Math.max(c.a * e[i]! + (al ? c.b * al[i]! : 0) + s2, 1e-300);
    t += 0.5 * (LOG_2PI + Math.log(v) + (r[i]! * r[i]!) / v);
  }
  return t / r.length;
}

/** Golden-section minimum of f on [lo, hi] after a coarse grid. */
function minimise1(f: (x: number) => number, lo: number, hi: number, steps = 40): [number, number] {
  let best = lo;
  let bv = Infinity;
  for (let i = 0; i <= steps; i++) {
    const x = lo + ((hi - lo) * i) / steps;
    const v = f(x);
    if (v < bv) {
      bv = v;
      best = x;
    }
  }
  const h = (hi - lo) / steps;
  let a = Math.max(lo, best - h);
  let b = Math.min(hi, best + h);
  const g = (Math.sqrt(5) - 1) / 2;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let it = 0; it < 40; it++) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = f(d);
    }
  }
  const x = (a + b) / 2;
  const fx = f(x);
  return fx <= bv ? [x, fx] : [best, bv];
}

/** Maximum-likelihood calibration of residuals r with epistemic variances e (and predicted aleatoric al). */
export function fitCal(r: number[], e: number[], al: number[] | null, mode: CalMode, scale: number): Cal {
  const sig = (a: number, b: number): number =>
    calibrateAleatoricStd(
      r,
      e.map((v, i) => a * v + (al ? b * al[i]! : 0)),
      scale,
    );
  if (mode === 'sigma') return { a: 1, b: 1, sigma: sig(1, 1) };
  const LO = Math.log(1e-2);
  const HI = Math.log(1e3);
  if (mode === 'scale' || !al) {
    // the trainer's own fit (src/train/calibrate.ts)
    const c = calibrateScaleAndNoise(r, e, al, scale);
    return { a: c.epistemicScale ** 2, b: 1, sigma: c.sigma };
  }
  // scale2: coordinate descent on (log a, log b), σ profiled
  let la = 0;
  let lb = 0;
  for (let it = 0; it < 4; it++) {
    [la] = minimise1(
      (x) => nll(r, e, al, { a: Math.exp(x), b: Math.exp(lb), sigma: sig(Math.exp(x), Math.exp(lb)) }),
      LO,
      HI,
      20,
    );
    [lb] = minimise1(
      (x) => nll(r, e, al, { a: Math.exp(la), b: Math.exp(x), sigma: sig(Math.exp(la), Math.exp(x)) }),
      Math.log(1e-2),
      Math.log(1e2),
      20,
    );
  }
  return { a: Math.exp(la), b: Math.exp(lb), sigma: sig(Math.exp(la), Math.exp(lb)) };
}

export function variance(p: Pred, c: Cal): number[] {
  return p.mean.map((_, i) => c.a * p.epi[i]! + (p.alea ? c.b * p.alea[i]! : 0) + c.sigma * c.sigma);
}

/** Cross-fitted validation LL per row: calibrate on one half (by position), score the other. */
export function crossFitRows(y: number[], p: Pred, mode: CalMode, scale: number): number[] {
  const n = y.length;
  const out = new Array<number>(n).fill(0);
  const halves = [0, 1].map((h) => Array.from({ length: n }, (_, i) => i).filter((i) => i % 2 === h));
  for (const [a, b] of [
    [halves[0]!, halves[1]!],
    [halves[1]!, halves[0]!],
  ] as const) {
    const c = fitCal(
      a.map((i) => y[i]! - p.mean[i]!),
      a.map((i) => p.epi[i]!),
      p.alea ? a.map((i) => p.alea![i]!) : null,
      mode,
      scale,
    );
    for (const i of b) {
      const v = c.a * p.epi[i]! + (p.alea ? c.b * p.alea[i]! : 0) + c.sigma * c.sigma;
      out[i] = gaussianLogLik(y[i]!, p.mean[i]!, Math.sqrt(v));
    }
  }
  return out;
}

export interface TestScores {
  rmse: number;
  ll: number;
  cov: Record<string, number>;
  conf: Record<string, number>;
}

export const LEVELS = [0.5, 0.8, 0.9, 0.95];

export function testScores(y: number[], p: Pred, c: Cal, scores: number[]): TestScores {
  const v = variance(p, c);
  const n = y.length;
  let se = 0;
  let ll = 0;
  const cov: Record<string, number> = {};
  const conf: Record<string, number> = {};
  const sorted = [...scores].sort((a, b) => a - b);
  for (const l of LEVELS) {
    cov[l] = 0;
    conf[l] = 0;
  }
  for (let i = 0; i < n; i++) {
    const r = y[i]! - p.mean[i]!;
    se += r * r;
    const s = Math.sqrt(v[i]!);
    ll += gaussianLogLik(y[i]!, p.mean[i]!, s);
    for (const l of LEVELS) {
      if (Math.abs(r) <= normalQuantile((1 + l) / 2) * s) cov[l]! += 1 / n;
      if (Math.abs(r) <= conformalQuantile(sorted, l) * s) conf[l]! += 1 / n;
    }
  }
  return { rmse: Math.sqrt(se / n), ll: ll / n, cov, conf };
}

export function meanSe(xs: number[]): [number, number] {
  const n = xs.length;
  const m = xs.reduce((a, b) => a + b, 0) / n;
  const v = xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, n - 1);
  return [m, Math.sqrt(v / n)];
}

/** Everything a rule sees for one split. */
export interface SplitCtx {
  name: string;
  split: number;
  yTrain: number[];
  yTest: number[];
  /** Training rows' target std (the calibration search scale). */
  scale: number;
  f0: Map<string, FoldRecord>;
  refit: Map<string, FoldRecord>;
  cache: string;
}

export function loadCtx(cache: string, name: string, split: number, variants: string[]): SplitCtx | null {
  const s = loadSplit('data/uci', name, split);
  const f0 = new Map<string, FoldRecord>();
  const refit = new Map<string, FoldRecord>();
  for (const v of variants) {
    const a = readRecord(cache, name, split, v, 'f0');
    const b = readRecord(cache, name, split, v, 'refit');
    if (!a || !b) return null;
    f0.set(v, a);
    refit.set(v, b);
  }
  const yTrain = Array.from(s.data.y);
  const m = yTrain.reduce((a, b) => a + b, 0) / yTrain.length;
  const scale = Math.sqrt(yTrain.reduce((a, b) => a + (b - m) ** 2, 0) / yTrain.length);
  return { name, split, yTrain, yTest: Array.from(s.test.y), scale, f0, refit, cache };
}

export interface Choice {
  variant: string;
  k: number;
  score: number;
}

/** The tuner's selection: best cross-fitted validation LL over variants × checkpoints (ties: earlier). */
export function select(ctx: SplitCtx, variants: string[], mode: CalMode): Choice {
  let best: Choice = { variant: '', k: -1, score: -Infinity };
  for (const v of variants) {
    const rec = ctx.f0.get(v)!;
    const yv = rec.held.map((i) => ctx.yTrain[i]!);
    rec.heldPred.forEach((p, k) => {
      if (!p) return;
      const rows = crossFitRows(yv, p, mode, ctx.scale);
      const sc = rows.reduce((a, b) => a + b, 0) / rows.length;
      if (Number.isFinite(sc) && sc > best.score) best = { variant: v, k, score: sc };
    });
  }
  return best;
}

/** Calibration rows of a choice: the f0 validation rows, or every training row out of fold. */
export function calRows(ctx: SplitCtx, c: Choice, source: 'val' | 'oof'): { y: number[]; p: Pred } | null {
  const folds = source === 'val' ? ['f0'] : Array.from({ length: FOLDS }, (_, k) => `f${k}`);
  const y: number[] = [];
  const p: Pred = { mean: [], epi: [], alea: null };
  for (const f of folds) {
    const rec = f === 'f0' ? ctx.f0.get(c.variant)! : readRecord(ctx.cache, ctx.name, ctx.split, c.variant, f);
    if (!rec) return null;
    const hp = rec.heldPred[c.k];
    if (!hp) return null;
    y.push(...rec.held.map((i) => ctx.yTrain[i]!));
    p.mean.push(...hp.mean);
    p.epi.push(...hp.epi);
    if (hp.alea) p.alea = [...(p.alea ?? []), ...hp.alea];
  }
  return { y, p };
}

export interface Outcome extends TestScores {
  choice: Choice;
  cal: Cal;
}

export function evaluateRule(
  ctx: SplitCtx,
  variants: string[],
  selMode: CalMode,
  calMode: CalMode,
  source: 'val' | 'oof',
  served: 'refit' | 'f0' = 'refit',
): Outcome | null {
  const choice = select(ctx, variants, selMode);
  const rows = calRows(ctx, choice, source);
  if (!rows) return null;
  const r = rows.y.map((v, i) => v - rows.p.mean[i]!);
  const cal = fitCal(r, rows.p.epi, rows.p.alea, calMode, ctx.scale);
  const v = variance(rows.p, cal);
  const scores = r.map((x, i) => Math.abs(x) / Math.sqrt(v[i]!));
  const tp = (served === 'refit' ? ctx.refit : ctx.f0).get(choice.variant)!.testPred[choice.k]!;
  return { choice, cal, ...testScores(ctx.yTest, tp, cal, scores) };
}

export function summarise(label: string, outs: Outcome[]): string {
  const f = (xs: number[], d = 3): string => {
    const [m, se] = meanSe(xs);
    return `${m.toFixed(d)}±${se.toFixed(d)}`;
  };
  return (
    `${label.padEnd(34)} n=${String(outs.length).padStart(2)} RMSE ${f(outs.map((o) => o.rmse))} LL ${f(outs.map((o) => o.ll))} ` +
    `cov50/90 ${f(
      outs.map((o) => o.cov['0.5']!),
      3,
    )} ${f(
      outs.map((o) => o.cov['0.9']!),
      3,
    )} conf ${LEVELS.map((l) => meanSe(outs.map((o) => o.conf[l]!))[0].toFixed(3)).join('/')}` +
    ` a ${meanSe(outs.map((o) => o.cal.a))[0].toFixed(2)}`
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      datasets: { type: 'string', default: 'bostonHousing,concrete,energy,wine-quality-red,yacht' },
      splits: { type: 'string', default: '20' },
      variants: {
        type: 'string',
        default: 'hom-p0.005-c0.01,hom-p0.005-c1,hom-p0.05-c0.01,hom-p0.05-c1,hom-p0.2-c0.01,hom-p0.2-c1',
      },
      cache: { type: 'string', default: '/tmp/q-lab/cache' },
      rules: { type: 'string', default: 'sigma/sigma/val,sigma/scale/val,scale/scale/val' },
    },
  });
  const variants = values.variants!.split(',');
  for (const d of values.datasets!.split(',')) {
    const ctxs: SplitCtx[] = [];
    for (let s = 0; s < Number(values.splits); s++) {
      const c = loadCtx(values.cache!, d, s, variants);
      if (c) ctxs.push(c);
    }
    console.log(`${d}: ${ctxs.length} splits`);
    for (const rule of values.rules!.split(',')) {
      const [sel, cal, src, served] = rule.split('/') as [CalMode, CalMode, 'val' | 'oof', 'refit' | 'f0' | undefined];
      const outs = ctxs
        .map((c) => evaluateRule(c, variants, sel, cal, src, served ?? 'refit'))
        .filter((o): o is Outcome => o !== null);
      console.log(`  ${summarise(rule, outs)}`);
    }
  }
}
