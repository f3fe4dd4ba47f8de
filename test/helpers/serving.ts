/**
 * The graph rewrites of src/model/onnx/ (inspect, relax-batch, fold, rewrite) run through onnxruntime directly, the way a loader uses them
 * (inspect → relaxBatch → probe → foldAffine → eval and MC graphs), so the export-habit tests and the
 * load-time self-check can be tested without the loader.
 */
import { foldAffine } from '../../src/model/onnx/fold.js';
import { type GraphInfo, inspect } from '../../src/model/onnx/inspect.js';
import { type BatchRelaxation, relaxBatch } from '../../src/model/onnx/relax-batch.js';
import {
  evalGraph,
  inputTilePoint,
  maskInputName,
  mcGraph,
  probeGraph,
  repeatsInputName,
  sharedPrefixPoint,
} from '../../src/model/onnx/rewrite.js';
import type { ServingRuns } from '../../src/model/onnx/self-check.js';
import { type OrtSession, createSession } from '../../src/model/onnx/ort.js';

export interface Serving {
  info: GraphInfo;
  relaxed: BatchRelaxation | null;
  runs: ServingRuns;
  /** true when the shared-prefix MC graph was built (it is runs.mcGraphs[1]). */
  sharedPrefix: boolean;
  close(): Promise<void>;
}

export interface ServingOptions {
  maxRunRows?: number;
  sharedPrefix?: boolean;
  outputName?: string;
  /** Change an MC graph's bytes before its session is made (to rebuild a broken graph on purpose). */
  alterMc?: (bytes: Uint8Array) => Uint8Array;
}

export async function serving(bytes: Uint8Array, opts: ServingOptions = {}): Promise<Serving> {
  const { model, info } = inspect(bytes);
  const relaxed = relaxBatch(model, info);
  const F = info.input.dims![1]!;
  const outputName = opts.outputName ?? info.outputs[0]!.name;
  const sessions: OrtSession[] = [];
  const make = async (b: Uint8Array): Promise<OrtSession> => {
    const s = await createSession(b, { intraOpThreads: 1 });
    sessions.push(s);
    return s;
  };
  const live = info.dropouts.filter((d) => d.ratio > 0);
  const probe = await createSession(probeGraph(model, info), { intraOpThreads: 1 });
  const probed = await probe.run({ [info.input.name]: { data: new Float32Array(2 * F), dims: [2, F] } }, [
    outputName,
    ...new Set(live.map((d) => d.input)),
  ]);
  await probe.release();
  const outDims = probed[outputName]!.dims;
  const outputSize = outDims.length === 1 ? 1 : outDims[1]!;
  const masks = live.map((d, k) => ({ input: maskInputName(k), rowDims: probed[d.input]!.dims.slice(1) }));
  foldAffine(model);
  const evalSession = await make(evalGraph(model, info));
  const mcGraphs: ServingRuns['mcGraphs'] = [];
  const mcRunner =
    (session: OrtSession, tileRanks: number[]) => async (x: Float32Array, rows: number, samples: number) => {
      const feeds: Parameters<OrtSession['run']>[0] = { [info.input.name]: { data: x, dims: [rows, F] } };
      tileRanks.forEach((rank, j) => {
        const r = new BigInt64Array(rank).fill(1n);
        r[0] = BigInt(samples);
        feeds[repeatsInputName(j)] = { data: r, dims: [rank] };
      });
      for (const m of masks) {
        const size = m.rowDims.reduce((a, b) => a * b, 1);
        feeds[m.input] = {
          data: new Float32Array(samples * rows * size).fill(1),
          dims: [samples * rows, ...m.rowDims],
        };
      }
      return (await session.run(feeds, [outputName]))[outputName]!.data;
    };
  let shared = false;
  if (masks.length) {
    const alter = opts.alterMc ?? ((b: Uint8Array) => b);
    mcGraphs.push({
      label: 'plain',
      runOnes: mcRunner(await make(alter(mcGraph(model, info, inputTilePoint(info)))), [2]),
    });
    const point = opts.sharedPrefix === false ? null : sharedPrefixPoint(model, info);
    if (point) {
      const p = await createSession(probeGraph(model, info, point.tensors), { intraOpThreads: 1 });
      const out = await p.run({ [info.input.name]: { data: new Float32Array(2 * F), dims: [2, F] } }, point.tensors);
      await p.release();
      mcGraphs.push({
        label: 'shared-prefix',
        runOnes: mcRunner(
          await make(alter(mcGraph(model, info, point))),
          point.tensors.map((t) => out[t]!.dims.length),
        ),
      });
      shared = true;
    }
  }
  return {
    info,
    relaxed,
    sharedPrefix: shared,
    runs: {
      features: F,
      outputSize,
      maxRunRows: opts.maxRunRows ?? 4096,
      evalRun: async (x, rows) =>
        (await evalSession.run({ [info.input.name]: { data: x, dims: [rows, F] } }, [outputName]))[outputName]!.data,
      mcGraphs,
    },
    close: async () => {
      await Promise.all(sessions.map((s) => s.release()));
    },
  };
}
