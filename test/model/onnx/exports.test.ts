/**
 * Every PyTorch export habit of issue 12 (fixtures made by test/fixtures/torch/make_habits.py and
 * make_fixtures.py): the graph rewrites serve it, predict equals torch's model.eval(), Monte Carlo
 * statistics equal torch's own Monte Carlo (many train-mode passes), and the MC graph runs at batch 1,
 * 32 and in chunks. The fixtures load from their original files through the real loader (a fixed
 * batch is relaxed there); test/server/exports-http.test.ts serves the same files over HTTP.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelFormatError, inspect } from '../../../src/model/onnx/inspect.js';
import { relaxBatch } from '../../../src/model/onnx/relax-batch.js';
import {
  MC_ROWS_DIM,
  evalGraph,
  inputTilePoint,
  mcGraph,
  probeGraph,
  sharedPrefixPoint,
} from '../../../src/model/onnx/rewrite.js';
import { selfCheck, selfCheckPlan } from '../../../src/model/onnx/self-check.js';
import type { ClassificationStats, RegressionStats } from '../../../src/uncertainty/record.js';
import { DEFAULT_RUNTIME_OPTIONS } from '../../../src/model/model.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import { DataType, decodeModel, encodeModel } from '../../../src/onnx-proto/proto.js';
import { serving } from '../../helpers/serving.js';

const fx = 'test/fixtures/torch';
const dir = mkdtempSync(join(tmpdir(), 'ds-exports-'));

interface McRef {
  row: number;
  outputs: { mean: number[]; std: number[]; kurtosis: number[] }[];
  entropy?: number;
  mutual_information?: number;
  entropy_each_std?: number;
}
interface Fixture {
  inputs: number[][];
  outputs: Record<string, number[][] | number[]>;
  dropout: number[];
  mc: McRef[];
}
const habits = JSON.parse(readFileSync(join(fx, 'habits.json'), 'utf8')) as {
  mc_samples: number;
  fixtures: Record<string, Fixture>;
};
const NT = habits.mc_samples;
const bytesOf = (file: string): Uint8Array => readFileSync(join(fx, file));

/**
 * Tolerances for comparing our T-sample Monte Carlo estimate with torch's NT-sample one (independent
 * estimates of the same distribution), 5 standard errors each:
 *  - a mean: SE = σ·√(1/T + 1/NT);
 *  - a standard deviation, relative: Var(s²) ≈ σ⁴(κ − 1)/n, so SE(s)/σ ≈ √((κ − 1)/(4n)) per estimate,
 *    with κ the kurtosis torch measured (dropout outputs are far from Gaussian: κ up to ≈ 10 here).
 */
const meanTol = (sd: number, T: number): number => 5 * sd * Math.sqrt(1 / T + 1 / NT);
const stdTol = (kurtosis: number, T: number): number => 5 * Math.sqrt(((kurtosis - 1) / 4) * (1 / T + 1 / NT));

function cardFor(file: string, extra: Record<string, unknown> = {}): string | null {
  let card: Record<string, unknown> = {};
  try {
    card = JSON.parse(readFileSync(join(fx, file.replace(/\.onnx$/, '.json')), 'utf8')) as Record<string, unknown>;
  } catch {
    if (Object.keys(extra).length === 0) return null;
  }
  const path = join(dir, `${file}.${Object.keys(extra).join('-') || 'card'}.json`);
  writeFileSync(path, JSON.stringify({ ...card, ...extra }));
  return path;
}

const served = Object.keys(habits.fixtures).filter((f) => !f.includes('concat'));

