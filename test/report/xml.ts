import { expect } from 'vitest';

/**
 * A strict little XML parser for the report tests: enough of XML 1.0 to prove a page or an SVG is
 * well-formed (balanced tags, quoted unique attributes, no bare '<' or '&', only known entities, one
 * root) and to query the tree. A leading <!DOCTYPE html> is accepted. Throws with the offset on error.
 */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlNode[];
}
export type XmlNode = XmlElement | string;

const NAME = /[A-Za-z_:][A-Za-z0-9_.:-]*/y;
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(s: string, at: number): string {
  return s.replace(/&([^;&\s]*);?/g, (m, body: string) => {
    if (!m.endsWith(';')) throw new Error(`bare '&' near offset ${at}`);
    if (body in ENTITIES) return ENTITIES[body]!;
    const num = /^#(?:x([0-9A-Fa-f]+)|([0-9]+))$/.exec(body);
    if (!num) throw new Error(`unknown entity &${body}; near offset ${at}`);
    const code = num[1] !== undefined ? parseInt(num[1], 16) : parseInt(num[2]!, 10);
    if (code === 0 || code > 0x10ffff) throw new Error(`bad character reference &${body}; near offset ${at}`);
    return String.fromCodePoint(code);
  });
}

export function parseXml(src: string): XmlElement {
  let i = 0;
  const fail = (msg: string): never => {
    throw new Error(`${msg} at offset ${i}: ${JSON.stringify(src.slice(Math.max(0, i - 40), i + 40))}`);
  };
  const skipMisc = (): void => {
    for (;;) {
      while (i < src.length && /\s/.test(src[i]!)) i++;
      if (src.startsWith('<!--', i)) {
        const end = src.indexOf('-->', i + 4);
        if (end < 0) fail('unterminated comment');
        i = end + 3;
      } else if (src.startsWith('<?', i)) {
        const end = src.indexOf('?>', i + 2);
        if (end < 0) fail('unterminated processing instruction');
        i = end + 2;
      } else return;
    }
  };
  const name = (): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(src);
    if (!m) return fail('expected a name');
    i += m[0].length;
    return m[0];
  };

  skipMisc();
  if (/^<!DOCTYPE html>/i.test(src.slice(i, i + 15))) i += 15;
  skipMisc();
  if (src[i] !== '<') fail('expected the root element');

  const element = (): XmlElement => {
    i++; // '<'
    const el: XmlElement = { name: name(), attrs: {}, children: [] };
    for (;;) {
      const ws = i;
      while (/\s/.test(src[i] ?? '')) i++;
      if (src.startsWith('/>', i)) {
        i += 2;
        return el;
      }
      if (src[i] === '>') {
        i++;
        break;
      }
      if (i === ws) fail('expected whitespace before an attribute');
      const attr = name();
      while (/\s/.test(src[i] ?? '')) i++;
      if (src[i] !== '=') fail(`attribute ${attr} without a value`);
      i++;
      while (/\s/.test(src[i] ?? '')) i++;
      const q = src[i];
      if (q !== '"' && q !== "'") fail(`attribute ${attr} value not quoted`);
      const end = src.indexOf(q!, i + 1);
      if (end < 0) fail('unterminated attribute value');
      const raw = src.slice(i + 1, end);
      if (raw.includes('<')) fail(`'<' in the value of ${attr}`);
      if (attr in el.attrs) fail(`duplicate attribute ${attr}`);
      el.attrs[attr] = decode(raw, i);
      i = end + 1;
    }
    for (;;) {
      const lt = src.indexOf('<', i);
      if (lt < 0) fail(`unclosed <${el.name}>`);
      const text = src.slice(i, lt);
      if (text.includes(']]>')) fail("']]>' in text");
      if (text) el.children.push(decode(text, i));
      i = lt;
      if (src.startsWith('</', i)) {
        i += 2;
        const closing = name();
        if (closing !== el.name) fail(`</${closing}> closes <${el.name}>`);
        while (/\s/.test(src[i] ?? '')) i++;
        if (src[i] !== '>') fail('expected > after a closing tag');
        i++;
        return el;
      }
      if (src.startsWith('<!--', i)) {
        const end = src.indexOf('-->', i + 4);
        if (end < 0) fail('unterminated comment');
        i = end + 3;
        continue;
      }
      if (src.startsWith('<![CDATA[', i)) {
        const end = src.indexOf(']]>', i);
        if (end < 0) fail('unterminated CDATA');
        el.children.push(src.slice(i + 9, end));
        i = end + 3;
        continue;
      }
      el.children.push(element());
    }
  };
  const root = element();
  skipMisc();
  if (i !== src.length) fail('content after the root element');
  return root;
}

/** Every element of the tree, depth first (the root included). */
export function elements(root: XmlElement): XmlElement[] {
  const out: XmlElement[] = [];
  const walk = (e: XmlElement): void => {
    out.push(e);
    for (const c of e.children) if (typeof c !== 'string') walk(c);
  };
  walk(root);
  return out;
}

/** The concatenated text inside an element. */
export function textOf(e: XmlElement): string {
  return e.children.map((c) => (typeof c === 'string' ? c : textOf(c))).join('');
}

/** Elements with this attribute value. */
export function byAttr(root: XmlElement, attr: string, value: string): XmlElement[] {
  return elements(root).filter((e) => e.attrs[attr] === value);
}

/** Attributes that carry coordinates or lengths. */
const GEOMETRY = [
  'x',
  'y',
  'x1',
  'y1',
  'x2',
  'y2',
  'cx',
  'cy',
  'r',
  'width',
  'height',
  'd',
  'viewBox',
  'transform',
  'points',
];

/** Every number in every geometry attribute: finite and within the clamp. Returns how many were checked. */
export function checkGeometry(root: XmlElement): number {
  let count = 0;
  const bad: string[] = [];
  for (const e of elements(root)) {
    for (const a of GEOMETRY) {
      const v = e.attrs[a];
      if (v === undefined || (a === 'width' && v === '100%')) continue;
      if (/NaN|Infinity|undefined/.test(v)) bad.push(`${e.name}[${a}]=${v}`);
      for (const tok of v.match(/-?[0-9.]+(?:e[-+]?\d+)?/gi) ?? []) {
        const n = Number(tok);
        if (!Number.isFinite(n) || Math.abs(n) > 1e4) bad.push(`${e.name}[${a}]=${v}`);
        count++;
      }
    }
  }
  expect(bad).toEqual([]);
  return count;
}
