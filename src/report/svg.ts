/**
 * Small SVG plotting primitives for the model report: data in, an SVG string out (no DOM, no dependency).
 *
 * Guarantees every figure keeps, whatever the data: all text is XML-escaped; every number written to a
 * coordinate attribute is finite (non-finite data points are skipped, lines break at them, pixel
 * positions are clamped to ±10⁴); large scatters are thinned deterministically. Figures scale with their
 * container (viewBox, width 100%).
 */

/** Okabe–Ito colours: distinguishable with the common colour-vision deficiencies, and in grey print. */
export const COLORS = {
  blue: '#0072B2',
  orange: '#E69F00',
  vermillion: '#D55E00',
  green: '#009E73',
  sky: '#56B4E9',
  purple: '#CC79A7',
  yellow: '#F0E442',
  grey: '#777777',
  ink: '#222222',
} as const;

const FONT_SIZE = 13;
const TICK_FONT_SIZE = 12;
/** Mean advance of a sans-serif glyph, in ems: enough to lay out labels without measuring text. */
const CHAR_EM = 0.6;
const MAX_PX = 1e4;

// Characters XML 1.0 forbids (C0 controls but tab/LF/CR, U+FFFE/U+FFFF, unpaired surrogates).
const XML_INVALID =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching these control characters is the point
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Escape text for XML/HTML text and attribute values; characters XML cannot carry become U+FFFD. */
export function escapeXml(s: string): string {
  return String(s)
    .replace(XML_INVALID, '\uFFFD')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** A pixel coordinate as written to an attribute: finite, clamped to ±10⁴, one decimal. */
export function px(v: number): string {
  if (!Number.isFinite(v)) return '0';
  const r = Math.round(Math.min(MAX_PX, Math.max(-MAX_PX, v)) * 10) / 10;
  return String(r === 0 ? 0 : r);
}

/** Approximate rendered width of a text in pixels (no font metrics available server-side). */
export function textWidth(s: string, size = FONT_SIZE): number {
  return [...s].length * size * CHAR_EM;
}

/** Shorten a label to at most `max` characters with an ellipsis. */
export function truncate(s: string, max: number): string {
  const chars = [...s];
  return chars.length <= max ? s : `${chars.slice(0, Math.max(1, max - 1)).join('')}…`;
}

/** A number for people: `digits` significant digits, exponent form only when very large or small, a real minus sign. */
export function formatNumber(v: number, digits = 4): string {
  if (Number.isNaN(v)) return '—';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  if (v === 0) return '0';
  const a = Math.abs(v);
  const s = a >= 1e6 || a < 1e-4 ? shortExp(v, digits) : String(Number(v.toPrecision(digits)));
  return s.replace('-', '−');
}

function shortExp(v: number, digits: number): string {
  return v
    .toExponential(Math.max(0, digits - 1))
    .replace(/\.?0+e/, 'e')
    .replace('e+', 'e');
}

/** Step of a "nice" sequence (1, 2 or 5 × 10^k) giving about `count` intervals over `span`. */
export function niceStep(span: number, count: number): number {
  const raw = Math.abs(span) / Math.max(1, count);
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

function clean(v: number): number {
  return Number(v.toPrecision(12));
}

/**
 * Round [lo, hi] outwards to multiples of a nice step and list the ticks. Non-finite bounds fall back to
 * [0, 1]; an empty range is widened by 10% of its value (or 1).
 */
export function niceTicks(
  lo: number,
  hi: number,
  count = 5,
): { lo: number; hi: number; step: number; ticks: number[] } {
  [lo, hi] = saneRange(lo, hi);
  const step = niceStep(hi - lo, count);
  const k0 = Math.floor(lo / step + 1e-9);
  const k1 = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  for (let k = k0; k <= k1; k++) ticks.push(clean(k * step));
  return { lo: clean(k0 * step), hi: clean(k1 * step), step, ticks };
}

function saneRange(lo: number, hi: number): [number, number] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  lo = Math.max(-1e300, Math.min(1e300, lo));
  hi = Math.max(-1e300, Math.min(1e300, hi));
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const pad = Math.abs(lo) * 0.1 || 1;
    return [lo - pad, hi + pad];
  }
  return [lo, hi];
}

/** Label of a tick at `v` on an axis with spacing `step`: as many decimals as the step needs. */
export function formatTick(v: number, step: number): string {
  if (!Number.isFinite(v)) return '';
  const a = Math.abs(step);
  if (Math.abs(v) < a * 1e-9) return a < 1e-4 ? '0' : (0).toFixed(Math.max(0, -Math.floor(Math.log10(a) + 1e-9)));
  let s: string;
  if (Math.abs(v) >= 1e6 || a < 1e-4) {
    const digits = Math.max(1, Math.floor(Math.log10(Math.abs(v))) - Math.floor(Math.log10(a)) + 1);
    s = shortExp(v, digits);
  } else {
    s = v.toFixed(Math.max(0, -Math.floor(Math.log10(a) + 1e-9)));
  }
  return s.replace('-', '−');
}