describe('export habits: what relaxBatch and the rewrites make of each fixture', () => {
  it('a fixed batch of 1 is relaxed (and said so); dynamic exports are left alone', () => {
    const relax = (file: string) => {
      const { model, info } = inspect(bytesOf(file));
      return { r: relaxBatch(model, info), model, info };
    };
    for (const file of served.filter((f) => !f.includes('fixed'))) expect(relax(file).r).toBeNull();
    const plain = relax('habit_fixed_batch1_op13.onnx');
    expect(plain.r).toMatchObject({ from: 1, outputs: ['y'], reshapes: [] });
    expect(plain.r!.message).toBe(
      'input "x" was exported with a fixed batch of 1 ([1, 8]); serving any batch size: the first dimension of input "x", output "y" is now symbolic',
    );
    expect(plain.info.input.dims).toEqual([null, 8]);
    expect(plain.info.outputs[0]!.dims).toEqual([null, 1]);
    const g = plain.model.graph!;
    expect(g.input[0]!.type!.tensor_type!.shape!.dim![0]).toEqual({ dim_param: 'batch' });
    expect(g.output[0]!.type!.tensor_type!.shape!.dim![0]).toEqual({ dim_param: 'batch' });
    // x.view(x.size(0), -1) traced at batch 1: Reshape(x, Concat(Unsqueeze(1), Unsqueeze(-1))) → Reshape(x, [0, -1])
    const view = relax('habit_fixed_batch1_view_op13.onnx');
    expect(view.r!.reshapes).toEqual(['/Reshape']);
    expect(view.r!.message).toContain(
      'Reshape "/Reshape" now keeps the batch dimension (0) instead of the traced size 1',
    );
    const ops = view.model.graph!.node.map((n) => n.op_type);
    expect(ops.filter((o) => o !== 'Constant')).toEqual(['Reshape', 'Gemm', 'Relu', 'Dropout', 'Gemm']);
  });

  it('a dynamo-style export with a fixed batch of 1 (value_info [1, 50] everywhere): every declaration is relaxed, and the graphs pass the self-check', async () => {
    const m = decodeModel(bytesOf('habit_dynamo_op18.onnx'));
    const g = m.graph!;
    for (const v of [...g.input, ...g.output, ...g.value_info!]) {
      const dims = v.type!.tensor_type!.shape!.dim!;
      if (dims[0]!.dim_param === 's0') dims[0] = { dim_value: 1 };
    }
    const fixed = encodeModel(m);
    const { model, info } = inspect(fixed);
    expect(info.input.dims).toEqual([1, 8]);
    const r = relaxBatch(model, info)!;
    expect(r).toMatchObject({ from: 1, outputs: ['y'], valueInfo: 8 });
    expect(model.graph!.value_info!.every((v) => v.type!.tensor_type!.shape!.dim![0]!.dim_param === 'batch')).toBe(
      true,
    );
    const s = await serving(fixed);
    expect(s.relaxed).not.toBeNull();
    await selfCheck(s.runs);
    await s.close();
  });

  it('a constant baked with the batch size (torch.cat([x, torch.ones(1, 1)], 1)) is refused with what to re-export', () => {
    const { model, info } = inspect(bytesOf('habit_fixed_batch1_concat_op13.onnx'));
    expect(() => relaxBatch(model, info)).toThrow(ModelFormatError);
    expect(() => relaxBatch(model, info)).toThrow(
      'input "x" was exported with a fixed batch of 1 ([1, 8]) and node "/Concat" (Concat) joins the rows with the constant "/Constant_output_0" of shape [1, 1] along axis 1, so the graph cannot serve another batch size. ' +
        'Re-export with a dynamic batch: torch.onnx.export(..., input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}), or with dynamo=True and dynamic_shapes={"x": {0: torch.export.Dim("batch")}}',
    );
  });

  it('dynamo value_info: eval and probe graphs keep the (true) declarations, MC graphs drop them and free the output rows', () => {
    const { model, info } = inspect(bytesOf('habit_dynamo_op18.onnx'));
    const declared = model.graph!.value_info!.map((v) => v.name);
    expect(declared).toEqual([
      'linear',
      'relu',
      'dropout_mask',
      'dropout',
      'linear_1',
      'relu_1',
      'dropout_1_mask',
      'dropout_1',
    ]);
    // the eval graph: Dropout → Identity, so its mask is gone and so is the mask's declaration
    const ev = decodeModel(evalGraph(model, info)).graph!;
    expect(ev.value_info!.map((v) => v.name)).toEqual(['linear', 'relu', 'dropout', 'linear_1', 'relu_1', 'dropout_1']);
    expect(ev.value_info![0]!.type!.tensor_type!.shape!.dim!.map((d) => d.dim_param || Number(d.dim_value))).toEqual([
      's0',
      50,
    ]);
    expect(decodeModel(probeGraph(model, info)).graph!.value_info).toHaveLength(6);
    for (const point of [inputTilePoint(info), sharedPrefixPoint(model, info)!]) {
      const mc = decodeModel(mcGraph(model, info, point)).graph!;
      expect(mc.value_info ?? []).toEqual([]);
      const dims = (v: (typeof mc.output)[0]) =>
        v.type!.tensor_type!.shape!.dim!.map((d) => d.dim_param || Number(d.dim_value));
      expect(dims(mc.output[0]!)).toEqual([MC_ROWS_DIM, 1]);
      expect(dims(mc.input[0]!)).toEqual(['s0', 8]);
    }
  });

  it('a Dropout on the graph input: the probe outputs the input itself; nothing to share before it', () => {
    for (const file of ['habit_input_dropout_op13.onnx', 'habit_dynamo_input_dropout_op18.onnx']) {
      const { model, info } = inspect(bytesOf(file));
      expect(info.dropouts[0]!.input).toBe('x');
      expect(decodeModel(probeGraph(model, info)).graph!.output.map((o) => o.name)).toContain('x');
      expect(sharedPrefixPoint(model, info)).toBeNull();
    }
  });
});

