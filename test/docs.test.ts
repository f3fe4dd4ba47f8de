/**
 * The docs stay true: README.md and docs/*.md are read as a test. Every relative link resolves; every
 * command block is run here (marker `<!-- docs-test: SESSION [VAR=value …] -->`: curl against the app
 * through app.inject, `npm run train` in-process, other shell lines in a scratch folder) or names the
 * test or script that runs it (`<!-- run by: PATH[, PATH] -->`); the environment table matches
 * src/config.ts; `npm run NAME` and repository paths named in the text exist.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { buildApp } from '../src/server/app.js';
import { run as trainCli } from '../src/train/cli.js';
import {
  anchors,
  docFiles,
  type Fence,
  fences,
  lexShell,
  matchesShown,
  readText,
  relativeLinks,
  type ShellItem,
  shownOutputs,
} from './helpers/docs.js';

const FILES = docFiles();
const ALL_FENCES = FILES.flatMap((f) => fences(f, readText(f)));
const SCRIPTS = Object.keys(JSON.parse(readText('package.json')).scripts as Record<string, string>);

describe('README', () => {
  const readme = readText('README.md');
  it('is under 250 lines and points to every page under docs/', () => {
    expect(readme.split('\n').length).toBeLessThan(250);
    for (const page of FILES.filter((f) => f.startsWith('docs/'))) expect(readme).toContain(`](${page})`);
  });
  it('lists every npm script in its table', () => {
    const table = readme.slice(readme.indexOf('## Scripts'), readme.indexOf('\n## ', readme.indexOf('## Scripts') + 1));
    const listed = (name: string) =>
      table.includes(name === 'start' || name === 'test' ? `npm ${name}` : `npm run ${name}`);
    expect(SCRIPTS.filter((name) => !listed(name))).toEqual([]);
  });
});

describe('docs/training.md', () => {
  const text = readText('docs/training.md');
  it('holds one option-table region, and every option in it is one that `npm run train -- --help` lists', async () => {
    const region = /<!-- train-options:begin -->\n([\s\S]*?)<!-- train-options:end -->/.exec(text)?.[1] ?? '';
    expect(text.split('<!-- train-options:begin -->').length).toBe(2);
    const flags = new Set(region.match(/--[a-z][a-z-]+/g));
    expect(flags.size).toBeGreaterThan(20);
    const printed: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => printed.push(String(chunk)) > 0);
    expect(await trainCli(['--help'])).toBe(0);
    vi.restoreAllMocks();
    const usage = printed.join('');
    expect([...flags].filter((f) => !new RegExp(`${f}\\b(?!-)`).test(usage))).toEqual([]);
  });
});

describe('links', () => {
  it.each(FILES)('every relative link in %s points to an existing file and heading', (file) => {
    const broken: string[] = [];
    for (const link of relativeLinks(readText(file))) {
      const [path = '', anchor] = link.split('#');
      const target = path === '' ? file : normalize(join(dirname(file), decodeURI(path)));
      if (!existsSync(target)) broken.push(`${link} (no file ${target})`);
      else if (anchor !== undefined && !anchors(readText(target)).has(anchor)) broken.push(`${link} (no heading)`);
    }
    expect(broken).toEqual([]);
  });
});

describe('what the text names exists', () => {
  it.each(FILES)('every `npm run NAME` and repository path in %s', (file) => {
    const code = [...readText(file).matchAll(/`([^`\n]+)`/g)].map((m) => m[1] as string);
    const missing: string[] = [];
    for (const span of code) {
      for (const m of span.matchAll(/npm run ([\w:-]+)/g)) if (!SCRIPTS.includes(m[1] as string)) missing.push(span);
      for (const m of span.matchAll(/(?:^|[\s(])((?:src|test|scripts|bench|deploy|data)\/[\w./-]*\w)/g)) {
        if (!existsSync(m[1] as string)) missing.push(m[1] as string);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe('command blocks', () => {
  it('every sh block is run here or names what runs it; no other block holds a command', () => {
    const problems: string[] = [];
    for (const f of ALL_FENCES) {
      const where = `${f.file}:${f.line}`;
      if (f.lang !== 'sh') {
        if (/^(npm|npx|curl|docker|node) /m.test(f.body)) problems.push(`${where}: a command outside a sh block`);
        continue;
      }
      const runBy = /^run by: (.+)$/.exec(f.marker ?? '');
      if (runBy) {
        for (const path of (runBy[1] as string).split(/,\s*/))
          if (!existsSync(path)) problems.push(`${where}: ${path}`);
      } else if (!/^(docs-test: \w+|checked: docker)/.test(f.marker ?? '')) problems.push(`${where}: no marker`);
    }
    expect(problems).toEqual([]);
  });

  it('the blocks run by a script name only npm scripts and files that exist (scripts, test files, programs)', () => {
    const missing: string[] = [];
    for (const f of ALL_FENCES.filter((x) => x.lang === 'sh' && x.marker?.startsWith('run by:'))) {
      for (const m of f.body.matchAll(/npm run ([\w:-]+)/g)) if (!SCRIPTS.includes(m[1] as string)) missing.push(m[0]);
      for (const m of f.body.matchAll(/npx (?:tsx|vitest run) (\S+)/g))
        if (!existsSync(m[1] as string)) missing.push(m[0]);
      for (const m of f.body.matchAll(/^(\S*\/\S*)/gm)) if (!existsSync(m[1] as string)) missing.push(m[0]);
    }
    expect(missing).toEqual([]);
  });
});

