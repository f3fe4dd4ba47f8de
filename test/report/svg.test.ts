import { describe, expect, it } from 'vitest';
import {
  categoryChart,
  decimateIndices,
  escapeXml,
  extent,
  formatNumber,
  formatTick,
  heatmap,
  linearScale,
  logScale,
  niceStep,
  niceTicks,
  Plot,
  positiveExtent,
  px,
  truncate,
} from '../../src/report/svg.js';
import { checkGeometry, elements, parseXml, textOf, type XmlElement } from './xml.js';

function svgOf(s: string): XmlElement {
  const root = parseXml(s);
  expect(root.name).toBe('svg');
  expect(root.attrs.xmlns).toBe('http://www.w3.org/2000/svg');
  expect(root.attrs.viewBox).toMatch(/^0 0 [0-9.]+ [0-9.]+$/);
  expect(root.attrs.width).toBe('100%');
  checkGeometry(root);
  return root;
}

const named = (root: XmlElement, name: string): XmlElement[] => elements(root).filter((e) => e.name === name);

describe('the test XML parser', () => {
  it('accepts well-formed documents and rejects malformed ones', () => {
    expect(parseXml('<!DOCTYPE html>\n<a x="1 &amp; 2"><b/>t&lt;&#233;<!-- c --></a>\n').children).toHaveLength(2);
    for (const bad of [
      '<a><b></a></b>',
      '<a x=1></a>',
      '<a x="1" x="2"/>',
      '<a>&nbsp;</a>',
      '<a>x & y</a>',
      '<a x="<"/>',
      '<a/><b/>',
      '<a>',
      '<a b="1"c="2"/>',
    ]) {
      expect(() => parseXml(bad), bad).toThrow();
    }
  });
});

describe('text and numbers', () => {
  it('escapes markup and replaces characters XML cannot carry', () => {
    expect(escapeXml(`<script>"a" & 'b'</script>`)).toBe(
      '&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;',
    );
    expect(escapeXml('a\u0000b\u001fc\ud800d\u00e9\ud83d\ude00')).toBe('a\ufffdb\ufffdc\ufffdd\u00e9\ud83d\ude00');
    const root = parseXml(`<t a="${escapeXml('"\'<>&')}">${escapeXml('</t><x>&amp;')}</t>`);
    expect(root.attrs.a).toBe('"\'<>&');
    expect(textOf(root)).toBe('</t><x>&amp;');
  });

  it('writes finite, clamped pixel coordinates', () => {
    expect(px(12.345)).toBe('12.3');
    expect(px(-0.01)).toBe('0');
    expect(px(NaN)).toBe('0');
    expect(px(Infinity)).toBe('0');
    expect(px(1e9)).toBe('10000');
    expect(px(-1e9)).toBe('-10000');
  });

  it('formats numbers for people', () => {
    expect(formatNumber(55.82252275534888)).toBe('55.82');
    expect(formatNumber(0.9431818181818182)).toBe('0.9432');
    expect(formatNumber(442)).toBe('442');
    expect(formatNumber(-1.5)).toBe('−1.5');
    expect(formatNumber(1.23e-7)).toBe('1.23e-7'.replace('-', '−'));
    expect(formatNumber(2.5e9, 3)).toBe('2.5e9');
    expect(formatNumber(NaN)).toBe('—');
    expect(formatNumber(-Infinity)).toBe('−∞');
    expect(truncate('abcdefgh', 5)).toBe('abcd…');
    expect(truncate('abc', 5)).toBe('abc');
  });
});

