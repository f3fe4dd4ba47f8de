/**
 * `npm run bench -- tensors [--smoke]`: the tensor models of issue 19 (test/fixtures/tensor), served the way
 * the repository serves them (src/model/formats.ts loadModel, one onnxruntime thread), against their own
 * predict and against PyTorch with one thread (bench/torch_tensor_baseline.py, run before and after ours in
 * the same invocation; its two medians are averaged):
 * - mobilenet_v3_small, 1 image, T = 100: MC vs our predict (≤ 1.5×: the shared prefix runs the feature
 *   extractor once) and PyTorch's loop of 100 train-mode passes vs our MC (≥ 30×);
 * - the transformer text classifier (dropout in every layer), batch 8, T = 100, vs PyTorch's one tiled
 *   batch of 800 (≤ 1.0×);
 * - the UNet, 1 image, per-pixel MC T = 50, vs PyTorch's tiled batch of 50 (≤ 1.0×);
 * - the RSS of each: its growth from before the load to the peak during MC, against the run budget.
 * `--smoke`: a few samples, one short round, no PyTorch; it checks the answers' shapes (`runTensorCases`).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadModel } from '../src/model/formats.js';
import {
  DEFAULT_RUNTIME_OPTIONS,
  type InputTensor,
  type Model,
  type RuntimeOptions,
  type TensorMcResult,
} from '../src/model/model.js';
import { ab, fmtUs, record } from './lib.js';

const DIR = 'test/fixtures/tensor';
const MB = 1024 * 1024;
/** The activation budget of one MC run each model gets here (RuntimeOptions.maxRunBytes, issue 19 item 5). */
const RUN_BUDGET_BYTES = 256 * MB;

interface FixtureInput {
  name: string;
  datatype: 'FP32' | 'INT64';
  shape: number[];
  offset: number;
}
const REFERENCES = (): Record<string, { inputs: FixtureInput[] }> =>
  JSON.parse(readFileSync(`${DIR}/references.json`, 'utf8')).fixtures;

/** The first `rows` rows of a fixture's stored inputs (NAME.input.bin), each in its own datatype. */
export function fixtureInputs(name: string, rows: number): InputTensor[] {
  const bin = readFileSync(`${DIR}/${name}.input.bin`);
  return REFERENCES()[name]!.inputs.map((input) => {
    const perRow = input.shape.slice(1).reduce((a, b) => a * b, 1);
    const width = input.datatype === 'FP32' ? 4 : 8;
    const start = bin.byteOffset + input.offset;
    const bytes = bin.buffer.slice(start, start + rows * perRow * width);
    const data = input.datatype === 'FP32' ? new Float32Array(bytes) : new BigInt64Array(bytes);
    return { name: input.name, dims: [rows, ...input.shape.slice(1)], data };
  });
}

/**
 * A fixture loaded as the repository loads a model (formats.ts), one onnxruntime thread; throws "model X did
 * not load as a tensor model: …" when the loader refuses it or serves it as a tabular model.
 */
export async function loadTensorModel(
  name: string,
  file = `${DIR}/${name}.onnx`,
  budgetBytes = RUN_BUDGET_BYTES,
): Promise<Model> {
  // maxRunBytes: the run budget of the tensor contract; the spread keeps it for loaders that read it
  const runtime: RuntimeOptions & { maxRunBytes?: number } = {
    ...DEFAULT_RUNTIME_OPTIONS,
    intraOpThreads: 1,
    maxRunBytes: budgetBytes,
  };
  let model: Model;
  try {
    model = await loadModel({ name, file, card: null }, runtime);
  } catch (err) {
    throw new Error(`model ${name} did not load as a tensor model: ${(err as Error).message}`);
  }
  if (model.layout !== 'tensor' || !model.predictTensors || !model.sampleTensors) {
    await model.close();
    throw new Error(`model ${name} did not load as a tensor model: layout ${model.layout ?? 'tabular'}`);
  }
  return model;
}

/** One bench case: a fixture, its rows and T, and what PyTorch's baseline calls it. */
export interface TensorCase {
  fixture: string;
  label: string;
  rows: number;
  samples: number;
  /** The full output dims an answer must have. */
  outputDims: number[];
}

export const CASES: readonly TensorCase[] = [
  { fixture: 'mobilenet', label: 'mobilenet_v3_small, 1 image', rows: 1, samples: 100, outputDims: [1, 10] },
  { fixture: 'text_classifier', label: 'transformer, batch 8', rows: 8, samples: 100, outputDims: [8, 3] },
  { fixture: 'unet', label: 'UNet, 1 image, per pixel', rows: 1, samples: 50, outputDims: [1, 3, 32, 32] },
];

/** PyTorch's medians in seconds per case and mode (bench/torch_tensor_baseline.py's JSON). */
type TorchTimes = Record<string, Record<string, number>>;

function torchTimes(): TorchTimes | null {
  const run = spawnSync('/usr/bin/python3', ['bench/torch_tensor_baseline.py', '5'], { encoding: 'utf8' });
  if (run.status !== 0) {
    process.stderr.write(`  PyTorch baseline skipped: ${run.error?.message ?? run.stderr.trim().split('\n').pop()}\n`);
    return null;
  }
  return JSON.parse(run.stdout) as TorchTimes;
}

