/**
 * Demo of the model report: retrain the shipped models in memory with the trainer's own functions
 * (same data, settings and seeds as models/diabetes and models/wine), build a ReportInput from their
 * Monte Carlo predictions, render report pages to a directory and screenshot them in headless Chromium.
 *
 *   npx tsx scripts/report-demo.mts [--out DIR] [--no-screenshots] [--docs] [--synthetic]
 *
 * --out DIR          where to write NAME.html and the screenshots (default: a new temp dir)
 * --no-screenshots   only write the HTML
 * --docs             also write docs/report-diabetes.png and docs/report-wine.png (at 1000 px, to stay small)
 * --synthetic        also render a synthetic heteroscedastic regression (no shipped model has one yet)
 *
 * What is added on top of the plain training run, to show the optional sections with real numbers:
 * diabetes is tuned over hidden ∈ {50, 100} × dropout ∈ {0.1, 0.3, 0.5} by validation NLL (each
 * candidate trained for real); wine gets a softmax temperature fitted on its validation rows by NLL.
 * Screenshots: Chromium driven over --remote-debugging-pipe (Chrome DevTools Protocol, no dependency) so
 * the whole page is captured at its own height, at 1200 px (desktop) and 420 px (phone) CSS width.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Readable, Writable } from 'node:stream';
import { renderReport, type ClassificationRows, type RegressionRows, type ReportInput } from '../src/report/report.js';
import { buildCard } from '../src/train/card.js';
import { readCsvFile, splitRows, toDataset, type Dataset } from '../src/train/data.js';
import { OPSET } from '../src/train/export-onnx.js';
import { softmaxRows } from '../src/train/mlp.js';
import { DEFAULT_TRAIN_OPTIONS, mcPasses, mcRegression, standardise, train, type TrainedModel, type TrainOptions } from '../src/train/train.js';
import { Rng } from '../src/util/rng.js';
import { entropy } from '../src/util/stats.js';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));

function load(file: string, target: string): { data: Dataset; sha256: string; rows: number } {
  const { table, sha256 } = readCsvFile(join(root, 'data', file));
  return { data: toDataset(table, { target }), sha256, rows: table.rows.length };
}

/** The rows the trainer held out for validation (train() splits with this seed). */
function validationRows(data: Dataset, opts: TrainOptions): Dataset {
  return splitRows(data, opts.valSplit, opts.seed * 7919 + 1, 'validation split')[1];
}

function regressionRows(m: TrainedModel, ds: Dataset, samples: number, seed: number): RegressionRows {
  const xs = standardise(ds.x, ds.n, ds.f, m.xMean, m.xStd);
  const mc = mcRegression(m, xs, ds.n, samples, seed);
  return { y: Array.from(ds.y), mean: Array.from(mc.mean), epistemicStd: Array.from(mc.std), aleatoricStd: m.aleatoricStd };
}

/** Logits of every Monte Carlo pass, samples × rows × classes. */
function mcLogits(m: TrainedModel, ds: Dataset, samples: number, seed: number): Float32Array[] {
  const xs = standardise(ds.x, ds.n, ds.f, m.xMean, m.xStd);
  const out: Float32Array[] = [];
  mcPasses(m.net, xs, ds.n, samples, seed, (o) => out.push(Float32Array.from(o)));
  return out;
}

/** MC-averaged probabilities and mutual information with every pass's logits divided by `temperature`. */
function mcProbs(passes: Float32Array[], n: number, k: number, temperature: number): { probs: Float64Array; mi: Float64Array } {
  const probs = new Float64Array(n * k);
  const meanH = new Float64Array(n);
  for (const logits of passes) {
    const p = softmaxRows(Float64Array.from(logits, (v) => v / temperature), n, k);
    for (let i = 0; i < p.length; i++) probs[i]! += p[i]! / passes.length;
    for (let r = 0; r < n; r++) meanH[r]! += entropy(p, r * k, k) / passes.length;
  }
  const mi = Float64Array.from(meanH, (h, r) => Math.max(0, entropy(probs, r * k, k) - h));
  return { probs, mi };
}