/** Smallest and largest finite values over the arrays ([0, 1] when there are none). */
export function extent(...arrays: ArrayLike<number>[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      const v = a[i]!;
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return Number.isFinite(lo) ? [lo, hi] : [0, 1];
}

/** Smallest and largest finite positive values ([1, 10] when there are none): a log axis's data range. */
export function positiveExtent(...arrays: ArrayLike<number>[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      const v = a[i]!;
      if (!(Number.isFinite(v) && v > 0)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return Number.isFinite(lo) ? [lo, hi] : [1, 10];
}

/** A map from data to pixels with its ticks. `map` returns NaN where the value cannot be shown (log of ≤ 0). */
export interface Scale {
  readonly lo: number;
  readonly hi: number;
  readonly log: boolean;
  readonly ticks: number[];
  map(v: number): number;
  format(v: number): string;
}

/** Linear scale from [lo, hi] (rounded out to nice ticks unless nice is false) to pixels [r0, r1]. */
export function linearScale(
  lo: number,
  hi: number,
  r0: number,
  r1: number,
  opts: { nice?: boolean; count?: number } = {},
): Scale {
  const t = niceTicks(lo, hi, opts.count ?? 5);
  let a = t.lo;
  let b = t.hi;
  let ticks = t.ticks;
  if (opts.nice === false) {
    [a, b] = saneRange(lo, hi);
    ticks = t.ticks.filter((v) => v >= a - 1e-9 * (b - a) && v <= b + 1e-9 * (b - a));
  }
  const k = (r1 - r0) / (b - a);
  return { lo: a, hi: b, log: false, ticks, map: (v) => r0 + (v - a) * k, format: (v) => formatTick(v, t.step) };
}

/**
 * Base-10 log scale over positive [lo, hi], rounded out to the enclosing ticks: 1, 2, 5 × 10^k over up to
 * two decades, powers of ten beyond (every n-th decade when there are many).
 */
export function logScale(lo: number, hi: number, r0: number, r1: number): Scale {
  if (!(lo > 0 && Number.isFinite(lo))) lo = 1;
  if (!(hi > 0 && Number.isFinite(hi))) hi = lo * 10;
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) [lo, hi] = [lo / 2, hi * 2];
  lo = Math.max(lo, 1e-300);
  hi = Math.min(hi, 1e300);
  const d0 = Math.floor(Math.log10(lo) + 1e-9);
  const d1 = Math.ceil(Math.log10(hi) - 1e-9);
  const decades = Math.max(1, d1 - d0);
  const mantissas = decades <= 2 ? [1, 2, 5] : [1];
  const every = decades > 8 ? Math.ceil(decades / 6) : 1;
  const candidates: number[] = [];
  for (let d = d0; d <= d1; d++) {
    if ((d - d0) % every !== 0 && d !== d1) continue;
    for (const m of mantissas) candidates.push(clean(m * 10 ** d));
  }
  const below = candidates.filter((v) => v <= lo * (1 + 1e-9));
  const above = candidates.filter((v) => v >= hi * (1 - 1e-9));
  const a = below.length > 0 ? below[below.length - 1]! : lo;
  const b = above.length > 0 ? above[0]! : hi;
  const ticks = candidates.filter((v) => v >= a * (1 - 1e-9) && v <= b * (1 + 1e-9));
  const la = Math.log10(a);
  const k = (r1 - r0) / (Math.log10(b) - la);
  return {
    lo: a,
    hi: b,
    log: true,
    ticks,
    map: (v) => (v > 0 ? r0 + (Math.log10(v) - la) * k : NaN),
    format: (v) => formatNumber(v, 3),
  };
}

/** Indices of at most `cap` of n rows, evenly strided (deterministic; all rows when n ≤ cap). */
export function decimateIndices(n: number, cap: number): number[] {
  if (n <= cap) return Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: cap }, (_, j) => Math.floor((j * n) / cap));
}

export interface LineStyle {
  color?: string;
  width?: number;
  dash?: string;
  opacity?: number;
}

export interface PointStyle {
  color?: string;
  /** Radius in pixels. */
  r?: number;
  opacity?: number;
  /** Hollow circles when false. */
  fill?: boolean;
  /** At most this many points are drawn (evenly strided); default 800. */
  cap?: number;
}

export interface AreaStyle {
  color?: string;
  opacity?: number;
  stroke?: string;
}

export type LegendKind = 'line' | 'dash' | 'point' | 'box';
export interface LegendItem {
  label: string;
  color: string;
  kind?: LegendKind;
}

export interface AxisSpec {
  /** Axis title, units included. */
  label: string;
  /** Data range to show; rounded out to nice ticks unless nice is false. */
  domain: [number, number];
  log?: boolean;
  nice?: boolean;
  /** About this many tick intervals (default 5). */
  ticks?: number;
  /** Fixed tick positions (and optional labels) instead of computed ones. */
  tickValues?: number[];
  tickFormat?: (v: number) => string;
  /** Light grid lines at the ticks (default true). */
  grid?: boolean;
}

export interface PlotSpec {
  /** Unique within the page: prefixes the clip path id. Letters, digits, '-' and '_'. */
  id: string;
  /** Accessible name (the <title> of the SVG). */
  title: string;
  width?: number;
  height?: number;
  x: AxisSpec;
  y: AxisSpec;
  legend?: LegendItem[];
}