describe('export habits: the load-time self-check (selfCheck over the rewritten graphs)', () => {
  const all = [
    ...served,
    'legacy_train_op13.onnx',
    'legacy_train_bn_op15.onnx',
    'dynamo_style_op18.onnx',
    'eval_op13.onnx',
  ];
  for (const file of all) {
    it(`${file}: every run shape of selfCheckPlan passes, plain and shared-prefix`, async () => {
      const s = await serving(bytesOf(file), { maxRunRows: 4096 });
      expect(s.runs.mcGraphs.length).toBe(file.startsWith('eval') ? 0 : s.sharedPrefix ? 2 : 1);
      await selfCheck(s.runs);
      await s.close();
    });
  }

  it('fails at load, naming the run, for an MC graph that keeps the dynamo value_info; the old one-sample check passed it', async () => {
    // before the fix, the MC graphs kept every declaration: after the Tile, the shared-prefix graph's
    // intermediates have samples × rows rows where "s0" says rows, and onnxruntime's buffer planning
    // trips on it (the plain graph happens to run: all its declared tensors are tiled alike)
    const orig = inspect(bytesOf('habit_dynamo_op18.onnx')).model.graph!.value_info!;
    const keepDeclarations = (b: Uint8Array): Uint8Array => {
      const m = decodeModel(b);
      m.graph!.value_info = orig.filter((v) => m.graph!.node.some((n) => n.output.includes(v.name)));
      return encodeModel(m);
    };
    const s = await serving(bytesOf('habit_dynamo_op18.onnx'), { alterMc: keepDeclarations });
    expect(s.runs.mcGraphs.map((g) => g.label)).toEqual(['plain', 'shared-prefix']);
    // what the loader checked before: 3 rows, one sample
    await selfCheck(s.runs, { plan: [{ rows: 3, samples: 1, why: 'old check' }] });
    await expect(selfCheck(s.runs)).rejects.toThrow(
      /^self-check: the shared-prefix Monte Carlo graph for 1 rows × 2 samples \(one row, two samples\) fails: .*Shape mismatch attempting to re-use buffer/,
    );
    await s.close();
  });

  it('the plan covers one row, 32 rows, a full chunk then a shorter one, and the largest runs; no run exceeds maxRunRows rows', () => {
    for (const M of [64, 1000, 4096]) {
      const plan = selfCheckPlan(M);
      expect(plan.every((p) => p.rows * p.samples <= M)).toBe(true);
      expect(plan.some((p) => p.rows === 32)).toBe(true);
      const chunks = plan.filter((p) => p.rows === 7);
      expect(chunks).toHaveLength(2);
      expect(chunks[0]!.samples).toBe(Math.floor(M / 7));
      expect(chunks[1]!.samples).toBeLessThan(chunks[0]!.samples);
      expect(plan).toContainEqual(expect.objectContaining({ rows: 1, samples: M }));
      expect(plan).toContainEqual(expect.objectContaining({ rows: M, samples: 1 }));
    }
  });
});