/** The mean of two baseline runs' medians (µs), or null when either has no such figure. */
const torchUs = (runs: (TorchTimes | null)[], fixture: string, mode: string): number | null => {
  const values = runs.map((r) => r?.[fixture]?.[mode]);
  return values.every((v) => v !== undefined) ? (values.reduce((a, b) => a! + b!, 0)! / values.length) * 1e6 : null;
};

/** What one case measured (µs per call, RSS in MB), and its last MC answer. */
export interface CaseResult {
  tensorCase: TensorCase;
  /** T as run (a few in the smoke run). */
  samples: number;
  mcUs: number;
  predictUs: number;
  rssBeforeMb: number;
  rssPeakMb: number;
  answer: TensorMcResult;
}

const rssMbNow = (): number => process.memoryUsage.rss() / MB;

/** Load a case's model, time MC against predict (alternated rounds), and watch RSS while it runs. */
async function measureCase(c: TensorCase, smoke: boolean): Promise<CaseResult> {
  const rssBeforeMb = rssMbNow();
  let rssPeakMb = rssBeforeMb;
  const model = await loadTensorModel(c.fixture);
  const timer = setInterval(() => (rssPeakMb = Math.max(rssPeakMb, rssMbNow())), 5);
  try {
    const inputs = fixtureInputs(c.fixture, c.rows);
    const samples = smoke ? 4 : c.samples;
    const opts = { samples, interval: 0.9, seed: 1 };
    const r = await ab(
      () => model.sampleTensors!(inputs, c.rows, opts),
      () => model.predictTensors!(inputs, c.rows),
      smoke ? 1 : 7,
      smoke ? 20 : 200,
    );
    const answer = await model.sampleTensors!(inputs, c.rows, opts);
    rssPeakMb = Math.max(rssPeakMb, rssMbNow());
    return { tensorCase: c, samples, mcUs: r.aUs, predictUs: r.bUs, rssBeforeMb, rssPeakMb, answer };
  } finally {
    clearInterval(timer);
    await model.close();
  }
}

/** Every case in turn (one model loaded at a time). */
export async function runTensorCases(smoke: boolean): Promise<CaseResult[]> {
  const out: CaseResult[] = [];
  for (const c of CASES) out.push(await measureCase(c, smoke));
  return out;
}

function recordCase(r: CaseResult, torch: (TorchTimes | null)[], smoke: boolean): void {
  const c = r.tensorCase;
  // a smoke run's few samples say nothing about the targets
  const judge = (pass: boolean): boolean | null => (smoke ? null : pass);
  const T = `T=${r.samples}`;
  if (c.fixture === 'mobilenet') {
    const ratio = r.mcUs / r.predictUs;
    const row = { a: fmtUs(r.mcUs), b: fmtUs(r.predictUs), ratio, target: '≤ 1.5×', pass: judge(ratio <= 1.5) };
    record({ section: 'tensors', name: `${c.label}: MC ${T} vs our predict`, ...row });
    const loop = torchUs(torch, c.fixture, 'mc_loop');
    if (loop !== null) {
      const speedup = loop / r.mcUs;
      const name = `${c.label}: PyTorch loop of ${r.samples} train-mode passes vs our MC ${T}`;
      const row = { a: fmtUs(loop), b: fmtUs(r.mcUs), ratio: speedup, target: 'speedup ≥ 30×', pass: speedup >= 30 };
      record({ section: 'tensors', name, ...row });
    }
  }
  const tiled = torchUs(torch, c.fixture, 'mc_tiled');
  if (tiled !== null && c.fixture !== 'mobilenet') {
    const ratio = r.mcUs / tiled;
    const name = `${c.label}: our MC ${T} vs PyTorch's one tiled batch of ${c.rows * r.samples}`;
    record({ section: 'tensors', name, a: fmtUs(r.mcUs), b: fmtUs(tiled), ratio, target: '≤ 1.0×', pass: ratio <= 1 });
  }
  const growth = r.rssPeakMb - r.rssBeforeMb;
  record({
    section: 'tensors',
    name: `${c.label}: RSS before the load → peak during MC ${T} (MB), growth vs the run budget`,
    a: `${r.rssBeforeMb.toFixed(0)} → ${r.rssPeakMb.toFixed(0)}`,
    b: `${(RUN_BUDGET_BYTES / MB).toFixed(0)} MB`,
    ratio: growth / (RUN_BUDGET_BYTES / MB),
    target: 'growth ≤ the budget',
    pass: judge(growth <= RUN_BUDGET_BYTES / MB),
  });
}

/** The section: PyTorch, our cases, PyTorch again (the machine is shared: drift is split between the sides). */
export async function tensors(smoke: boolean): Promise<void> {
  process.stderr.write(`tensor models (issue 19; one onnxruntime thread, one torch thread${smoke ? '; smoke' : ''})\n`);
  const before = smoke ? null : torchTimes();
  const results = await runTensorCases(smoke);
  const after = smoke || before === null ? null : torchTimes();
  for (const r of results) recordCase(r, [before, after], smoke);
}
