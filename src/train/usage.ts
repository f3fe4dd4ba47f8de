/**
 * The option tables (options.ts) as text: the CLI's usage text and the docs' markdown table
 * (`npm run docs:options` writes it into docs/training.md).
 */
import { ALL_OPTIONS, type OptionSpec, SECTIONS } from './options.js';

/** The default as shown: the value (lists comma-joined), with a --tune run's when it differs. */
export function shownDefault(o: OptionSpec<unknown>): string {
  const text = (v: unknown): string => (Array.isArray(v) ? v.join(',') : String(v));
  if (o.required) return 'required';
  const base = o.shownDefault ?? (o.parse ? text(o.default) : 'off');
  return o.tuneDefault === undefined ? base : `${base} (--tune: ${text(o.tuneDefault)})`;
}

const bySection = (): [string, OptionSpec<unknown>[]][] =>
  Object.entries(SECTIONS).map(([key, title]) => [title, ALL_OPTIONS.filter((o) => o.section === key)]);

const flagText = (o: OptionSpec<unknown>): string => `--${o.flag}${o.arg ? ` ${o.arg}` : ''}`;

/** The usage text of `npm run train`. */
export function usageText(): string {
  const lines = ['usage: npm run train -- --data FILE --target COL --name NAME [options]'];
  for (const [title, options] of bySection()) {
    lines.push('', `${title}:`);
    for (const o of options) {
      const rules = [o.tuned ? 'chosen by --tune' : '', o.tuneOnly ? 'needs --tune' : ''].filter(Boolean);
      const note = [o.required ? 'required' : `default: ${shownDefault(o)}`, ...rules].join('; ');
      lines.push(`  ${flagText(o)}`, `      ${o.help} (${note})`);
    }
  }
  return lines.join('\n');
}

/** The docs' option table (markdown): flag, default, meaning, section by section. */
export function optionsMarkdown(): string {
  const cell = (s: string): string => s.replaceAll('|', '\\|');
  const rows = bySection().flatMap(([title, options]) =>
    options.map((o) => {
      const rules = [o.tuned ? 'chosen by `--tune`' : '', o.tuneOnly ? 'needs `--tune`' : ''].filter(Boolean);
      const meaning = rules.length ? `${o.help} (${rules.join('; ')})` : o.help;
      return `| ${title} | \`${cell(flagText(o))}\` | ${cell(shownDefault(o))} | ${cell(meaning)} |`;
    }),
  );
  return ['| Group | Option | Default | Meaning |', '|---|---|---|---|', ...rows].join('\n');
}

export const OPTIONS_BEGIN = '<!-- train-options:begin -->';
export const OPTIONS_END = '<!-- train-options:end -->';

/** `markdown` with the option table between its markers (an error when they are missing). */
export function withOptionsTable(markdown: string): string {
  const begin = markdown.indexOf(OPTIONS_BEGIN);
  const end = markdown.indexOf(OPTIONS_END);
  if (begin < 0 || end < begin) throw new Error(`expected ${OPTIONS_BEGIN} … ${OPTIONS_END}`);
  return `${markdown.slice(0, begin + OPTIONS_BEGIN.length)}\n${optionsMarkdown()}\n${markdown.slice(end)}`;
}
