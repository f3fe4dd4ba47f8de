/**
 * The model report pages of the shipped models and their screenshots, in one command:
 *
 *   npm run report:shipped      (= npx tsx scripts/report-shots.mts --retrain --docs)
 *
 * retrains every shipped model with its docs/training.md command (scripts/shipped-models.ts) into models/ — the
 * same model.onnx bytes; model.json, report.md and report.html rewritten — and renders each
 * models/NAME/report.html in headless Chromium to docs/report-NAME.png.
 *
 *   npx tsx scripts/report-shots.mts [--retrain] [--docs] [--out DIR] [--from FILE]...
 *
 * --retrain     retrain the shipped models first (npm run train with their docs/training.md arguments)
 * --from FILE   screenshot this report page (repeatable; default: models/NAME/report.html of every
 *               shipped model); the picture's name is the page's folder (models/NAME/report.html) or stem
 * --docs        write docs/report-NAME.png (1000 px CSS width, the whole page) for each page
 * --out DIR     write NAME.png (1200 px) and NAME-phone.png (420 px) there
 *
 * Chromium (Debian's `chromium` package) is driven over --remote-debugging-pipe (Chrome DevTools
 * Protocol, no dependency), so the whole page is captured at its own height. The page loads nothing
 * (its CSP is default-src 'none'), so the pictures depend only on the HTML and the browser.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Readable, Writable } from 'node:stream';
import { run } from '../src/train/cli.js';
import { SHIPPED_MODELS } from './shipped-models.js';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));

// ---------------------------------------------------------------------------------------------------
// Chromium over the DevTools pipe: fd 3 carries requests, fd 4 responses, each a JSON text ended by NUL.

class Chromium {
  private readonly proc;
  private readonly pending = new Map<number, { ok: (v: Record<string, unknown>) => void; fail: (e: Error) => void }>();
  private readonly waiters: { method: string; sessionId?: string; ok: () => void }[] = [];
  private nextId = 1;
  private buf = '';
  private failed = false;

  constructor(profile: string) {
    this.proc = spawn(
      'chromium',
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--hide-scrollbars',
        `--user-data-dir=${profile}`,
        '--remote-debugging-pipe',
        'about:blank',
      ],
      { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] },
    );
    this.proc.on('error', (err) => {
      this.failed = true;
      const why = new Error(
        `cannot run chromium (${err.message}): apt-get install chromium (Debian), or leave out --docs and --out`,
      );
      for (const p of this.pending.values()) p.fail(why);
      this.pending.clear();
    });
    (this.proc.stdio[4] as Readable).on('data', (chunk: Buffer) => {
      this.buf += chunk.toString('utf8');
      for (let end = this.buf.indexOf('\0'); end >= 0; end = this.buf.indexOf('\0')) {
        const msg = JSON.parse(this.buf.slice(0, end)) as {
          id?: number;
          method?: string;
          sessionId?: string;
          result?: Record<string, unknown>;
          error?: { message: string };
        };
        this.buf = this.buf.slice(end + 1);
        if (msg.id !== undefined) {
          const p = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          if (msg.error) p?.fail(new Error(msg.error.message));
          else p?.ok(msg.result ?? {});
        } else if (msg.method) {
          const i = this.waiters.findIndex(
            (w) => w.method === msg.method && (w.sessionId === undefined || w.sessionId === msg.sessionId),
          );
          if (i >= 0) this.waiters.splice(i, 1)[0]!.ok();
        }
      }
    });
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((ok, fail) => {
      this.pending.set(id, { ok, fail });
      (this.proc.stdio[3] as Writable).write(
        `${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`,
      );
    });
  }

  event(method: string, sessionId?: string): Promise<void> {
    return new Promise((ok) => this.waiters.push({ method, sessionId, ok }));
  }

  /** Full-page PNG of a file at a CSS width (mobile emulation below 600 px). */
  async screenshot(file: string, width: number): Promise<Buffer> {
    const { targetId } = (await this.send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await this.send('Target.attachToTarget', { targetId, flatten: true })) as {
      sessionId: string;
    };
    await this.send('Page.enable', {}, sessionId);
    await this.send(
      'Emulation.setDeviceMetricsOverride',
      { width, height: 900, deviceScaleFactor: 1, mobile: width < 600 },
      sessionId,
    );
    const loaded = this.event('Page.loadEventFired', sessionId);
    await this.send('Page.navigate', { url: pathToFileURL(file).href }, sessionId);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      loaded,
      new Promise((_, fail) => (timer = setTimeout(() => fail(new Error(`${file} did not load in 60 s`)), 60_000))),
    ]);
    clearTimeout(timer);
    const metrics = (await this.send('Page.getLayoutMetrics', {}, sessionId)) as {
      cssContentSize: { width: number; height: number };
    };
    const height = Math.ceil(metrics.cssContentSize.height);
    const shot = (await this.send(
      'Page.captureScreenshot',
      { format: 'png', captureBeyondViewport: true, clip: { x: 0, y: 0, width, height, scale: 1 } },
      sessionId,
    )) as { data: string };
    await this.send('Target.closeTarget', { targetId });
    return Buffer.from(shot.data, 'base64');
  }

  /** Stop the browser and wait until it exited (it writes to its profile until then). */
  async close(): Promise<void> {
    if (this.failed || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((ok) => this.proc.once('exit', ok));
    this.proc.kill();
    await exited;
  }
}

const { values } = parseArgs({
  options: {
    retrain: { type: 'boolean' },
    docs: { type: 'boolean' },
    out: { type: 'string' },
    from: { type: 'string', multiple: true },
  },
});
process.chdir(root);
if (values.retrain) {
  for (const [name, args] of Object.entries(SHIPPED_MODELS)) {
    process.stdout.write(`npm run train -- ${args.join(' ')}\n`);
    const code = await run([...args, '--quiet']);
    if (code !== 0) throw new Error(`training ${name} failed (exit code ${code})`);
  }
}
const files = values.from ?? Object.keys(SHIPPED_MODELS).map((name) => join('models', name, 'report.html'));
const pages = files.map((f) => {
  const file = resolve(f);
  if (!existsSync(file)) throw new Error(`${f} does not exist (train the model first, or pass --retrain)`);
  return { name: basename(file) === 'report.html' ? basename(dirname(file)) : basename(file, extname(file)), file };
});
const out = values.out ? resolve(values.out) : undefined;
if (out) mkdirSync(out, { recursive: true });
if (!values.docs && !out) process.stdout.write('nothing to screenshot: pass --docs and/or --out DIR\n');
else {
  const profile = mkdtempSync(join(tmpdir(), 'report-shots-chromium-'));
  const browser = new Chromium(profile);
  try {
    for (const { name, file } of pages) {
      const shots: [string, number][] = [
        ...(values.docs ? ([[join(root, 'docs', `report-${name}.png`), 1000]] as [string, number][]) : []),
        ...(out
          ? ([
              [join(out, `${name}.png`), 1200],
              [join(out, `${name}-phone.png`), 420],
            ] as [string, number][])
          : []),
      ];
      for (const [target, width] of shots) {
        mkdirSync(dirname(target), { recursive: true });
        const png = await browser.screenshot(file, width);
        writeFileSync(target, png);
        process.stdout.write(`wrote ${target} (${png.length} bytes, ${width} px wide)\n`);
      }
    }
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true, maxRetries: 5 });
  }
}