describe('scales and ticks', () => {
  it('niceStep picks 1, 2 or 5 × 10^k', () => {
    expect(niceStep(1, 5)).toBe(0.2);
    expect(niceStep(100, 5)).toBe(20);
    expect(niceStep(0.07, 5)).toBeCloseTo(0.01, 15);
    expect(niceStep(37, 5)).toBe(10);
    expect(niceStep(30, 5)).toBe(5);
    expect(niceStep(0, 5)).toBe(1);
  });

  it('niceTicks rounds the range out to the ticks', () => {
    expect(niceTicks(0, 1)).toEqual({ lo: 0, hi: 1, step: 0.2, ticks: [0, 0.2, 0.4, 0.6, 0.8, 1] });
    expect(niceTicks(25.3, 346.1)).toMatchObject({ lo: 0, hi: 350, step: 50 });
    const t = niceTicks(-0.37, 0.52);
    expect(t.ticks[0]).toBeLessThanOrEqual(-0.37);
    expect(t.ticks[t.ticks.length - 1]).toBeGreaterThanOrEqual(0.52);
    expect(t.ticks).toContain(0);
    // degenerate and non-finite ranges still give a usable axis
    expect(niceTicks(5, 5).ticks.length).toBeGreaterThan(1);
    expect(niceTicks(NaN, 3)).toMatchObject({ lo: 0, hi: 1 });
    expect(niceTicks(-Infinity, Infinity)).toMatchObject({ lo: 0, hi: 1 });
    expect(niceTicks(-1e308, 1e308).ticks.every(Number.isFinite)).toBe(true);
  });

  it('formatTick uses the decimals the step needs and a real minus', () => {
    expect(formatTick(0.4, 0.2)).toBe('0.4');
    expect(formatTick(1, 0.2)).toBe('1.0');
    expect(formatTick(-50, 50)).toBe('−50');
    expect(formatTick(5.48, 0.02)).toBe('5.48');
    expect(formatTick(1e-20, 0.1)).toBe('0.0');
    expect(formatTick(0, 50)).toBe('0');
    expect(formatTick(3e-5, 1e-5)).toBe('3e−5');
    expect(formatTick(2500000, 500000)).toBe('2.5e6');
  });

  it('linearScale maps the nice domain onto the range', () => {
    const s = linearScale(0.1, 0.9, 100, 500);
    expect([s.lo, s.hi]).toEqual([0, 1]);
    expect(s.map(0)).toBe(100);
    expect(s.map(0.5)).toBe(300);
    const raw = linearScale(0.1, 0.9, 0, 80, { nice: false });
    expect(raw.map(0.1)).toBe(0);
    expect(raw.map(0.9)).toBeCloseTo(80, 12);
    expect(raw.ticks.every((t) => t >= 0.1 - 1e-12 && t <= 0.9 + 1e-12)).toBe(true);
  });

  it('logScale uses 1-2-5 ticks over few decades and powers of ten over many', () => {
    const s = logScale(2.5, 30, 0, 100);
    expect(s.ticks).toEqual([2, 5, 10, 20, 50]);
    expect(s.map(2)).toBe(0);
    expect(s.map(50)).toBeCloseTo(100, 12);
    expect(s.map(10)).toBeCloseTo((100 * Math.log10(5)) / Math.log10(25), 10);
    expect(s.map(0)).toBeNaN();
    expect(s.map(-1)).toBeNaN();
    const wide = logScale(0.0003, 1.1, 0, 100);
    expect(wide.ticks).toEqual([0.0001, 0.001, 0.01, 0.1, 1, 10]);
    expect(logScale(1e-30, 1e30, 0, 1).ticks.length).toBeLessThanOrEqual(12);
    expect(logScale(NaN, -3, 0, 1).ticks.every((t) => t > 0 && Number.isFinite(t))).toBe(true);
  });

  it('extent ignores non-finite values', () => {
    expect(extent([3, NaN, -2], [Infinity, 7])).toEqual([-2, 7]);
    expect(extent([NaN])).toEqual([0, 1]);
    expect(positiveExtent([0, -1, 0.5, 4])).toEqual([0.5, 4]);
    expect(positiveExtent([0])).toEqual([1, 10]);
  });

  it('decimateIndices is deterministic, distinct, in range and evenly spread', () => {
    expect(decimateIndices(5, 10)).toEqual([0, 1, 2, 3, 4]);
    const d = decimateIndices(2000, 800);
    expect(d).toHaveLength(800);
    expect(new Set(d).size).toBe(800);
    expect(d[0]).toBe(0);
    expect(d[799]).toBeLessThan(2000);
    expect(decimateIndices(2000, 800)).toEqual(d);
    for (let j = 1; j < d.length; j++) expect(d[j]! - d[j - 1]!).toBeGreaterThanOrEqual(2);
  });
});