/** A session: the blocks of one file with the same `docs-test` name, run in order in one scratch folder. */
interface Session {
  dir: string;
  env: Record<string, string>;
  vars: Record<string, string>;
  app: FastifyInstance | null;
}

/** The scratch folder: the shipped models under models/, and a copy of diabetes as if retrained. */
function newSession(env: Record<string, string>): Session {
  const dir = mkdtempSync(join(tmpdir(), 'ds-docs-'));
  for (const name of ['diabetes', 'wine']) cpSync(`models/${name}`, join(dir, 'models', name), { recursive: true });
  mkdirSync(join(dir, 'retrained'));
  cpSync('models/diabetes', join(dir, 'retrained', 'diabetes'), { recursive: true });
  return { dir, env, vars: {}, app: null };
}

/**
 * `[VAR=value …] npm start`: the app over the session's models folder, as the server would build it
 * (workers aside); a relative MODEL_PATH is read from the repository root, where the docs run it.
 */
async function start(s: Session, env: Record<string, string> = {}): Promise<FastifyInstance> {
  if (s.app) return s.app;
  const base = { MODELS_DIR: join(s.dir, 'models'), MC_WORKERS: '0', LOG_LEVEL: 'silent' };
  const config = loadConfig({ ...base, ...s.env, ...env });
  const app = await buildApp({ config });
  await app.loadModels();
  await app.ready();
  s.app = app;
  return app;
}

/** curl's arguments as the docs use them: -s, -X, -H, -d and the URL (localhost on the default port). */
function curlRequest(words: readonly string[]) {
  const headers: Record<string, string> = {};
  let method: string | undefined;
  let payload: string | undefined;
  let url = '';
  for (let i = 1; i < words.length; i++) {
    const w = words[i] as string;
    if (w === '-s') continue;
    else if (w === '-X') method = words[++i];
    else if (w === '-H') {
      const h = words[++i] as string;
      headers[h.slice(0, h.indexOf(':')).toLowerCase()] = h.slice(h.indexOf(':') + 1).trim();
    } else if (w === '-d') payload = words[++i];
    else if (w.startsWith('-')) throw new Error(`curl option ${w} is not understood by the docs test`);
    else url = w;
  }
  const port = loadConfig({}).PORT;
  expect(url.startsWith(`localhost:${port}/`), `${url}: the server's default address`).toBe(true);
  // curl sends -d data as a form unless told otherwise
  if (payload !== undefined) headers['content-type'] ??= 'application/x-www-form-urlencoded';
  const verb = (method ?? (payload === undefined ? 'GET' : 'POST')) as 'GET' | 'POST';
  return { method: verb, url: url.slice(`localhost:${port}`.length), headers, payload };
}