interface Margin {
  top: number;
  right: number;
  bottom: number;
  left: number;
}

function checkId(id: string): string {
  if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(id))
    throw new Error(`svg id ${JSON.stringify(id)}: use a letter then letters, digits, '-' or '_'`);
  return id;
}

function styleAttrs(s: LineStyle, fallback: string): string {
  let a = ` stroke="${escapeXml(s.color ?? fallback)}" stroke-width="${px(s.width ?? 1.8)}"`;
  if (s.dash) a += ` stroke-dasharray="${escapeXml(s.dash)}"`;
  if (s.opacity !== undefined) a += ` stroke-opacity="${px(s.opacity)}"`;
  return a;
}

function legendRows(items: LegendItem[], width: number): LegendItem[][] {
  const rows: LegendItem[][] = [];
  let row: LegendItem[] = [];
  let used = 0;
  for (const it of items) {
    const w = 26 + textWidth(it.label, TICK_FONT_SIZE) + 14;
    if (row.length > 0 && used + w > width) {
      rows.push(row);
      row = [];
      used = 0;
    }
    row.push(it);
    used += w;
  }
  if (row.length > 0) rows.push(row);
  return rows;
}

function legendSvg(rows: LegendItem[][], x0: number, y0: number): string {
  let out = '<g class="legend">';
  rows.forEach((row, r) => {
    let x = x0;
    const y = y0 + r * 17;
    for (const it of row) {
      const c = escapeXml(it.color);
      const kind = it.kind ?? 'line';
      if (kind === 'point') out += `<circle cx="${px(x + 9)}" cy="${px(y)}" r="4" fill="${c}"/>`;
      else if (kind === 'box') out += `<rect x="${px(x + 2)}" y="${px(y - 5)}" width="14" height="10" fill="${c}"/>`;
      else
        out += `<line x1="${px(x)}" y1="${px(y)}" x2="${px(x + 18)}" y2="${px(y)}" stroke="${c}" stroke-width="2.2"${kind === 'dash' ? ' stroke-dasharray="5 3"' : ''}/>`;
      out += `<text x="${px(x + 24)}" y="${px(y + 4)}" font-size="${TICK_FONT_SIZE}" fill="${COLORS.ink}">${escapeXml(it.label)}</text>`;
      x += 26 + textWidth(it.label, TICK_FONT_SIZE) + 14;
    }
  });
  return `${out}</g>`;
}

/**
 * One chart with a linear or log x and y axis. Add layers in data coordinates (they are clipped to the
 * plot area), then `toString()` for the `<svg>` element.
 */
export class Plot {
  readonly width: number;
  readonly height: number;
  readonly x: Scale;
  readonly y: Scale;
  readonly margin: Margin;
  private readonly spec: PlotSpec;
  private readonly legend: LegendItem[][];
  private readonly layers: string[] = [];
  private readonly overlays: string[] = [];
  private readonly defs: string[] = [];
  private readonly xTickLabels: [number, string][];
  private readonly yTickLabels: [number, string][];

  constructor(spec: PlotSpec) {
    checkId(spec.id);
    this.spec = spec;
    this.width = spec.width ?? 480;
    this.height = spec.height ?? 340;
    // The y tick labels set the left margin, so make a provisional y scale to know them.
    const probeY = Plot.scale(spec.y, 0, 1);
    this.yTickLabels = Plot.tickLabels(spec.y, probeY);
    const yLabelWidth = Math.max(0, ...this.yTickLabels.map(([, s]) => textWidth(s, TICK_FONT_SIZE)));
    const left = Math.ceil(Math.min(this.width * 0.4, yLabelWidth + 34));
    this.legend = spec.legend && spec.legend.length > 0 ? legendRows(spec.legend, this.width - left - 12) : [];
    this.margin = { top: 12 + this.legend.length * 17, right: 16, bottom: 46, left };
    this.x = Plot.scale(spec.x, this.margin.left, this.width - this.margin.right);
    this.y = Plot.scale(spec.y, this.height - this.margin.bottom, this.margin.top);
    this.xTickLabels = Plot.tickLabels(spec.x, this.x);
    this.yTickLabels = Plot.tickLabels(spec.y, this.y);
  }

  private static scale(a: AxisSpec, r0: number, r1: number): Scale {
    const [lo, hi] = a.domain;
    return a.log ? logScale(lo, hi, r0, r1) : linearScale(lo, hi, r0, r1, { nice: a.nice, count: a.ticks });
  }

  private static tickLabels(a: AxisSpec, s: Scale): [number, string][] {
    const values = a.tickValues ?? s.ticks;
    return values
      .filter(
        (v) =>
          Number.isFinite(v) &&
          v >= Math.min(s.lo, s.hi) - 1e-9 * Math.abs(s.hi - s.lo) &&
          v <= Math.max(s.lo, s.hi) + 1e-9 * Math.abs(s.hi - s.lo),
      )
      .map((v) => [v, (a.tickFormat ?? s.format)(v)]);
  }