describe('Plot', () => {
  const basic = (): Plot =>
    new Plot({
      id: 'p1',
      title: 'A <test> plot',
      x: { label: 'x <units>', domain: [0, 10] },
      y: { label: 'y & more', domain: [-1, 1] },
      legend: [
        { label: 'series "a"', color: '#0072B2' },
        { label: 'b', color: '#E69F00', kind: 'point' },
      ],
    });

  it('draws axes, labels, legend and a clipped plot area as well-formed SVG', () => {
    const p = basic();
    p.line([0, 5, 10], [0, 1, -1]);
    const root = svgOf(p.toString());
    const labels = elements(root)
      .filter((e) => e.attrs.class === 'axis-label')
      .map(textOf);
    expect(labels).toEqual(['x <units>', 'y & more']);
    expect(textOf(named(root, 'title')[0]!)).toBe('A <test> plot');
    expect(named(root, 'clipPath')[0]!.attrs.id).toBe('p1-clip');
    expect(elements(root).some((e) => e.attrs['clip-path'] === 'url(#p1-clip)')).toBe(true);
    const ticks = elements(root).find((e) => e.attrs.class === 'ticks')!;
    expect(named(ticks, 'text').map(textOf)).toEqual([
      '0',
      '2',
      '4',
      '6',
      '8',
      '10',
      '−1.0',
      '−0.5',
      '0.0',
      '0.5',
      '1.0',
    ]);
    expect(textOf(elements(root).find((e) => e.attrs.class === 'legend')!)).toBe('series "a"b');
  });

  it('breaks lines at non-finite points and never writes them', () => {
    const p = basic();
    p.line([0, 1, 2, 3, 4, 5], [0, 0.5, NaN, 0.2, Infinity, 0.1]);
    p.line([NaN], [NaN]);
    const root = svgOf(p.toString());
    const paths = named(root, 'path').filter((e) => e.attrs.fill === 'none' && e.attrs.stroke === '#0072B2');
    expect(paths).toHaveLength(1);
    expect(paths[0]!.attrs.d!.match(/M/g)).toHaveLength(3); // segments [0,1], [3], [5]
  });

  it('log axes skip values they cannot show', () => {
    const p = new Plot({
      id: 'lg',
      title: 't',
      x: { label: 'x', domain: [1, 3] },
      y: { label: 'y', domain: [0.001, 1], log: true },
    });
    p.line([1, 2, 3], [0.5, 0, -1]);
    expect(p.points([1, 2, 3], [0.01, 0, 0.1])).toBe(2);
    svgOf(p.toString());
  });

  it('thins scatters above the cap deterministically and skips bad points', () => {
    const n = 2000;
    const xs = Array.from({ length: n }, (_, i) => (i % 100) / 10);
    const ys = Array.from({ length: n }, (_, i) => Math.sin(i));
    xs[0] = NaN;
    const p = basic();
    const drawn = p.points(xs, ys, { cap: 500 });
    expect(drawn).toBe(499); // index 0 is among the strided rows and is skipped
    const s = p.toString();
    expect(named(svgOf(s), 'circle')).toHaveLength(499 + 1); // + the legend's point
    const again = basic();
    again.points(xs, ys, { cap: 500 });
    expect(again.toString()).toBe(s);
    const all = basic();
    expect(all.points(xs.slice(1, 301), ys.slice(1, 301))).toBe(300);
  });

  it('keeps a spike when a long line is thinned', () => {
    const n = 20000;
    const ys = Array.from({ length: n }, (_, i) => (i === 12345 ? 1 : 0));
    const p = basic();
    p.line(
      Array.from({ length: n }, (_, i) => (i / n) * 10),
      ys,
      {},
      1000,
    );
    const d = named(svgOf(p.toString()), 'path').find((e) => e.attrs.stroke === '#0072B2')!.attrs.d!;
    const points = d.match(/[ML]/g)!.length;
    expect(points).toBeLessThanOrEqual(1002);
    expect(d).toContain(` ${px(p.y.map(1))}`);
  });

  it('draws bars, stacked bars, bands, error bars, rects and markers with finite geometry', () => {
    const p = basic();
    p.bars([0, 2, 4, 6], [0.5, NaN, -0.5]);
    p.bars([0, 2, 4, 6], [0.8, 0.9, 0.1], { bottoms: [0.5, 0, -0.5] });
    p.band([0, 1, 2, 3], [-0.5, -0.5, NaN, -0.2], [0.5, 0.6, 0.7, 0.2]);
    p.errorBars([1, 2, 3], [-0.2, NaN, -0.1], [0.2, 0.3, Infinity]);
    p.rect(1, -0.5, 2, 0.5);
    p.rect(NaN, 0, 1, 1);
    p.marker(5, 0.5, 'best <epoch>');
    p.marker(NaN, 0, 'hidden');
    p.text(1, 1, 'a & b');
    p.hline(0).vline(3).diagonal();
    const root = svgOf(p.toString());
    const rects = named(root, 'rect');
    // the clip rect, 2 bars (the NaN one skipped), 3 stacked bars and the finite rect (legend items here are lines and circles)
    expect(rects).toHaveLength(1 + 2 + 3 + 1);
    expect(textOf(root)).toContain('best <epoch>');
    expect(textOf(root)).not.toContain('hidden');
    expect(textOf(root)).toContain('a & b');
    // the band broke at the NaN: two pieces, the second one too short to draw
    expect(named(root, 'path').filter((e) => e.attrs['fill-opacity'] === '0.2')).toHaveLength(1);
    // one error bar survives (rows 1 and 2 have a non-finite end)
    expect(
      named(root, 'path')
        .find((e) => e.attrs['stroke-opacity'] === '0.5')!
        .attrs.d!.match(/M/g),
    ).toHaveLength(1);
  });

  it('a hatch is a pattern referenced by id', () => {
    const p = basic();
    const fill = p.hatch('#D55E00');
    p.rect(0, 0, 1, 1, { color: fill });
    const root = svgOf(p.toString());
    expect(fill).toBe('url(#p1-hatch-0)');
    expect(named(root, 'pattern')[0]!.attrs.id).toBe('p1-hatch-0');
  });

  it('rejects ids that could break the markup', () => {
    expect(
      () => new Plot({ id: 'a"b', title: '', x: { label: '', domain: [0, 1] }, y: { label: '', domain: [0, 1] } }),
    ).toThrow(/svg id/);
    expect(() =>
      heatmap({ id: '1x', title: '', rowLabels: [], colLabels: [], values: [], xLabel: '', yLabel: '' }),
    ).toThrow(/svg id/);
  });

  it('survives data that is all non-finite', () => {
    const p = new Plot({
      id: 'empty',
      title: 't',
      x: { label: 'x', domain: extent([NaN]) },
      y: { label: 'y', domain: [NaN, Infinity] },
    });
    p.line([NaN, Infinity], [1, 2]);
    p.points([NaN], [NaN]);
    p.bars([NaN, NaN], [NaN]);
    svgOf(p.toString());
  });
});