async function runCurl(s: Session, words: readonly string[], comments: readonly string[]): Promise<void> {
  const app = await start(s);
  const res = await app.inject(curlRequest(words));
  const shown = shownOutputs(comments);
  expect(shown.length, `${words.join(' ')}: one shown answer at most`).toBeLessThanOrEqual(1);
  for (const out of shown) {
    const status = /^(\d{3}) /.exec(out);
    if (status) expect(res.statusCode).toBe(Number(status[1]));
    const body = status ? out.slice(4) : out;
    expect(matchesShown(body, res.body), `${words.join(' ')}\nshown:  ${body}\nserved: ${res.body}`).toBe(true);
  }
}

/** `npm run train -- ARGS`, in-process, into the session's models/; every shown line must be printed. */
async function runTrain(s: Session, args: readonly string[], comments: readonly string[]): Promise<void> {
  const printed: string[] = [];
  const keep = (chunk: unknown) => printed.push(String(chunk)) > 0;
  vi.spyOn(process.stdout, 'write').mockImplementation(keep);
  vi.spyOn(process.stderr, 'write').mockImplementation(keep);
  const out = join(s.dir, 'models');
  const code = await trainCli([...args, ...(args.includes('--help') ? [] : ['--out', out])]);
  vi.restoreAllMocks();
  expect(code).toBe(0);
  const lines = printed.join('').replaceAll(out, 'models').split('\n');
  for (const c of comments) {
    const shown = c.replace(/^# ?/, '');
    expect(
      lines.some((l) => matchesShown(shown, l.trimEnd())),
      `train printed no line like\n${shown}`,
    ).toBe(true);
  }
}

/** One command of a block with the comment lines that follow it. */
async function runCommand(s: Session, item: ShellItem & { kind: 'command' }, comments: string[]): Promise<void> {
  const assigns = item.words.findIndex((w) => !/^[A-Z_]+=/.test(w));
  const env = Object.fromEntries(
    item.words.slice(0, assigns).map((w) => [w.split('=')[0], w.slice(w.indexOf('=') + 1)]),
  );
  const [cmd, ...rest] = item.words.slice(assigns);
  if (cmd === 'export') return; // lexShell has set it
  if (cmd === 'curl') await runCurl(s, item.words, comments);
  else if (cmd === 'npm' && rest[0] === 'start') await start(s, env);
  else if (cmd === 'npm' && rest[0] === 'run' && rest[1] === 'train') await runTrain(s, rest.slice(3), comments);
  else execFileSync('sh', ['-c', item.raw], { cwd: s.dir, env: { ...process.env, ...s.vars } });
}

async function runBlock(s: Session, f: Fence): Promise<void> {
  const items = lexShell(f.body, s.vars);
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as ShellItem;
    if (item.kind !== 'command') continue;
    const comments: string[] = [];
    for (let j = i + 1; items[j]?.kind === 'comment'; j++) comments.push((items[j] as { text: string }).text);
    await runCommand(s, item, comments);
  }
}

/** The docs-test sessions of each file: name → { env from the marker, blocks in order }. */
function sessions(): { file: string; name: string; env: Record<string, string>; blocks: Fence[] }[] {
  const byKey = new Map<string, { file: string; name: string; env: Record<string, string>; blocks: Fence[] }>();
  for (const f of ALL_FENCES) {
    const m = /^docs-test: (\w+)(.*)$/.exec(f.marker ?? '');
    if (!m) continue;
    const [name, settings] = [m[1] as string, (m[2] as string).trim()];
    const env = Object.fromEntries(
      settings ? settings.split(/\s+/).map((kv) => kv.split('=') as [string, string]) : [],
    );
    const key = `${f.file} ${name}`;
    const s = byKey.get(key) ?? { file: f.file, name, env: {}, blocks: [] };
    Object.assign(s.env, env);
    s.blocks.push(f);
    byKey.set(key, s);
  }
  return [...byKey.values()];
}