function nll(probs: Float64Array, labels: Float64Array, k: number): number {
  let s = 0;
  for (let i = 0; i < labels.length; i++) s -= Math.log(Math.max(probs[i * k + labels[i]!]!, 1e-12));
  return s / labels.length;
}

/** Temperature minimising validation NLL of the MC-averaged probabilities (log grid, then golden section). */
function fitTemperature(passes: Float32Array[], labels: Float64Array, k: number): number {
  const f = (logT: number): number => nll(mcProbs(passes, labels.length, k, Math.exp(logT)).probs, labels, k);
  let best = 0;
  let bestVal = Infinity;
  for (let i = 0; i <= 60; i++) {
    const s = Math.log(0.05) + (i / 60) * (Math.log(20) - Math.log(0.05));
    const v = f(s);
    if (v < bestVal) [best, bestVal] = [s, v];
  }
  const h = (Math.log(20) - Math.log(0.05)) / 60;
  let [a, b] = [best - h, best + h];
  const g = (Math.sqrt(5) - 1) / 2;
  for (let it = 0; it < 40; it++) {
    const c = b - g * (b - a);
    const d = a + g * (b - a);
    if (f(c) < f(d)) b = d;
    else a = c;
  }
  return Math.exp((a + b) / 2);
}

function classificationRows(passes: Float32Array[], ds: Dataset, k: number, temperature: number): ClassificationRows {
  const before = mcProbs(passes, ds.n, k, 1);
  const after = mcProbs(passes, ds.n, k, temperature);
  return { labels: Array.from(ds.y), probs: Array.from(before.probs), probsCalibrated: Array.from(after.probs), mutualInformation: Array.from(after.mi) };
}

function diabetes(): ReportInput {
  const shipped = 'npm run train -- --data data/diabetes.csv --target target --name diabetes --hidden 50 --dropout 0.3 --epochs 300 --test-split 0.2 --seed 0';
  const { data: full, sha256, rows } = load('diabetes.csv', 'target');
  const base: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, hidden: [50], dropout: [0.3], epochs: 300, seed: 0 };
  const [data, test] = splitRows(full, 0.2, base.seed * 7919, 'test split');
  const candidates: { settings: Record<string, number | number[]>; model: TrainedModel; opts: TrainOptions }[] = [];
  for (const hidden of [50, 100]) {
    for (const dropout of [0.1, 0.3, 0.5]) {
      const opts = { ...base, hidden: [hidden], dropout: [dropout] };
      candidates.push({ settings: { hidden: [hidden], dropout, lr: opts.lr, epochs: opts.epochs }, model: train(data, opts, test), opts });
    }
  }
  const scores = candidates.map((c) => c.model.metrics.validation.nll);
  const chosen = scores.indexOf(Math.min(...scores));
  const { model, opts } = candidates[chosen]!;
  const card = buildCard('diabetes', model, opts, { file: 'data/diabetes.csv', sha256, rows }, undefined, 'test-split 0.2 of data (seeded)', OPSET);
  const seed = opts.seed * 7919 + 5;
  return {
    name: 'diabetes',
    task: 'regression',
    command: `npx tsx scripts/report-demo.mts — an in-memory retrain of: ${shipped}, tuned over hidden ∈ {50, 100} × dropout ∈ {0.1, 0.3, 0.5} by validation NLL`,
    card,
    history: model.history,
    bestEpoch: model.bestEpoch,
    tuning: { metric: 'validation NLL', lowerIsBetter: true, candidates: candidates.map((c, i) => ({ settings: c.settings, score: scores[i]! })), chosen },
    regression: {
      validation: regressionRows(model, validationRows(data, opts), opts.mcSamples, seed + 1),
      test: regressionRows(model, test, opts.mcSamples, seed + 2),
    },
  };
}