  /**
   * A diagonal hatch in `color` for area fills (shows a region without hiding what is under it); returns
   * the fill value, `url(#…)`.
   */
  hatch(color: string): string {
    const pid = `${this.spec.id}-hatch-${this.defs.length}`;
    this.defs.push(
      `<pattern id="${pid}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="${escapeXml(color)}" stroke-width="2.4"/></pattern>`,
    );
    return `url(#${pid})`;
  }

  /** Pixel position of a data point, or null when it cannot be drawn. */
  at(x: number, y: number): [number, number] | null {
    if (!Number.isFinite(x) || !Number.isFinite(y)) return null;
    const a = this.x.map(x);
    const b = this.y.map(y);
    return Number.isFinite(a) && Number.isFinite(b) ? [a, b] : null;
  }

  /** A polyline through the points; breaks at non-finite values; min–max thinned above `cap` points. */
  line(xs: ArrayLike<number>, ys: ArrayLike<number>, style: LineStyle = {}, cap = 2000): this {
    const segments: [number, number][][] = [];
    let cur: [number, number][] = [];
    const n = Math.min(xs.length, ys.length);
    for (let i = 0; i < n; i++) {
      const p = this.at(xs[i]!, ys[i]!);
      if (p) cur.push(p);
      else if (cur.length > 0) {
        segments.push(cur);
        cur = [];
      }
    }
    if (cur.length > 0) segments.push(cur);
    const total = segments.reduce((s, g) => s + g.length, 0);
    let d = '';
    for (const seg of segments) {
      const pts = total > cap ? minMaxThin(seg, Math.max(2, Math.floor((cap * seg.length) / total))) : seg;
      d += pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${px(p[0])} ${px(p[1])}`).join('');
    }
    if (d)
      this.layers.push(
        `<path d="${d}" fill="none"${styleAttrs(style, COLORS.blue)} stroke-linejoin="round" stroke-linecap="round"/>`,
      );
    return this;
  }

  /** Scatter of circles; returns how many were drawn (evenly strided to at most style.cap, non-finite skipped). */
  points(xs: ArrayLike<number>, ys: ArrayLike<number>, style: PointStyle = {}): number {
    const color = escapeXml(style.color ?? COLORS.blue);
    const r = style.r ?? 3;
    const fill = style.fill ?? true;
    let out = `<g fill="${fill ? color : 'none'}"${fill ? '' : ` stroke="${color}" stroke-width="1.2"`} fill-opacity="${px(style.opacity ?? 0.75)}">`;
    let drawn = 0;
    for (const i of decimateIndices(Math.min(xs.length, ys.length), style.cap ?? 800)) {
      const p = this.at(xs[i]!, ys[i]!);
      if (!p) continue;
      out += `<circle cx="${px(p[0])}" cy="${px(p[1])}" r="${px(r)}"/>`;
      drawn++;
    }
    this.layers.push(`${out}</g>`);
    return drawn;
  }

  /** Vertical error bars from lo to hi at each x (same thinning as points with the same cap). */
  errorBars(
    xs: ArrayLike<number>,
    lo: ArrayLike<number>,
    hi: ArrayLike<number>,
    style: LineStyle & { cap?: number } = {},
  ): this {
    let d = '';
    for (const i of decimateIndices(Math.min(xs.length, lo.length, hi.length), style.cap ?? 800)) {
      const a = this.at(xs[i]!, lo[i]!);
      const b = this.at(xs[i]!, hi[i]!);
      if (!a || !b) continue;
      d += `M${px(a[0])} ${px(a[1])}V${px(b[1])}`;
    }
    if (d)
      this.layers.push(`<path d="${d}" fill="none"${styleAttrs({ width: 1, opacity: 0.5, ...style }, COLORS.blue)}/>`);
    return this;
  }

  /** A filled band between lo(x) and hi(x); breaks where any value is not finite. */
  band(xs: ArrayLike<number>, lo: ArrayLike<number>, hi: ArrayLike<number>, style: AreaStyle = {}): this {
    const n = Math.min(xs.length, lo.length, hi.length);
    let seg: [[number, number], [number, number]][] = [];
    const flush = (): void => {
      if (seg.length >= 2) {
        const top = seg.map(([, b]) => `${px(b[0])} ${px(b[1])}`);
        const bottom = seg.map(([a]) => `${px(a[0])} ${px(a[1])}`).reverse();
        this.layers.push(
          `<path d="M${[...top, ...bottom].join('L')}Z" fill="${escapeXml(style.color ?? COLORS.blue)}" fill-opacity="${px(style.opacity ?? 0.2)}"${style.stroke ? ` stroke="${escapeXml(style.stroke)}"` : ''}/>`,
        );
      }
      seg = [];
    };
    for (let i = 0; i < n; i++) {
      const a = this.at(xs[i]!, lo[i]!);
      const b = this.at(xs[i]!, hi[i]!);
      if (a && b) seg.push([a, b]);
      else flush();
    }
    flush();
    return this;
  }

  /**
   * Bars over bins: bar b spans [edges[b], edges[b+1]] and rises from bottoms[b] (default: 0, or the
   * axis floor on a log axis) to tops[b]. Stack series by passing the previous tops as bottoms.
   */
  bars(
    edges: ArrayLike<number>,
    tops: ArrayLike<number>,
    style: AreaStyle & { bottoms?: ArrayLike<number>; gap?: number } = {},
  ): this {
    const floor = this.y.log ? this.y.lo : Math.max(Math.min(0, this.y.hi), this.y.lo);
    let out = `<g fill="${escapeXml(style.color ?? COLORS.blue)}" fill-opacity="${px(style.opacity ?? 0.85)}"${style.stroke ? ` stroke="${escapeXml(style.stroke)}" stroke-width="0.6"` : ''}>`;
    const gap = style.gap ?? 0.5;
    for (let b = 0; b + 1 < edges.length && b < tops.length; b++) {
      const bottom = style.bottoms ? style.bottoms[b]! : floor;
      const a = this.at(edges[b]!, bottom);
      const c = this.at(edges[b + 1]!, tops[b]!);
      if (!a || !c) continue;
      const x = Math.min(a[0], c[0]) + gap / 2;
      const w = Math.abs(c[0] - a[0]) - gap;
      const h = Math.abs(a[1] - c[1]);
      if (!(w > 0) || !(h > 0)) continue;
      out += `<rect x="${px(x)}" y="${px(Math.min(a[1], c[1]))}" width="${px(w)}" height="${px(h)}"/>`;
    }
    this.layers.push(`${out}</g>`);
    return this;
  }

  /** A rectangle between two corners in data coordinates. */
  rect(x0: number, y0: number, x1: number, y1: number, style: AreaStyle = {}): this {
    const a = this.at(x0, y0);
    const b = this.at(x1, y1);
    if (!a || !b) return this;
    this.layers.push(
      `<rect x="${px(Math.min(a[0], b[0]))}" y="${px(Math.min(a[1], b[1]))}" width="${px(Math.abs(b[0] - a[0]))}" height="${px(Math.abs(b[1] - a[1]))}" fill="${escapeXml(style.color ?? COLORS.blue)}" fill-opacity="${px(style.opacity ?? 0.3)}"${style.stroke ? ` stroke="${escapeXml(style.stroke)}"` : ''}/>`,
    );
    return this;
  }

  /** A straight segment in data coordinates. */
  segment(x0: number, y0: number, x1: number, y1: number, style: LineStyle = {}): this {
    const a = this.at(x0, y0);
    const b = this.at(x1, y1);
    if (a && b)
      this.layers.push(
        `<line x1="${px(a[0])}" y1="${px(a[1])}" x2="${px(b[0])}" y2="${px(b[1])}"${styleAttrs(style, COLORS.grey)}/>`,
      );
    return this;
  }

  /** Horizontal line across the plot at y. */
  hline(y: number, style: LineStyle = {}): this {
    return this.segment(this.x.lo, y, this.x.hi, y, style);
  }

  /** Vertical line across the plot at x. */
  vline(x: number, style: LineStyle = {}): this {
    return this.segment(x, this.y.lo, x, this.y.hi, style);
  }

  /** The line y = x over the part of the plot where both axes overlap (for calibration-style plots). */
  diagonal(style: LineStyle = {}): this {
    const lo = Math.max(this.x.lo, this.y.lo);
    const hi = Math.min(this.x.hi, this.y.hi);
    return hi > lo ? this.segment(lo, lo, hi, hi, { color: COLORS.grey, width: 1.2, dash: '4 3', ...style }) : this;
  }

  /** Text at a data point (not clipped). `anchor` start|middle|end; dx/dy in pixels. */
  text(
    x: number,
    y: number,
    s: string,
    opts: {
      anchor?: 'start' | 'middle' | 'end';
      dx?: number;
      dy?: number;
      size?: number;
      color?: string;
      weight?: string;
    } = {},
  ): this {
    const p = this.at(x, y);
    if (!p) return this;
    this.overlays.push(
      `<text x="${px(p[0] + (opts.dx ?? 0))}" y="${px(p[1] + (opts.dy ?? 0))}" text-anchor="${opts.anchor ?? 'start'}" font-size="${px(opts.size ?? TICK_FONT_SIZE)}" fill="${escapeXml(opts.color ?? COLORS.ink)}"${opts.weight ? ` font-weight="${escapeXml(opts.weight)}"` : ''} class="halo" paint-order="stroke" stroke="#fff" stroke-width="3" stroke-linejoin="round">${escapeXml(s)}</text>`,
    );
    return this;
  }

  /**
   * Mark one point (e.g. the best epoch): a ring, and a label placed inside the plot on the side with
   * more room.
   */
  marker(x: number, y: number, label: string, opts: { color?: string; r?: number } = {}): this {
    const p = this.at(x, y);
    if (!p) return this;
    const color = escapeXml(opts.color ?? COLORS.vermillion);
    const r = opts.r ?? 5;
    this.overlays.push(
      `<circle cx="${px(p[0])}" cy="${px(p[1])}" r="${px(r)}" fill="#fff" stroke="${color}" stroke-width="2"/>`,
    );
    const w = textWidth(label, TICK_FONT_SIZE);
    const right = p[0] + r + 4 + w <= this.width - this.margin.right;
    const above = p[1] - r - 6 - TICK_FONT_SIZE >= this.margin.top;
    this.overlays.push(
      `<text x="${px(right ? p[0] + r + 4 : p[0] - r - 4)}" y="${px(above ? p[1] - r - 4 : p[1] + r + TICK_FONT_SIZE + 2)}" text-anchor="${right ? 'start' : 'end'}" font-size="${TICK_FONT_SIZE}" fill="${color}" font-weight="600" class="halo" paint-order="stroke" stroke="#fff" stroke-width="3" stroke-linejoin="round">${escapeXml(label)}</text>`,
    );
    return this;
  }

  toString(): string {
    const { width: w, height: h, margin: m, spec } = this;
    const id = escapeXml(spec.id);
    const x0 = m.left;
    const x1 = w - m.right;
    const y0 = h - m.bottom;
    const y1 = m.top;
    let grid = '';
    let tickMarks = '';
    let axes = '';
    for (const [v, s] of this.xTickLabels) {
      const x = this.x.map(v);
      if (!Number.isFinite(x)) continue;
      if (spec.x.grid !== false) grid += `M${px(x)} ${px(y0)}V${px(y1)}`;
      tickMarks += `M${px(x)} ${px(y0)}V${px(y0 + 4)}`;
      axes += `<text x="${px(x)}" y="${px(y0 + 16)}" text-anchor="middle">${escapeXml(s)}</text>`;
    }
    for (const [v, s] of this.yTickLabels) {
      const y = this.y.map(v);
      if (!Number.isFinite(y)) continue;
      if (spec.y.grid !== false) grid += `M${px(x0)} ${px(y)}H${px(x1)}`;
      tickMarks += `M${px(x0 - 4)} ${px(y)}H${px(x0)}`;
      axes += `<text x="${px(x0 - 7)}" y="${px(y + 4)}" text-anchor="end">${escapeXml(s)}</text>`;
    }
    // Axis titles longer than their axis are shortened rather than cut off at the edge of the figure.
    const fitLabel = (label: string, room: number): string =>
      truncate(label, Math.max(8, Math.floor(room / (FONT_SIZE * CHAR_EM * 0.92))));
    const xLabel = `<text class="axis-label" x="${px((x0 + x1) / 2)}" y="${px(h - 8)}" text-anchor="middle" font-size="${FONT_SIZE}">${escapeXml(fitLabel(spec.x.label, w - 8))}</text>`;
    const yMid = Math.min(Math.max((y0 + y1) / 2, h / 2 - 10), h / 2 + 10);
    const yLabel = `<text class="axis-label" x="${px(14)}" y="${px(yMid)}" text-anchor="middle" font-size="${FONT_SIZE}" transform="rotate(-90 ${px(14)} ${px(yMid)})">${escapeXml(fitLabel(spec.y.label, 2 * Math.min(yMid, h - yMid) - 8))}</text>`;
    return (
      `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${px(w)} ${px(h)}" width="100%" role="img" aria-labelledby="${id}-title" data-plot-id="${id}">` +
      `<title id="${id}-title">${escapeXml(spec.title)}</title>` +
      `<defs>${this.defs.join('')}<clipPath id="${id}-clip"><rect x="${px(x0)}" y="${px(y1)}" width="${px(x1 - x0)}" height="${px(y0 - y1)}"/></clipPath></defs>` +
      (grid ? `<path class="grid" d="${grid}" stroke="#e4e4e4" stroke-width="1" fill="none"/>` : '') +
      `<g clip-path="url(#${id}-clip)">${this.layers.join('')}</g>` +
      `<path class="axis" d="M${px(x0)} ${px(y1)}V${px(y0)}H${px(x1)}${tickMarks}" stroke="#555" fill="none"/>` +
      `<g class="ticks" font-size="${TICK_FONT_SIZE}" fill="#444">${axes}</g>` +
      xLabel +
      yLabel +
      this.overlays.join('') +
      (this.legend.length > 0 ? legendSvg(this.legend, x0, 10) : '') +
      `</svg>`
    );
  }
}

