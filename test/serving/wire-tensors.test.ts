/**
 * Tensor Monte Carlo across the worker boundary (issue 19): the task's input tensors are transferred
 * (a view or a shared buffer is copied first), the answer's output dims travel with the record, and
 * the pool's new message kind reaches the worker.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_RUNTIME_OPTIONS, type InputTensor } from '../../src/model/model.js';
import { McPool } from '../../src/serving/pool.js';
import {
  packTensorOutput,
  packTensorPredictTask,
  packTensorResult,
  packTensorTask,
  unpackTensorOutput,
  unpackTensorResult,
} from '../../src/serving/wire.js';
import { fakeTensorModel } from '../helpers/fake-tensor-model.js';

const opts = { samples: 6, interval: 0.9, seed: 4 };

describe('the tensor task on the wire', () => {
  it('transfers whole buffers, copies views and a buffer two tensors share, and leaves the signal behind', () => {
    const ids = BigInt64Array.from({ length: 32 }, (_, i) => BigInt(i));
    const backing = new Int32Array(40).fill(3);
    const view = backing.subarray(8, 40);
    const tensors: InputTensor[] = [
      { name: 'input_ids', dims: [2, 16], data: ids },
      { name: 'mask', dims: [2, 16], data: view },
      { name: 'again', dims: [2, 16], data: ids },
    ];
    const { task, transfer } = packTensorTask('m#1', tensors, 2, { ...opts, signal: { aborted: false } });
    expect(task.opts).toEqual(opts);
    expect(task.tensors.map((t) => [t.name, t.dims, t.data.constructor.name])).toEqual([
      ['input_ids', [2, 16], 'BigInt64Array'],
      ['mask', [2, 16], 'Int32Array'],
      ['again', [2, 16], 'BigInt64Array'],
    ]);
    expect(task.tensors[0]!.data).toBe(ids);
    expect(task.tensors[1]!.data).not.toBe(view);
    expect(task.tensors[1]!.data).toEqual(view);
    expect(task.tensors[2]!.data).not.toBe(ids);
    expect(task.tensors[2]!.data).toEqual(ids);
    expect(transfer).toHaveLength(3);
    expect(new Set(transfer).size).toBe(3);
    expect(transfer).not.toContain(backing.buffer);
  });

  it('a predict task transfers its inputs; its answer round-trips bit for bit with its dims', () => {
    const image: InputTensor = { name: 'image', dims: [1, 3, 2, 2], data: new Float32Array(12).fill(0.1) };
    const { task, transfer } = packTensorPredictTask('unet', [image], 1);
    expect(task).toMatchObject({ model: 'unet', rows: 1, predict: [{ name: 'image', dims: [1, 3, 2, 2] }] });
    expect(transfer).toEqual([image.data.buffer]);
    const out = {
      data: Float32Array.from({ length: 12 }, (_, i) => Math.fround(Math.sin(i) * 1e3)),
      dims: [1, 3, 2, 2],
    };
    expect(unpackTensorOutput(packTensorOutput(out))).toEqual(out);
  });

  it('the answer round-trips with its output dims', async () => {
    const m = fakeTensorModel('segmentation');
    const image = Float32Array.from({ length: 32 }, (_, i) => (i % 16) - 7.5);
    const r = await m.sampleTensors!([{ name: 'image', dims: [2, 1, 4, 4], data: image }], 2, opts);
    const back = unpackTensorResult(packTensorResult(r));
    expect(back.outputDims).toEqual([2, 3, 4, 4]);
    expect(back.seed).toBe(4);
    expect(back.stats).toEqual(r.stats);
    expect(back.stats.rows).toBe(32); // 2 rows × 16 pixels
  });
});

describe('McPool.startTensors', () => {
  const pool = new McPool(
    [{ name: 'diabetes', file: 'models/diabetes/model.onnx', card: 'models/diabetes/model.json' }],
    DEFAULT_RUNTIME_OPTIONS,
    1,
  );
  afterAll(() => pool.close());

  it('reaches the worker, whose model must be a tensor model; the inputs were transferred', async () => {
    await pool.ready();
    const x = new Float32Array(10);
    const task = pool.startTensors('diabetes', [{ name: 'input', dims: [1, 10], data: x }], 1, opts);
    await expect(task.result).rejects.toThrow('model "diabetes" is not a tensor model');
    expect(x.byteLength).toBe(0); // detached: the worker owns it
  });
});