describe('the commands shown in the docs, run', () => {
  const open: Session[] = [];
  afterEach(() => vi.restoreAllMocks());
  afterAll(async () => {
    for (const s of open) await s.app?.close();
  });
  it('the README, docs/serving.md, docs/models.md and docs/training.md have such blocks', () => {
    const files = new Set(sessions().map((s) => s.file));
    const expected = ['README.md', 'docs/serving.md', 'docs/models.md', 'docs/training.md'];
    expect([...files]).toEqual(expect.arrayContaining(expected));
  });
  for (const { file, name, env, blocks } of sessions()) {
    it(`${file}: ${name} (${blocks.length} block${blocks.length > 1 ? 's' : ''})`, async () => {
      const s = newSession(env);
      open.push(s);
      for (const f of blocks) await runBlock(s, f);
    }, 120_000);
  }
});

/** The environment table of docs/configuration.md: `| \`A\`, \`B\` | \`1\`, \`2\` | meaning |`. */
function configRows(): { names: string[]; defaults: string }[] {
  const text = readText('docs/configuration.md');
  return [...text.matchAll(/^\| (`[A-Z][A-Z0-9_]+`(?:, `[A-Z][A-Z0-9_]+`)*) \| ([^|]*) \|/gm)].map((m) => ({
    names: [...(m[1] as string).matchAll(/`(\w+)`/g)].map((x) => x[1] as string),
    defaults: (m[2] as string).trim(),
  }));
}

/** A parsed default as the table writes it (the version policy back to its `latest:N` form). */
const shownDefault = (v: unknown): string =>
  typeof v === 'object' && v !== null && 'count' in v ? `latest:${v.count}` : String(v);

describe('docs/configuration.md', () => {
  const defaults = loadConfig({}) as Record<string, unknown>;
  const documented = configRows().flatMap((r) => r.names);
  it('lists every variable that src/config.ts reads, once', () => {
    for (const name of Object.keys(defaults)) expect(documented).toContain(name);
    expect(new Set(documented).size).toBe(documented.length);
  });
  it('lists only variables that src/config.ts reads (an unset one is still validated)', () => {
    for (const name of documented.filter((n) => !(n in defaults))) {
      expect(() => loadConfig({ [name]: ' ' }), name).toThrow(ConfigError);
      expect(() => loadConfig({ [name]: ' ' }), name).toThrow(name);
    }
  });
  it('states the defaults that src/config.ts applies', () => {
    let compared = 0;
    for (const { names, defaults: cell } of configRows()) {
      const values = [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
      if (!/^`[^`]+`(, `[^`]+`)*$/.test(cell) || values.length !== names.length) continue;
      names.forEach((name, k) => {
        expect(`${name}=${values[k]}`).toBe(`${name}=${shownDefault(defaults[name])}`);
      });
      compared++;
    }
    expect(compared).toBeGreaterThan(25);
  });
});

describe('the docker commands (a check, not a run: npm test has no container runtime)', () => {
  const dockerfile = readText('Dockerfile');
  const version = JSON.parse(readText('package.json')).version as string;
  const blocks = ALL_FENCES.filter((f) => f.marker === 'checked: docker');
  const documented = configRows().flatMap((r) => r.names);
  it('name the image, port, models folder and variables that the Dockerfile, package.json and src/config.ts use', () => {
    expect(blocks.length).toBeGreaterThan(0);
    const port = /^EXPOSE (\d+)$/m.exec(dockerfile)?.[1];
    expect(port).toBe(String(loadConfig({}).PORT));
    const modelsDir = /MODELS_DIR=(\S+)/.exec(dockerfile)?.[1];
    for (const item of blocks.flatMap((f) => lexShell(f.body, {}))) {
      if (item.kind !== 'command') continue;
      const w = item.words;
      expect(w).toContain(`dropout-serve:${version}`);
      w.forEach((x, i) => {
        if (x === '-p') expect(w[i + 1]).toBe(`${port}:${port}`);
        if (x === '-v') expect(w[i + 1]).toMatch(new RegExp(`:${modelsDir}(:ro)?$`));
        if (x === '-e') expect(documented).toContain((w[i + 1] as string).split('=')[0]);
      });
    }
  });
});