function wine(): ReportInput {
  const shipped = 'npm run train -- --data data/wine.csv --target class --name wine --hidden 64,64 --dropout 0.5 --epochs 200 --test-split 0.2 --seed 0';
  const { data: full, sha256, rows } = load('wine.csv', 'class');
  const opts: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, hidden: [64, 64], dropout: [0.5], epochs: 200, seed: 0 };
  const [data, test] = splitRows(full, 0.2, opts.seed * 7919, 'test split');
  const model = train(data, opts, test);
  const card = buildCard('wine', model, opts, { file: 'data/wine.csv', sha256, rows }, undefined, 'test-split 0.2 of data (seeded)', OPSET);
  const k = model.labels.length;
  const seed = opts.seed * 7919 + 5;
  const val = validationRows(data, opts);
  const valPasses = mcLogits(model, val, opts.mcSamples, seed + 1);
  const testPasses = mcLogits(model, test, opts.mcSamples, seed + 2);
  const temperature = fitTemperature(valPasses, val.y, k);
  return {
    name: 'wine',
    task: 'classification',
    command: `npx tsx scripts/report-demo.mts — an in-memory retrain of: ${shipped}, with a softmax temperature fitted on the validation rows by NLL`,
    card,
    history: model.history,
    bestEpoch: model.bestEpoch,
    classification: {
      labels: model.labels,
      temperature,
      validation: classificationRows(valPasses, val, k, temperature),
      test: classificationRows(testPasses, test, k, temperature),
    },
  };
}

/** A made-up heteroscedastic regression (noise grows with x), to show that variant of the page. */
function synthetic(): ReportInput {
  const rng = new Rng(7);
  const normal = (): number => rng.normal();
  const split = (n: number): RegressionRows => {
    const y: number[] = [];
    const mean: number[] = [];
    const epi: number[] = [];
    const ale: number[] = [];
    for (let i = 0; i < n; i++) {
      const x = rng.uniform(0, 6);
      const noise = 0.2 + 0.3 * x;
      const e = 0.15 + 0.1 * Math.abs(x - 3);
      const m = Math.sin(x) * 3 + e * normal();
      mean.push(m);
      epi.push(e);
      ale.push(noise);
      y.push(Math.sin(x) * 3 + noise * normal());
    }
    return { y, mean, epistemicStd: epi, aleatoricStd: ale };
  };
  const history = Array.from({ length: 120 }, (_, i) => ({ epoch: i + 1, trainLoss: 1.2 * Math.exp(-i / 25) + 0.35, valLoss: 1.1 * Math.exp(-i / 30) + 0.3 + 0.0006 * Math.max(0, i - 70) }));
  return {
    name: 'synthetic-heteroscedastic',
    task: 'regression',
    command: 'npx tsx scripts/report-demo.mts --synthetic (made-up data, no model)',
    card: { name: 'synthetic-heteroscedastic', task: 'regression', target: 'y', features: ['x'], training: { loss: 'Gaussian NLL' } },
    history,
    bestEpoch: 71,
    regression: { validation: split(150), test: split(1500) },
  };
}

// ---------------------------------------------------------------------------------------------------
// Chromium over the DevTools pipe: fd 3 carries requests, fd 4 responses, each a JSON text ended by NUL.

class Chromium {
  private readonly proc;
  private readonly pending = new Map<number, { ok: (v: Record<string, unknown>) => void; fail: (e: Error) => void }>();
  private readonly waiters: { method: string; sessionId?: string; ok: () => void }[] = [];
  private nextId = 1;
  private buf = '';

