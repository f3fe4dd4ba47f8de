/** Checks every report page must pass, and queries for its figures (shared by the renderer's and the trainer's tests). */
import { expect } from 'vitest';
import { REPORT_CSP } from '../../src/report/report.js';
import { byAttr, checkGeometry, elements, parseXml, textOf, type XmlElement } from './xml.js';

/** Parse the page as XML (it is written as polyglot markup) and run the checks every page must pass. */
export function checkPage(html: string): XmlElement {
  expect(html.startsWith('<!DOCTYPE html>\n<html lang="en">')).toBe(true);
  const root = parseXml(html);
  expect(root.name).toBe('html');
  const all = elements(root);
  // self-contained: no script, no external resource, no event handler
  for (const e of all) {
    expect([
      'script',
      'link',
      'img',
      'iframe',
      'object',
      'embed',
      'image',
      'use',
      'foreignObject',
      'base',
      'form',
    ]).not.toContain(e.name);
    for (const [k, v] of Object.entries(e.attrs)) {
      expect(k.startsWith('on'), `${e.name}[${k}]`).toBe(false);
      if (k === 'xmlns') continue; // a namespace name, never fetched
      expect(v, `${e.name}[${k}]`).not.toMatch(/^\s*(https?:|\/\/|javascript:|data:)/i);
      if (k === 'href' || k === 'src' || k === 'xlink:href') throw new Error(`${e.name} has ${k}=${v}`);
    }
  }
  // the page carries its own policy: nothing may load or run
  const csp = all.filter((e) => e.name === 'meta' && e.attrs['http-equiv'] === 'Content-Security-Policy');
  expect(csp.map((e) => e.attrs.content)).toEqual([REPORT_CSP]);
  expect(REPORT_CSP).toMatch(/^default-src 'none'; style-src 'unsafe-inline'(;|$)/);
  expect(REPORT_CSP).not.toMatch(/script-src|unsafe-eval|\*/);
  const style = all
    .filter((e) => e.name === 'style')
    .map(textOf)
    .join('');
  expect(style).not.toMatch(/@import|url\(|expression\(/i);
  expect(html).not.toMatch(/NaN|Infinity/);
  // every figure: an SVG (checked on its own) with an accessible title
  const figures = all.filter((e) => e.name === 'figure');
  expect(figures.length).toBeGreaterThan(0);
  for (const f of figures) {
    expect(f.attrs.id).toMatch(/^fig-[a-z-]+$/);
    expect(f.attrs['data-plot']).toMatch(/^[a-z-]+$/);
    const svgs = elements(f).filter((e) => e.name === 'svg');
    expect(svgs, f.attrs.id).toHaveLength(1);
    const svg = svgs[0]!;
    expect(svg.attrs.viewBox).toMatch(/^0 0 \d+(\.\d+)? \d+(\.\d+)?$/);
    expect(svg.attrs.width).toBe('100%');
    expect(checkGeometry(svg)).toBeGreaterThan(10);
    expect(textOf(elements(svg).find((e) => e.name === 'title')!).length).toBeGreaterThan(5);
  }
  // ids unique (clip paths and patterns are referenced by id)
  const ids = all.map((e) => e.attrs.id).filter((v): v is string => v !== undefined);
  expect(new Set(ids).size).toBe(ids.length);
  return root;
}

export function figure(root: XmlElement, id: string): XmlElement {
  const f = byAttr(root, 'id', `fig-${id}`);
  expect(f, `fig-${id}`).toHaveLength(1);
  return f[0]!;
}

/** The axis titles of a figure's SVG. */
export function axisLabels(f: XmlElement): string[] {
  return elements(f)
    .filter((e) => e.attrs.class === 'axis-label')
    .map(textOf);
}

export function figureIds(root: XmlElement): string[] {
  return elements(root)
    .filter((e) => e.name === 'figure')
    .map((e) => e.attrs.id!);
}