describe('export habits: predict and Monte Carlo against PyTorch, through OnnxModel', () => {
  for (const file of served) {
    const fixture = habits.fixtures[file]!;
    const outputNames = Object.keys(fixture.outputs);
    for (const output of outputNames) {
      it(`${file}${outputNames.length > 1 ? ` (output "${output}")` : ''}: predict within 1e-4 of torch; MC mean and spread match torch's at batch 1, 3 and 32, chunked`, async () => {
        const card = cardFor(file, output === outputNames[0] ? {} : { output });
        const m = await OnnxModel.load(file, join(fx, file), card);
        expect(m.dropoutRates).toEqual(fixture.dropout);
        // a fixed batch is relaxed at load and said so in the "model loaded" line
        expect(typeof m.loadInfo().batch_relaxed).toBe(file.includes('fixed') ? 'string' : 'undefined');
        const want = fixture.outputs[output]!;
        const raw = await m.predict(Float32Array.from(fixture.inputs.flat()), fixture.inputs.length);
        const flat = want.flat() as number[];
        expect(raw.length).toBe(flat.length);
        flat.forEach((v, i) => {
          expect(Math.abs(raw[i]! - v)).toBeLessThan(1e-4);
        });
        expect(m.output.shape.length === 1).toBe(!Array.isArray(want[0]));

        const oi = outputNames.indexOf(output);
        const x3 = Float32Array.from(fixture.mc.flatMap((r) => fixture.inputs[r.row]!));
        // 32 rows: the three reference rows first, then the other inputs repeated
        const x32 = new Float32Array((32 * x3.length) / 3);
        for (let i = 0; i < 32; i++)
          x32.set(Float32Array.from(fixture.inputs[i < 3 ? i : i % 5]!), (i * x3.length) / 3);
        const F = x3.length / 3;
        const runs: { x: Float32Array; rows: number; T: number; check: number }[] = [
          { x: x3.slice(0, F), rows: 1, T: 20000, check: 1 },
          { x: x3, rows: 3, T: 20000, check: 3 },
          { x: x32, rows: 32, T: 4000, check: 3 },
        ];
        for (const [n, run] of runs.entries()) {
          const { stats } = await m.sample(run.x, run.rows, {
            samples: run.T,
            interval: 0.9,
            seed: 11 + n,
            returnSamples: m.task === 'classification',
          });
          for (let r = 0; r < run.check; r++) {
            const ref = fixture.mc[r]!;
            const o = ref.outputs[oi]!;
            const K = o.mean.length;
            if (stats.kind === 'regression') {
              const s = stats as RegressionStats;
              for (let k = 0; k < K; k++) {
                expect(s.epistemicStd[r * K + k]).toBeGreaterThan(0.005);
                expect(Math.abs(s.mean[r * K + k]! - o.mean[k]!)).toBeLessThan(meanTol(o.std[k]!, run.T));
                expect(Math.abs(s.epistemicStd[r * K + k]! / o.std[k]! - 1)).toBeLessThan(
                  stdTol(o.kurtosis[k]!, run.T),
                );
              }
            } else {
              const s = stats as ClassificationStats;
              let gradTerm = 0;
              for (let k = 0; k < K; k++) {
                expect(Math.abs(s.probabilities[r * K + k]! - o.mean[k]!)).toBeLessThan(meanTol(o.std[k]!, run.T));
                // the spread of each class probability, from the samples
                let sum = 0;
                let sq = 0;
                for (let t = 0; t < run.T; t++) {
                  const p = s.raw![(t * run.rows + r) * K + k]!;
                  sum += p;
                  sq += p * p;
                }
                const sd = Math.sqrt((sq - (sum * sum) / run.T) / (run.T - 1));
                expect(Math.abs(sd / o.std[k]! - 1)).toBeLessThan(stdTol(o.kurtosis[k]!, run.T));
                gradTerm += Math.abs(Math.log(o.mean[k]!) + 1) * o.std[k]!;
              }
              // MI = H(p̄) − mean H(p_t): linearised, its error is at most the sum of the two terms' errors
              const miTol = 5 * Math.sqrt(1 / run.T + 1 / NT) * (ref.entropy_each_std! + gradTerm);
              expect(s.mutualInformation[r]).toBeGreaterThan(0.005);
              expect(Math.abs(s.mutualInformation[r]! - ref.mutual_information!)).toBeLessThan(miTol);
            }
          }
        }
        await m.close();
      });
    }
  }

  it('chunking changes nothing: one live dropout, same seed, maxRunRows 256 vs 4096 give the same statistics (32 rows × 100 samples: 13 runs vs 1)', async () => {
    for (const file of served.filter((f) => habits.fixtures[f]!.dropout.filter((p) => p > 0).length === 1)) {
      const path = join(fx, file);
      const card = cardFor(file);
      const small = await OnnxModel.load(file, path, card, { ...DEFAULT_RUNTIME_OPTIONS, maxRunRows: 256 });
      const big = await OnnxModel.load(file, path, card, { ...DEFAULT_RUNTIME_OPTIONS, maxRunRows: 4096 });
      const fixture = habits.fixtures[file]!;
      const F = fixture.inputs[0]!.length;
      const x = new Float32Array(32 * F);
      for (let i = 0; i < 32; i++)
        x.set(
          fixture.inputs[i % 5]!.map((v) => v + i / 32),
          i * F,
        );
      const opts = { samples: 100, interval: 0.9, seed: 5 };
      const a = (await small.sample(x, 32, opts)).stats;
      const b = (await big.sample(x, 32, opts)).stats;
      const [va, vb] =
        a.kind === 'regression'
          ? [a.mean, (b as RegressionStats).mean]
          : [a.probabilities, (b as ClassificationStats).probabilities];
      va.forEach((v, i) => {
        expect(Math.abs(v - vb[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(vb[i]!)));
      });
      await small.close();
      await big.close();
    }
  });
});

describe('relaxBatch on hand-made graphs', () => {
  const vi = (name: string, dims: (number | string)[]) => ({
    name,
    type: {
      tensor_type: {
        elem_type: DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
      },
    },
  });
  const f32 = (name: string, dims: number[], values: number[]) => ({
    name,
    dims,
    data_type: DataType.FLOAT,
    float_data: values,
  });
  const i64 = (name: string, values: number[]) => ({
    name,
    dims: [values.length],
    data_type: DataType.INT64,
    int64_data: values,
  });
  const W = f32('W', [2, 3], [1, 0, -1, 0.5, 2, 1]);
  const build = (
    nodes: { op_type: string; input: string[]; output: string[]; attribute?: unknown[] }[],
    inits: unknown[],
    batch: number | string = 1,
    outDims: (number | string)[] = [1, 2],
  ) =>
    inspect(
      encodeModel({
        ir_version: 8,
        opset_import: [{ domain: '', version: 17 }],
        graph: {
          name: 'g',
          node: nodes as never,
          initializer: [W, ...inits] as never,
          input: [vi('x', [batch, 3])],
          output: [vi('y', outDims)],
        },
      }),
    );
  const gemm = (x: string, y: string) => ({
    op_type: 'Gemm',
    input: [x, 'W'],
    output: [y],
    attribute: [{ name: 'transB', type: 2, i: 1 }],
  });
  const refused = (nodes: Parameters<typeof build>[0], inits: unknown[], msg: string, batch = 1) => {
    const { model, info } = build(nodes, inits, batch);
    expect(() => relaxBatch(model, info)).toThrow(msg);
  };

  it('refuses, naming the node and why, what would mix or drop rows', () => {
    refused(
      [gemm('x', 'h'), { op_type: 'Squeeze', input: ['h'], output: ['y'] }],
      [],
      'node "y" (Squeeze) has no axes, so it also removes the batch dimension of size 1',
    );
    refused(
      [
        gemm('x', 'h'),
        { op_type: 'Softmax', input: ['h'], output: ['y'], attribute: [{ name: 'axis', type: 2, i: 0 }] },
      ],
      [],
      'works along axis 0, the batch axis',
    );
    refused(
      [
        gemm('x', 'h'),
        { op_type: 'ReduceMean', input: ['h'], output: ['y'], attribute: [{ name: 'axes', type: 7, ints: [0] }] },
      ],
      [],
      'reduces over axis 0, the batch axis',
    );
    refused([gemm('x', 'h'), { op_type: 'Transpose', input: ['h'], output: ['y'] }], [], 'moves the batch axis');
    refused(
      [gemm('x', 'h'), { op_type: 'Add', input: ['h', 'c'], output: ['y'] }],
      [f32('c', [3, 2], [1, 2, 3, 4, 5, 6])],
      'combines the rows with the constant "c" of shape [3, 2]',
      3,
    );
    refused(
      [gemm('x', 'h'), { op_type: 'LSTM', input: ['h'], output: ['y'] }],
      [],
      'does not know whether this op keeps them apart',
    );
    refused(
      [{ op_type: 'Reshape', input: ['x', 's'], output: ['r'] }, gemm('r', 'y')],
      [i64('s', [3, -1])],
      'reshapes the rows to a first dimension of 3',
      1,
    );
  });

  it('accepts row-wise steps and broadcasts that keep rows; rewrites Reshape of a traced batch of 3', () => {
    const ok = build(
      [
        { op_type: 'Reshape', input: ['x', 's'], output: ['r'] },
        gemm('r', 'h'),
        { op_type: 'Add', input: ['h', 'c'], output: ['a'] },
        { op_type: 'Softmax', input: ['a'], output: ['y'], attribute: [{ name: 'axis', type: 2, i: -1 }] },
      ],
      [i64('s', [3, 3]), f32('c', [1, 2], [0.5, -0.5])],
      3,
      [3, 2],
    );
    const r = relaxBatch(ok.model, ok.info)!;
    expect(r).toMatchObject({ from: 3, outputs: ['y'], reshapes: ['r'] });
    const shapeInit = ok.model.graph!.initializer!.find((t) => t.name === ok.model.graph!.node[0]!.input[1]);
    expect(shapeInit!.int64_data!.map(Number)).toEqual([0, 3]);
    // already dynamic: nothing to do
    const dyn = build([gemm('x', 'y')], [], 'batch', ['batch', 2]);
    expect(relaxBatch(dyn.model, dyn.info)).toBeNull();
  });

  it('what the static walk lets through, selfCheck catches: a Reshape(-1, …) that merges rows', async () => {
    // exported at batch 2: [2, 3] → Reshape [-1, 6] → [1, 6] joins the two rows. The static walk accepts a
    // leading -1 (it cannot count elements per row); the relaxed graph then fails for one row, and the
    // self-check names it
    const g = build(
      [
        { op_type: 'Reshape', input: ['x', 's'], output: ['r'] },
        { op_type: 'MatMul', input: ['r', 'V'], output: ['y'] },
      ],
      [i64('s', [-1, 6]), f32('V', [6, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])],
      2,
    );
    expect(relaxBatch(g.model, g.info)).not.toBeNull();
    const s = await serving(encodeModel(g.model));
    await expect(selfCheck(s.runs)).rejects.toThrow('self-check: the eval graph fails for 1 rows (one row)');
    await s.close();
  });
});