  constructor(profile: string) {
    this.proc = spawn(
      'chromium',
      ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--hide-scrollbars', `--user-data-dir=${profile}`, '--remote-debugging-pipe', 'about:blank'],
      { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] },
    );
    this.proc.on('error', (err) => {
      const why = new Error(`cannot run chromium (${err.message}): apt-get install chromium, or pass --no-screenshots`);
      for (const p of this.pending.values()) p.fail(why);
      this.pending.clear();
    });
    (this.proc.stdio[4] as Readable).on('data', (chunk: Buffer) => {
      this.buf += chunk.toString('utf8');
      let end;
      while ((end = this.buf.indexOf('\0')) >= 0) {
        const msg = JSON.parse(this.buf.slice(0, end)) as { id?: number; method?: string; sessionId?: string; result?: Record<string, unknown>; error?: { message: string } };
        this.buf = this.buf.slice(end + 1);
        if (msg.id !== undefined) {
          const p = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          if (msg.error) p?.fail(new Error(msg.error.message));
          else p?.ok(msg.result ?? {});
        } else if (msg.method) {
          const i = this.waiters.findIndex((w) => w.method === msg.method && (w.sessionId === undefined || w.sessionId === msg.sessionId));
          if (i >= 0) this.waiters.splice(i, 1)[0]!.ok();
        }
      }
    });
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((ok, fail) => {
      this.pending.set(id, { ok, fail });
      (this.proc.stdio[3] as Writable).write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  }

  event(method: string, sessionId?: string): Promise<void> {
    return new Promise((ok) => this.waiters.push({ method, sessionId, ok }));
  }

  /** Full-page PNG of a file at a CSS width (mobile emulation below 600 px). */
  async screenshot(file: string, width: number): Promise<Buffer> {
    const { targetId } = (await this.send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await this.send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    await this.send('Page.enable', {}, sessionId);
    await this.send('Emulation.setDeviceMetricsOverride', { width, height: 900, deviceScaleFactor: 1, mobile: width < 600 }, sessionId);
    const loaded = this.event('Page.loadEventFired', sessionId);
    await this.send('Page.navigate', { url: pathToFileURL(file).href }, sessionId);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([loaded, new Promise((_, fail) => (timer = setTimeout(() => fail(new Error(`${file} did not load in 60 s`)), 60_000)))]);
    clearTimeout(timer);
    const metrics = (await this.send('Page.getLayoutMetrics', {}, sessionId)) as { cssContentSize: { width: number; height: number } };
    const height = Math.ceil(metrics.cssContentSize.height);
    const shot = (await this.send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true, clip: { x: 0, y: 0, width, height, scale: 1 } }, sessionId)) as { data: string };
    await this.send('Target.closeTarget', { targetId });
    return Buffer.from(shot.data, 'base64');
  }

  close(): void {
    this.proc.kill();
  }
}

const { values } = parseArgs({
  options: { out: { type: 'string' }, 'no-screenshots': { type: 'boolean' }, docs: { type: 'boolean' }, synthetic: { type: 'boolean' } },
});
const out = resolve(values.out ?? mkdtempSync(join(tmpdir(), 'report-demo-')));
mkdirSync(out, { recursive: true });
const inputs = [diabetes(), wine(), ...(values.synthetic ? [synthetic()] : [])];
const pages: [string, string][] = [];
for (const input of inputs) {
  const file = join(out, `${input.name}.html`);
  const html = renderReport(input);
  writeFileSync(file, html);
  pages.push([input.name, file]);
  process.stdout.write(`wrote ${file} (${html.length} bytes)\n`);
}
if (!values['no-screenshots']) {
  const profile = mkdtempSync(join(tmpdir(), 'report-demo-chromium-'));
  const browser = new Chromium(profile);
  try {
    for (const [name, file] of pages) {
      for (const [suffix, width] of [['', 1200], ['-phone', 420]] as const) {
        const png = await browser.screenshot(file, width);
        const target = join(out, `${name}${suffix}.png`);
        writeFileSync(target, png);
        process.stdout.write(`wrote ${target} (${png.length} bytes)\n`);
      }
      if (values.docs && (name === 'diabetes' || name === 'wine')) {
        const png = await browser.screenshot(file, 1000);
        mkdirSync(join(root, 'docs'), { recursive: true });
        writeFileSync(join(root, 'docs', `report-${name}.png`), png);
        process.stdout.write(`wrote docs/report-${name}.png (${png.length} bytes)\n`);
      }
    }
  } finally {
    browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