/** Min–max thinning: per bucket keep the lowest and highest point (in x order), so spikes survive. */
function minMaxThin(pts: [number, number][], cap: number): [number, number][] {
  const buckets = Math.max(1, Math.floor(cap / 2));
  const size = Math.ceil(pts.length / buckets);
  const out: [number, number][] = [];
  for (let s = 0; s < pts.length; s += size) {
    let lo = s;
    let hi = s;
    for (let i = s; i < Math.min(pts.length, s + size); i++) {
      if (pts[i]![1] < pts[lo]![1]) lo = i;
      if (pts[i]![1] > pts[hi]![1]) hi = i;
    }
    for (const i of lo === hi ? [lo] : [Math.min(lo, hi), Math.max(lo, hi)]) out.push(pts[i]!);
  }
  const last = pts[pts.length - 1]!;
  if (out[out.length - 1] !== last) out.push(last);
  return out;
}

export interface HeatmapSpec {
  id: string;
  title: string;
  /** Row labels (top to bottom) and column labels (left to right). */
  rowLabels: string[];
  colLabels: string[];
  /** values[row][col], written in each cell. */
  values: number[][];
  /** Shade of each cell in [0, 1] (default: value / largest value). */
  shade?: number[][];
  /** Text of each cell (default: formatNumber(value)). */
  cellText?: (value: number, row: number, col: number) => string;
  xLabel: string;
  yLabel: string;
  width?: number;
  /** Base colour of the shading. */
  color?: string;
}

