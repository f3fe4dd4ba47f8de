/**
 * The loader's use of relaxBatch and the load-time self-check (src/model/onnx/load.ts): a fixed batch
 * is served and said so, a graph that cannot be relaxed or that would fail at request time is refused
 * at load with the reason, and a shared-prefix graph that fails the check is dropped (the plain MC
 * graph serves). To break one MC graph on purpose, rewrite.ts's mcGraph is wrapped (`breakGraph`).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ModelLoadError } from '../../../src/model/errors.js';
import { OnnxModel } from '../../../src/model/onnx/model.js';
import type { RegressionStats } from '../../../src/uncertainty/record.js';
import { AttributeType, DataType, type Model as OnnxProto } from '../../../src/onnx-proto/proto.js';
import { f32, model, vi as valueInfo } from '../../helpers/onnx.js';

const control = vi.hoisted(() => ({ breakGraph: null as null | 'plain' | 'shared-prefix' }));

vi.mock('../../../src/model/onnx/rewrite.js', async (importOriginal) => {
  const graph = await importOriginal<typeof import('../../../src/model/onnx/rewrite.js')>();
  const { decodeModel: decode, encodeModel: encode } = await import('../../../src/onnx-proto/proto.js');
  return {
    ...graph,
    mcGraph: (
      m: OnnxProto,
      info: Parameters<typeof graph.mcGraph>[1],
      at: Parameters<typeof graph.mcGraph>[2],
    ): Uint8Array => {
      const bytes = graph.mcGraph(m, info, at);
      const label = at.index === 0 ? 'plain' : 'shared-prefix';
      if (control.breakGraph !== label) return bytes;
      if (label === 'shared-prefix') {
        // what the MC graphs did before issue 12: keep the exporter's value_info (dynamo's [s0, 50]),
        // false once the rows are repeated after the prefix: onnxruntime fails from 2 samples on
        const g = decode(bytes);
        g.graph!.value_info = (m.graph!.value_info ?? []).filter((v) =>
          g.graph!.node.some((n) => n.output.includes(v.name)),
        );
        return encode(g);
      }
      // a graph that works for runs of up to 100 rows and fails beyond (as a graph with a size limit
      // somewhere would): y = Reshape(y, [min(rows, 100), -1]), which cannot split 320 or 4095 rows
      const g = decode(bytes);
      const out = g.graph!.output[0]!.name;
      for (const n of g.graph!.node) n.output = n.output.map((o) => (o === out ? 'inner_y' : o));
      const i64 = (name: string, values: number[]) => ({
        name,
        dims: [values.length],
        data_type: DataType.INT64,
        int64_data: values,
      });
      g.graph!.initializer!.push(i64('zero', [0]), i64('limit', [100]), i64('rest', [-1]));
      g.graph!.node.push(
        { op_type: 'Shape', input: ['inner_y'], output: ['inner_shape'] },
        {
          op_type: 'Gather',
          input: ['inner_shape', 'zero'],
          output: ['inner_rows'],
          attribute: [{ name: 'axis', type: AttributeType.INT, i: 0 }],
        },
        { op_type: 'Min', input: ['inner_rows', 'limit'], output: ['capped'] },
        {
          op_type: 'Concat',
          input: ['capped', 'rest'],
          output: ['target'],
          attribute: [{ name: 'axis', type: AttributeType.INT, i: 0 }],
        },
        { op_type: 'Reshape', input: ['inner_y', 'target'], output: [out] },
      );
      return encode(g);
    },
  };
});

const fx = 'test/fixtures/torch';
const dir = mkdtempSync(join(tmpdir(), 'ds-load-'));

afterEach(() => {
  control.breakGraph = null;
});

describe('the loader serves what it can and refuses, naming the reason, what would fail at request time', () => {
  it('a fixed batch of 1 is served at any batch size and said so in loadInfo (the "model loaded" line)', async () => {
    const m = await OnnxModel.load('fixed', join(fx, 'habit_fixed_batch1_view_op13.onnx'), null);
    expect(m.input.shape).toEqual([-1, 8]);
    expect(m.loadInfo().batch_relaxed).toBe(
      'input "x" was exported with a fixed batch of 1 ([1, 8]); serving any batch size: the first dimension of input "x", output "y" is now symbolic, and Reshape "/Reshape" now keeps the batch dimension (0) instead of the traced size 1',
    );
    const out = await m.predict(new Float32Array(33 * 8).fill(0.5), 33);
    expect(out.length).toBe(33);
    await m.close();
  });

  it('a fixed batch that cannot be relaxed is refused with the re-export to make', async () => {
    const err = await OnnxModel.load('concat', join(fx, 'habit_fixed_batch1_concat_op13.onnx'), null).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as Error).message).toBe(
      `${join(fx, 'habit_fixed_batch1_concat_op13.onnx')}: input "x" was exported with a fixed batch of 1 ([1, 8]) and node "/Concat" (Concat) joins the rows with the constant "/Constant_output_0" of shape [1, 1] along axis 1, so the graph cannot serve another batch size. ` +
        'Re-export with a dynamic batch: torch.onnx.export(..., input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}), or with dynamo=True and dynamic_shapes={"x": {0: torch.export.Dim("batch")}}',
    );
  });

  it('a graph that mixes rows (y = h − mean of h over the batch) fails the self-check at load: it cannot serve batches', async () => {
    const file = join(dir, 'mix.onnx');
    writeFileSync(
      file,
      model({
        nodes: [
          { op_type: 'MatMul', input: ['x', 'V'], output: ['h'] },
          {
            op_type: 'ReduceMean',
            input: ['h'],
            output: ['m'],
            attribute: [
              { name: 'axes', type: AttributeType.INTS, ints: [0] },
              { name: 'keepdims', type: AttributeType.INT, i: 1 },
            ],
          },
          { op_type: 'Sub', input: ['h', 'm'], output: ['y'] },
        ],
        inits: [f32('V', [3, 2], [1, 2, 3, 4, 5, 6])],
        inputs: [valueInfo('x', DataType.FLOAT, ['batch', 3])],
        outputs: [valueInfo('y', DataType.FLOAT, ['batch', 2])],
      }),
    );
    await expect(OnnxModel.load('mix', file, null)).rejects.toThrow(
      /mix\.onnx: self-check: the eval graph gives \S+ for row 0 of a batch of 2 but 0 for that row alone: the graph mixes rows, so it cannot serve batches$/,
    );
  });

  it('a plain MC graph that fails only for large runs is refused at load, naming the run; the old check (3 rows, 1 sample) passed it', async () => {
    control.breakGraph = 'plain';
    const err = await OnnxModel.load('big', join(fx, 'habit_dynamo_op18.onnx'), null).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as Error).message).toMatch(
      /habit_dynamo_op18\.onnx: self-check: the plain Monte Carlo graph for 32 rows × 10 samples \(a batch of 32 rows\) fails: .*Reshape/,
    );
  });

  it('a shared-prefix graph that fails the check is dropped and the reason logged; MC is served by the plain graph', async () => {
    control.breakGraph = 'shared-prefix';
    const m = await OnnxModel.load('dyn', join(fx, 'habit_dynamo_op18.onnx'), null);
    expect(m.mcAvailable).toBe(true);
    expect(m.sharedPrefix).toBe(false);
    const info = m.loadInfo();
    expect(info.shared_prefix).toBe(false);
    expect(info.shared_prefix_skipped).toMatch(
      /^self-check: the shared-prefix Monte Carlo graph for 1 rows × 2 samples \(one row, two samples\) fails: .*Shape mismatch attempting to re-use buffer/,
    );
    const { stats } = await m.sample(new Float32Array(32 * 8).fill(0.3), 32, { samples: 200, interval: 0.9, seed: 1 });
    expect((stats as RegressionStats).epistemicStd.every((s) => s > 0)).toBe(true);
    await m.close();
    // and without the break, the same file keeps its shared prefix
    control.breakGraph = null;
    const ok = await OnnxModel.load('dyn', join(fx, 'habit_dynamo_op18.onnx'), null);
    expect(ok.sharedPrefix).toBe(true);
    expect(ok.loadInfo().shared_prefix_skipped).toBeUndefined();
    await ok.close();
  });
});
