/**
 * Reading the docs as a test: the markdown files, their fenced blocks with the marker comment above
 * each, a small shell lexer for the command blocks, and the match of a documented output ("…" elides).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** README.md and every docs/*.md, by path from the repository root. */
export function docFiles(): string[] {
  const docs = readdirSync('docs')
    .filter((f) => f.endsWith('.md'))
    .sort();
  return ['README.md', ...docs.map((f) => `docs/${f}`)];
}

export interface Fence {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  body: string;
  /** The text of an HTML comment on the line just above the fence (`<!-- … -->`), or null. */
  marker: string | null;
}

/** Every fenced block of a markdown text, with the marker comment directly above it. */
export function fences(file: string, text: string): Fence[] {
  const lines = text.split('\n');
  const out: Fence[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i] ?? '');
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && l.startsWith('```'));
    if (end < 0) throw new Error(`${file}:${i + 1}: unclosed fence`);
    const above = /^<!--\s*(.*?)\s*-->$/.exec(lines[i - 1] ?? '');
    out.push({
      file,
      line: i + 1,
      lang: open[1] ?? '',
      body: lines.slice(i + 1, end).join('\n'),
      marker: above?.[1] ?? null,
    });
    i = end;
  }
  return out;
}

/** A shell command of a block (words after quote removal and $VAR expansion) or a comment line. */
export type ShellItem = { kind: 'command'; words: string[]; raw: string } | { kind: 'comment'; text: string };

/**
 * Split a sh block into commands and comment lines, as sh would: quotes ('…', "…" with \" and $VAR),
 * backslash-newline continuations, newlines inside quotes kept, `# …` to the end of the line a comment
 * (a trailing one is dropped); `export NAME=value` sets NAME in `vars` for the lines after it. Only
 * what the docs use: no globs or substitutions (operators stay words; `raw` keeps them for sh).
 */
export function lexShell(block: string, vars: Record<string, string>): ShellItem[] {
  const items: ShellItem[] = [];
  let words: string[] = [];
  let word: string | null = null;
  let start = 0;
  const endWord = () => {
    if (word !== null) words.push(word);
    word = null;
  };
  const endCommand = (at: number) => {
    endWord();
    if (words[0] === 'export')
      for (const kv of words.slice(1)) vars[kv.split('=')[0] as string] = kv.slice(kv.indexOf('=') + 1);
    if (words.length > 0) items.push({ kind: 'command', words, raw: block.slice(start, at).trim() });
    words = [];
    start = at + 1;
  };
  const expand = (from: number): [string, number] => {
    const name = /^\w+/.exec(block.slice(from))?.[0] ?? '';
    return [vars[name] ?? '', from + name.length];
  };
  let i = 0;
  while (i < block.length) {
    const c = block[i] as string;
    if (c === '\\' && block[i + 1] === '\n') i += 2;
    else if (c === '\n') endCommand(i++);
    else if (c === ' ' || c === '\t') {
      endWord();
      i++;
    } else if (c === '#' && word === null) {
      const eol = block.indexOf('\n', i) < 0 ? block.length : block.indexOf('\n', i);
      if (words.length === 0) items.push({ kind: 'comment', text: block.slice(i, eol) });
      endCommand(eol);
      i = eol + 1;
    } else if (c === "'") {
      const close = block.indexOf("'", i + 1);
      word = (word ?? '') + block.slice(i + 1, close);
      i = close + 1;
    } else if (c === '"') {
      let s = '';
      i++;
      while (block[i] !== '"') {
        if (block[i] === '\\' && '"\\$'.includes(block[i + 1] ?? '')) {
          s += block[i + 1];
          i += 2;
        } else if (block[i] === '$') {
          const [v, next] = expand(i + 1);
          s += v;
          i = next;
        } else s += block[i++];
      }
      word = (word ?? '') + s;
      i++;
    } else if (c === '$') {
      const [v, next] = expand(i + 1);
      word = (word ?? '') + v;
      i = next;
    } else {
      word = (word ?? '') + c;
      i++;
    }
  }
  endCommand(block.length);
  return items;
}

/**
 * The output the docs show after a command: comment lines that start with `{`, `[` or an HTTP status,
 * and the indented comment lines that continue them. Other comments are prose.
 */
export function shownOutputs(comments: readonly string[]): string[] {
  const outputs: string[] = [];
  for (const c of comments) {
    const text = c.replace(/^#/, '');
    if (/^ ?(\{|\[|\d{3} )/.test(text)) outputs.push(text.replace(/^ /, ''));
    else if (/^ {2,}\S/.test(text) && outputs.length > 0) outputs.push(`${outputs.pop()}\n${text.trim()}`);
  }
  return outputs;
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Does `actual` match what the docs show? "…" stands for any text (elided digits or fields); a line
 * break in the shown text is where the docs wrapped it, so an optional space.
 */
export function matchesShown(shown: string, actual: string): boolean {
  const pattern = shown
    .split('\n')
    .map((line) => line.split('…').map(escapeRegex).join('[\\s\\S]*?'))
    .join(' ?');
  return new RegExp(`^${pattern}$`).test(actual);
}

/** Every relative link target of a markdown text: `[text](target)`, without http(s) and mailto links. */
export function relativeLinks(text: string): string[] {
  const withoutCode = text.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  const links = [...withoutCode.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] as string);
  return links.filter((l) => !/^(https?:|mailto:)/.test(l));
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
export function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a markdown file's headings (duplicates numbered as GitHub does). */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  const withoutCode = text.replace(/```[\s\S]*?```/g, '');
  for (const m of withoutCode.matchAll(/^#{1,6} (.+)$/gm)) {
    const base = anchorOf(m[1] as string);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

export const readText = (path: string): string => readFileSync(path, 'utf8');