function mix(hex: string, t: number): string {
  const c = /^#([0-9a-f]{6})$/i.exec(hex) ? hex : COLORS.blue;
  const v = [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
  const k = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const out = v.map((x) => Math.round(255 + (x - 255) * k));
  return `#${out.map((x) => x.toString(16).padStart(2, '0')).join('')}`;
}

/** A matrix of shaded cells with their numbers (e.g. a confusion matrix), labelled rows and columns. */
export function heatmap(spec: HeatmapSpec): string {
  const id = checkId(spec.id);
  const rows = spec.rowLabels.length;
  const cols = spec.colLabels.length;
  const width = spec.width ?? 480;
  const rowText = spec.rowLabels.map((s) => truncate(s, 16));
  const colText = spec.colLabels.map((s) => truncate(s, 16));
  const labelLeft = Math.ceil(
    Math.min(width * 0.35, Math.max(...rowText.map((s) => textWidth(s, TICK_FONT_SIZE)), 10) + 34),
  );
  const cell = Math.max(14, Math.min(64, Math.floor((width - labelLeft - 16) / Math.max(1, cols))));
  // centre the matrix when the cells leave room
  const left = Math.max(labelLeft, Math.floor((width - cell * cols) / 2));
  // Column labels are rotated when they would not fit side by side.
  const rotate = Math.max(...colText.map((s) => textWidth(s, TICK_FONT_SIZE)), 0) > cell - 6;
  const top = 12;
  const labelBand = rotate ? Math.min(120, Math.max(...colText.map((s) => textWidth(s, TICK_FONT_SIZE))) + 12) : 22;
  const gridW = cell * cols;
  const gridH = cell * rows;
  const height = top + gridH + labelBand + 26;
  let max = 0;
  for (const r of spec.values) for (const v of r) if (Number.isFinite(v) && v > max) max = v;
  let cells = '';
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = spec.values[r]?.[c] ?? NaN;
      const t = spec.shade ? (spec.shade[r]?.[c] ?? 0) : max > 0 && Number.isFinite(v) ? v / max : 0;
      const x = left + c * cell;
      const y = top + r * cell;
      const fill = mix(spec.color ?? COLORS.blue, 0.08 + 0.92 * (Number.isFinite(t) ? t : 0));
      const text = spec.cellText ? spec.cellText(v, r, c) : formatNumber(v);
      const dark = Number.isFinite(t) && t > 0.55;
      cells += `<rect x="${px(x)}" y="${px(y)}" width="${px(cell)}" height="${px(cell)}" fill="${fill}" stroke="#fff" stroke-width="1"><title>${escapeXml(`${spec.rowLabels[r]} → ${spec.colLabels[c]}: ${text}`)}</title></rect>`;
      if (cell >= 18) {
        cells += `<text x="${px(x + cell / 2)}" y="${px(y + cell / 2 + 4)}" text-anchor="middle" font-size="${px(Math.min(13, cell / 3))}" fill="${dark ? '#fff' : COLORS.ink}">${escapeXml(text)}</text>`;
      }
    }
  }
  let labels = '';
  rowText.forEach((s, r) => {
    labels += `<text x="${px(left - 6)}" y="${px(top + r * cell + cell / 2 + 4)}" text-anchor="end">${escapeXml(s)}</text>`;
  });
  colText.forEach((s, c) => {
    const x = left + c * cell + cell / 2;
    const y = top + gridH + 14;
    labels += rotate
      ? `<text x="${px(x + 4)}" y="${px(y - 6)}" text-anchor="end" transform="rotate(-45 ${px(x + 4)} ${px(y - 6)})">${escapeXml(s)}</text>`
      : `<text x="${px(x)}" y="${px(y)}" text-anchor="middle">${escapeXml(s)}</text>`;
  });
  const yMid = top + gridH / 2;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${px(width)} ${px(height)}" width="100%" role="img" aria-labelledby="${id}-title" data-plot-id="${id}">` +
    `<title id="${id}-title">${escapeXml(spec.title)}</title>` +
    `<g>${cells}</g>` +
    `<g class="ticks" font-size="${TICK_FONT_SIZE}" fill="#444">${labels}</g>` +
    `<text class="axis-label" x="${px(left + gridW / 2)}" y="${px(height - 8)}" text-anchor="middle" font-size="${FONT_SIZE}">${escapeXml(spec.xLabel)}</text>` +
    `<text class="axis-label" x="${px(13)}" y="${px(yMid)}" text-anchor="middle" font-size="${FONT_SIZE}" transform="rotate(-90 ${px(13)} ${px(yMid)})">${escapeXml(spec.yLabel)}</text>` +
    `</svg>`
  );
}