describe('heatmap', () => {
  it('writes one shaded cell with its number per entry, labels escaped', () => {
    const s = heatmap({
      id: 'cm',
      title: 'confusion',
      rowLabels: ['<a>', 'b', 'c'],
      colLabels: ['<a>', 'b', 'c'],
      values: [
        [9, 0, 1],
        [0, 10, 0],
        [2, 1, 16],
      ],
      xLabel: 'predicted',
      yLabel: 'true',
    });
    const root = svgOf(s);
    const cells = named(root, 'rect');
    expect(cells).toHaveLength(9);
    const texts = named(root, 'text').map(textOf);
    expect(texts).toEqual(expect.arrayContaining(['9', '0', '1', '10', '16', '<a>', 'predicted', 'true']));
    // darker for larger counts
    expect(cells[8]!.attrs.fill! < cells[1]!.attrs.fill!).toBe(true);
  });

  it('rotates long column labels and survives NaN cells', () => {
    const labels = ['a very long class name', 'another very long one'];
    const root = svgOf(
      heatmap({
        id: 'h2',
        title: 't',
        rowLabels: labels,
        colLabels: labels,
        values: [
          [NaN, 1],
          [2, Infinity],
        ],
        xLabel: 'x',
        yLabel: 'y',
      }),
    );
    expect(named(root, 'text').some((t) => /rotate\(-45/.test(t.attrs.transform ?? ''))).toBe(true);
  });
});

describe('categoryChart', () => {
  it('bar mode starts at zero, emphasises the highlighted row, leaves non-finite rows empty', () => {
    const root = svgOf(
      categoryChart({
        id: 'c1',
        title: 't',
        categories: ['one', 'two <b>', 'three'],
        values: [3, NaN, 5],
        valueLabel: 'score',
        highlight: 2,
      }),
    );
    const bars = named(root, 'rect');
    expect(bars).toHaveLength(2);
    expect(Number(bars[1]!.attrs.width)).toBeGreaterThan(Number(bars[0]!.attrs.width));
    expect(bars[1]!.attrs.fill).not.toBe(bars[0]!.attrs.fill);
    const bold = named(root, 'text')
      .filter((t) => t.attrs['font-weight'] === '700')
      .map(textOf);
    expect(bold).toEqual(['three', '5']);
    expect(named(root, 'text').map(textOf)).toContain('two <b>');
  });

  it('dot mode zooms to the values', () => {
    const root = svgOf(
      categoryChart({
        id: 'c2',
        title: 't',
        categories: ['a', 'b'],
        values: [5.468, 5.521],
        valueLabel: 'nll',
        mode: 'dot',
        highlight: 0,
      }),
    );
    const dots = named(root, 'circle');
    expect(dots).toHaveLength(2);
    // the two dots are far apart although the values differ by 1%
    expect(Math.abs(Number(dots[1]!.attrs.cx) - Number(dots[0]!.attrs.cx))).toBeGreaterThan(100);
  });

  it('cuts long labels so they end at the axis and start inside the picture', () => {
    const long = `#29 dropout 0.2 · weight_decay 0.00353357 · epochs 2000 · noise homoscedastic`;
    const root = svgOf(
      categoryChart({
        id: 'c3',
        title: 't',
        categories: [long, 'short'],
        values: [1, 2],
        valueLabel: 'v',
        mode: 'dot',
      }),
    );
    const labels = named(root, 'text').filter((t) => t.attrs['text-anchor'] === 'end');
    expect(labels.map(textOf)[1]).toBe('short');
    const cut = textOf(labels[0]!);
    expect(cut.endsWith('…')).toBe(true);
    expect(long.startsWith(cut.slice(0, -1))).toBe(true);
    // at the renderer's width estimate (0.6 em per character, 12 px), the text starts at x ≥ 0
    for (const l of labels) expect(Number(l.attrs.x) - [...textOf(l)].length * 12 * 0.6).toBeGreaterThanOrEqual(0);
  });
});
