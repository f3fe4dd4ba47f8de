/**
 * The cost of dropout masks drawn in the graph (graph-masks.ts) against the host-mask path (masks.ts
 * MaskStream filled in JS/WebAssembly and fed as inputs), one onnxruntime thread, in-process:
 *  1. a shipped tabular model (models/diabetes), MC T = 100, one row: OnnxModel.sample() (host masks,
 *     as served) against the same work with the in-graph masks (the same MC graph shape, shared prefix
 *     as served, the same accumulation: the raw output summed to mean and std), and each path's run
 *     alone (masks + session.run);
 *  2. an attention-sized Dropout: softmax weights [8·4, 16, 16] repeated T = 100 times in the graph
 *     ([3200, 16, 16], 819 200 mask values), host masks vs in-graph masks.
 * Paired and alternating (the order flips every round), median over rounds of each path's mean time
 * per call and of the per-round ratio.
 *   npx tsx test/model/onnx/graph-masks-cost.mts [rounds=21] [callsPerRound=20]
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_RUNTIME_OPTIONS } from '../../../src/model/model.js';
import { MASK_KEYS_INPUT, hashMaskedModel, maskKeys } from '../../../src/model/onnx/graph-masks.js';
import { inspect } from '../../../src/model/onnx/inspect.js';
import { MaskStream } from '../../../src/model/onnx/masks.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import { type OrtSession, createSession } from '../../../src/model/onnx/ort.js';
import {
  inputTilePoint,
  maskInputName,
  mcGraph,
  repeatsInputName,
  sharedPrefixPoint,
} from '../../../src/model/onnx/rewrite.js';
import { DataType } from '../../../src/onnx-proto/proto.js';
import { f32, model, vi } from '../../helpers/onnx.js';

const ROUNDS = Number(process.argv[2] ?? 21);
const CALLS = Number(process.argv[3] ?? 20);
const T = 100;
const opts = { intraOpThreads: 1 };
type Feeds = Parameters<OrtSession['run']>[0];

async function timeCalls(f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < CALLS; i++) await f();
  return (performance.now() - t0) / CALLS;
}
const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

/** Paired, alternating rounds of `a` and `b`: medians of ms per call and of the ratio b/a. */
async function compare(label: string, a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<void> {
  // warm-up: first runs allocate onnxruntime's buffers
  for (let i = 0; i < 5; i++) {
    await a();
    await b();
  }
  const ta: number[] = [];
  const tb: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) {
      ta.push(await timeCalls(a));
      tb.push(await timeCalls(b));
    } else {
      tb.push(await timeCalls(b));
      ta.push(await timeCalls(a));
    }
  }
  const ratio = median(ta.map((x, i) => tb[i]! / x));
  console.log(
    `${label}: host ${median(ta).toFixed(3)} ms, in-graph ${median(tb).toFixed(3)} ms, in-graph/host ${ratio.toFixed(2)} (median of ${ROUNDS} rounds × ${CALLS} calls)`,
  );
}

/** Mean and std over the samples of a [T, K] output (the accumulation sample() does, in both paths). */
function summarise(out: Float32Array, K: number): Float64Array {
  const s = new Float64Array(2 * K);
  for (let i = 0; i < out.length; i++) s[i % K] = s[i % K]! + out[i]!;
  for (let k = 0; k < K; k++) s[k] = s[k]! / (out.length / K);
  for (let i = 0; i < out.length; i++) s[K + (i % K)] = s[K + (i % K)]! + (out[i]! - s[i % K]!) ** 2;
  return s;
}