export interface CategoryChartSpec {
  id: string;
  title: string;
  /** One label per row, drawn top to bottom. */
  categories: string[];
  values: number[];
  /** Axis title of the values. */
  valueLabel: string;
  /** bar: bars from zero (values must share a sign to read well); dot: a dot per row on a zoomed axis. */
  mode?: 'bar' | 'dot';
  /** Index of a row to emphasise (e.g. the chosen candidate). */
  highlight?: number;
  /** Text after each bar/dot (default formatNumber(value)). */
  valueText?: (v: number, i: number) => string;
  width?: number;
  color?: string;
  highlightColor?: string;
}

/** Horizontal bar or dot chart over labelled categories. Non-finite values leave their row empty. */
export function categoryChart(spec: CategoryChartSpec): string {
  const id = checkId(spec.id);
  const mode = spec.mode ?? 'bar';
  const n = spec.categories.length;
  const width = spec.width ?? 480;
  // labels get at most half the width: cut them to fit (text-anchor end would push them off the left edge)
  const labels = spec.categories.map((s) =>
    truncate(s, Math.min(42, Math.floor((width * 0.5 - 14) / (TICK_FONT_SIZE * CHAR_EM)))),
  );
  const rowH = 20;
  const top = 10;
  const plotH = Math.max(1, n) * rowH;
  const height = top + plotH + 46;
  let [lo, hi] = extent(spec.values);
  if (mode === 'bar') [lo, hi] = [Math.min(0, lo), Math.max(0, hi)];
  else {
    const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 1;
    [lo, hi] = [lo - pad, hi + pad];
  }
  const labelW = Math.min(width * 0.5, Math.max(10, ...labels.map((s) => textWidth(s, TICK_FONT_SIZE))) + 14);
  const valueTexts = spec.values.map((v, i) => (spec.valueText ? spec.valueText(v, i) : formatNumber(v)));
  const valueW = Math.max(0, ...valueTexts.map((s) => textWidth(s, TICK_FONT_SIZE))) + 10;
  const x0 = Math.ceil(labelW);
  const x1 = width - 12 - valueW;
  // about one tick per 70 px of axis (a tick label is up to ~8 characters)
  const sx = linearScale(lo, hi, x0, x1, {
    nice: mode === 'bar',
    count: Math.max(2, Math.min(4, Math.floor((x1 - x0) / 70))),
  });
  const base = mode === 'bar' ? sx.map(Math.max(Math.min(0, sx.hi), sx.lo)) : x0;
  let grid = '';
  let ticks = '';
  for (const t of sx.ticks) {
    const x = sx.map(t);
    if (!Number.isFinite(x)) continue;
    grid += `M${px(x)} ${px(top)}V${px(top + plotH)}`;
    ticks += `<text x="${px(x)}" y="${px(top + plotH + 16)}" text-anchor="middle">${escapeXml(sx.format(t))}</text>`;
  }
  let body = '';
  spec.values.forEach((v, i) => {
    const y = top + i * rowH + rowH / 2;
    const hl = i === spec.highlight;
    const color = escapeXml(hl ? (spec.highlightColor ?? COLORS.vermillion) : (spec.color ?? COLORS.blue));
    body += `<text x="${px(x0 - 8)}" y="${px(y + 4)}" text-anchor="end"${hl ? ' font-weight="700"' : ''}>${escapeXml(labels[i]!)}</text>`;
    const x = sx.map(v);
    if (!Number.isFinite(v) || !Number.isFinite(x)) return;
    if (mode === 'bar') {
      body += `<rect x="${px(Math.min(base, x))}" y="${px(y - rowH * 0.35)}" width="${px(Math.abs(x - base))}" height="${px(rowH * 0.7)}" fill="${color}"/>`;
    } else {
      body += `<line x1="${px(x0)}" y1="${px(y)}" x2="${px(x)}" y2="${px(y)}" stroke="#ccc" stroke-width="1"/><circle cx="${px(x)}" cy="${px(y)}" r="${hl ? 6 : 4.5}" fill="${color}"/>`;
    }
    body += `<text x="${px(Math.max(x, base) + 8)}" y="${px(y + 4)}"${hl ? ' font-weight="700"' : ''}>${escapeXml(valueTexts[i]!)}</text>`;
  });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${px(width)} ${px(height)}" width="100%" role="img" aria-labelledby="${id}-title" data-plot-id="${id}">` +
    `<title id="${id}-title">${escapeXml(spec.title)}</title>` +
    `<path class="grid" d="${grid || `M${px(x0)} ${px(top)}`}" stroke="#e4e4e4" fill="none"/>` +
    `<g font-size="${TICK_FONT_SIZE}" fill="#222">${body}</g>` +
    `<path d="M${px(x0)} ${px(top)}V${px(top + plotH)}H${px(x1)}" stroke="#555" fill="none"/>` +
    `<g class="ticks" font-size="${TICK_FONT_SIZE}" fill="#444">${ticks}</g>` +
    `<text class="axis-label" x="${px((x0 + x1) / 2)}" y="${px(height - 8)}" text-anchor="middle" font-size="${FONT_SIZE}">${escapeXml(spec.valueLabel)}</text>` +
    `</svg>`
  );
}