async function tabular(): Promise<void> {
  const file = 'models/diabetes/model.onnx';
  const host = await OnnxModel.load('diabetes', file, 'models/diabetes/model.json', DEFAULT_RUNTIME_OPTIONS);
  const F = host.features.length;
  const x = Float32Array.from(host.featureStats!.mean);
  const { model: m, info } = inspect(readFileSync(file));
  const at = sharedPrefixPoint(m, info) ?? inputTilePoint(info);
  const ranks = at.tensors.map(() => 2);
  const live = info.dropouts.filter((d) => d.ratio > 0).length;
  const inGraph = await createSession(mcGraph(m, info, at, hashMaskedModel), opts);
  const hostMasks = await createSession(mcGraph(m, info, at), opts);
  const repeats = (): Feeds =>
    Object.fromEntries(
      ranks.map((rank, j) => [
        repeatsInputName(j),
        { data: BigInt64Array.of(BigInt(T), ...Array(rank - 1).fill(1n)), dims: [rank] },
      ]),
    );
  let run = 0;
  const graphRun = () =>
    inGraph.run(
      {
        [info.input.name]: { data: x, dims: [1, F] },
        ...repeats(),
        [MASK_KEYS_INPUT]: { data: maskKeys(1, run++, live), dims: [live] },
      },
      ['prediction'],
    );
  // the host path's masks: one per live dropout, [T, width] (probed by the served model)
  const widths = (host as unknown as { io: { masks: { rowSize: number; ratio: number }[] } }).io.masks;
  const bufs = widths.map((w) => new Float32Array(T * w.rowSize));
  const hostRun = () => {
    const stream = new MaskStream(run++);
    const feeds: Feeds = { [info.input.name]: { data: x, dims: [1, F] }, ...repeats() };
    widths.forEach((w, k) => {
      stream.fill(bufs[k]!, 0, bufs[k]!.length, w.ratio);
      feeds[maskInputName(k)] = { data: bufs[k]!, dims: [T, w.rowSize] };
    });
    return hostMasks.run(feeds, ['prediction']);
  };
  await compare(`tabular diabetes, 1 row, T=${T}, run alone`, hostRun, graphRun);
  await compare(
    `tabular diabetes, 1 row, T=${T}, sample() vs in-graph run + mean/std`,
    () => host.sample(x, 1, { samples: T, interval: 0.9 }),
    async () => summarise((await graphRun()).prediction!.data, 1),
  );
  await Promise.all([host.close(), inGraph.release(), hostMasks.release()]);
}

async function attention(): Promise<void> {
  const H = 4;
  const L = 16;
  const N = 8;
  const F = H * L * L;
  const bytes = model({
    opset: 14,
    nodes: [
      { op_type: 'Reshape', input: ['x', 'heads_shape'], output: ['s'] },
      { op_type: 'Softmax', input: ['s'], output: ['w'] },
      { op_type: 'Dropout', input: ['w', 'ratio', 'tm'], output: ['a'] },
      { op_type: 'Reshape', input: ['a', 'rows_shape'], output: ['y'] },
    ],
    inits: [
      { name: 'heads_shape', dims: [3], data_type: DataType.INT64, int64_data: [-1, L, L] },
      { name: 'rows_shape', dims: [2], data_type: DataType.INT64, int64_data: [-1, F] },
      f32('ratio', [], [0.1]),
      { name: 'tm', dims: [], data_type: DataType.BOOL, raw_data: new Uint8Array([1]) },
    ],
    inputs: [vi('x', DataType.FLOAT, ['batch', F])],
    outputs: [vi('y', DataType.FLOAT, ['batch', F])],
  });
  const { model: m, info } = inspect(bytes);
  const inGraph = await createSession(mcGraph(m, info, inputTilePoint(info), hashMaskedModel), opts);
  const hostMasks = await createSession(mcGraph(m, info, inputTilePoint(info)), opts);
  const x = Float32Array.from({ length: N * F }, (_, i) => Math.sin(i));
  const base = (): Feeds => ({
    x: { data: x, dims: [N, F] },
    [repeatsInputName(0)]: { data: BigInt64Array.of(BigInt(T), 1n), dims: [2] },
  });
  const buf = new Float32Array(T * N * F);
  let run = 0;
  const hostRun = () => {
    new MaskStream(run++).fill(buf, 0, buf.length, 0.1);
    return hostMasks.run({ ...base(), [maskInputName(0)]: { data: buf, dims: [T * N * H, L, L] } }, ['y']);
  };
  const graphRun = () =>
    inGraph.run({ ...base(), [MASK_KEYS_INPUT]: { data: maskKeys(1, run++, 1), dims: [1] } }, ['y']);
  await compare(`attention [${N}·${H}, ${L}, ${L}] × T=${T} (${T * N * F} mask values), run`, hostRun, graphRun);
  await Promise.all([inGraph.release(), hostMasks.release()]);
}

await tabular();
await attention();
