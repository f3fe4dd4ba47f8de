/**
 * The served sessions are new ones after the load-time self-check (issue 20: onnxruntime's arena keeps
 * the peak of a session's runs, and the check runs every shape up to maxRunRows): the sessions a loaded
 * model serves have run nothing, every session that ran during the load is released, and a renewed
 * session computes what the one it replaced did.
 */
import { describe, expect, it, vi } from 'vitest';
import { loadModel } from '../../../src/model/formats.js';
import { DEFAULT_RUNTIME_OPTIONS, type McResult } from '../../../src/model/model.js';
import type { OrtSession } from '../../../src/model/onnx/ort.js';
import { SessionSet } from '../../../src/model/onnx/sessions.js';
import { DataType } from '../../../src/onnx-proto/proto.js';
import { f32, gemm, model, vi as valueInfo } from '../../helpers/onnx.js';

/** Every session created through ort.ts, with its runs and whether it was released. */
const created: { runs: number; released: boolean }[] = [];

vi.mock('../../../src/model/onnx/ort.js', async (importOriginal) => {
  const ort = await importOriginal<typeof import('../../../src/model/onnx/ort.js')>();
  return {
    ...ort,
    createSession: async (...args: Parameters<typeof ort.createSession>): Promise<OrtSession> => {
      const s = await ort.createSession(...args);
      const track = { runs: 0, released: false };
      created.push(track);
      return {
        inputNames: s.inputNames,
        outputNames: s.outputNames,
        run: (feeds, fetch) => {
          track.runs++;
          return s.run(feeds, fetch);
        },
        runTyped: (feeds, fetch) => {
          track.runs++;
          return s.runTyped(feeds, fetch);
        },
        release: () => {
          track.released = true;
          return s.release();
        },
      };
    },
  };
});

const source = { name: 'diabetes', file: 'models/diabetes/model.onnx', card: 'models/diabetes/model.json' };

describe('sessions after the self-check', () => {
  it('serves sessions that ran nothing during the load, and releases every one that did', async () => {
    created.length = 0;
    const model = await loadModel(source, DEFAULT_RUNTIME_OPTIONS);
    const live = created.filter((s) => !s.released);
    // eval, plain MC and shared-prefix MC
    expect(live).toHaveLength(3);
    expect(live.map((s) => s.runs)).toEqual([0, 0, 0]);
    expect(created.filter((s) => s.runs > 0 && !s.released)).toEqual([]);
    const x = new Float32Array(10).fill(0.25);
    expect(Number.isFinite((await model.predict(x, 1))[0])).toBe(true);
    expect(live.map((s) => s.runs)).toEqual([1, 0, 0]);
    await model.sample(x, 1, { samples: 50, interval: 0.9, seed: 3 });
    expect(live[0]!.runs + live[2]!.runs).toBe(2); // served by the shared-prefix graph
    await model.close();
    expect(created.every((s) => s.released)).toBe(true);
  });

  it('a copy that skips the self-check creates each session once', async () => {
    created.length = 0;
    const model = await loadModel(source, { ...DEFAULT_RUNTIME_OPTIONS, selfCheck: false });
    // the probes (released) and the three served sessions, none created twice
    expect(created.filter((s) => !s.released)).toHaveLength(3);
    expect(created.filter((s) => s.released).every((s) => s.runs > 0)).toBe(true);
    await model.close();
  });

  it('renew: the same graph and outputs in a new session; the old one is released', async () => {
    const set = new SessionSet('gemm', DEFAULT_RUNTIME_OPTIONS);
    const old = await set.create(
      'eval',
      model({
        nodes: [gemm('x', 'W', 'b', 'y')],
        inits: [f32('W', [2, 3], [1, -2, 0.5, 0.25, 3, -1]), f32('b', [2], [0.5, -0.5])],
        inputs: [valueInfo('x', DataType.FLOAT, ['batch', 3])],
        outputs: [valueInfo('y', DataType.FLOAT, ['batch', 2])],
      }),
    );
    const feeds = { x: { data: new Float32Array([1, 2, 3, -1, 0, 4]), dims: [2, 3] } };
    // closed form: x·Wᵀ + b
    const want = new Float32Array([1 - 4 + 1.5 + 0.5, 0.25 + 6 - 3 - 0.5, -1 + 0 + 2 + 0.5, -0.25 + 0 - 4 - 0.5]);
    expect((await old.run(feeds, ['y'])).y!.data).toEqual(want);
    created.length = 0;
    const fresh = await set.renew(old);
    expect(fresh).not.toBe(old);
    expect((await fresh.run(feeds, ['y'])).y!.data).toEqual(want);
    await expect(old.run(feeds, ['y'])).rejects.toThrow();
    await set.releaseAll(); // releases the new session only (the old one is not released twice)
    expect(created.map((s) => s.released)).toEqual([true]);
  });
});

describe('releaseIdle (issue 20: the arena a load of requests grew, given back at a quiet moment)', () => {
  const x = Float32Array.from({ length: 40 }, (_, i) => (i % 7) * 0.3);
  const mc = { samples: 200, interval: 0.9, seed: 11 };

  it('answers the same on new sessions, and releases the ones that ran', async () => {
    created.length = 0;
    const model = await loadModel(source, DEFAULT_RUNTIME_OPTIONS);
    const served = created.filter((s) => !s.released);
    const before = [await model.predict(x, 4), (await model.sample(x, 4, mc)).stats];
    await model.releaseIdle!();
    expect(served.every((s) => s.released)).toBe(true);
    const fresh = created.filter((s) => !s.released);
    expect(fresh).toHaveLength(3);
    expect(fresh.map((s) => s.runs)).toEqual([0, 0, 0]);
    expect([await model.predict(x, 4), (await model.sample(x, 4, mc)).stats]).toEqual(before);
    await model.close();
    expect(created.every((s) => s.released)).toBe(true);
  });

  it('does nothing for a model that did not run since, nor while a run is running', async () => {
    created.length = 0;
    const model = await loadModel(source, DEFAULT_RUNTIME_OPTIONS);
    const count = created.length;
    await model.releaseIdle!();
    expect(created).toHaveLength(count);
    const running = model.sample(x, 4, { ...mc, samples: 20_000 });
    await model.releaseIdle!();
    expect(created).toHaveLength(count);
    await running;
    await model.releaseIdle!();
    expect(created).toHaveLength(count + 3);
    await model.close();
  });

  it('requests arriving during a renewal wait for the new sessions, which the old ones were released for first', async () => {
    created.length = 0;
    const model = await loadModel(source, DEFAULT_RUNTIME_OPTIONS);
    const served = created.filter((s) => !s.released);
    const long = { ...mc, samples: 20_000 };
    const expected = [(await model.sample(x, 4, mc)).stats, (await model.sample(x, 4, long)).stats];
    const renewal = model.releaseIdle!();
    // released before the new ones are created: their memory is what the new ones take (glibc's heap)
    expect(served.every((s) => s.released)).toBe(true);
    const during = [
      model.sample(x, 4, long),
      model.sample(x, 4, mc),
      model.sampleBatch([{ x, rows: 4, opts: mc }]),
      model.predict(x, 4),
    ];
    await renewal;
    expect(created.filter((s) => !s.released)).toHaveLength(3); // never more than one set
    const [a, b, c] = await Promise.all(during);
    expect([(a as McResult).stats, (b as McResult).stats, (c as McResult[])[0]!.stats]).toEqual([
      expected[1],
      expected[0],
      expected[0],
    ]);
    const fresh = created.filter((s) => !s.released);
    expect(fresh).toHaveLength(3);
    expect(fresh.some((s) => s.runs > 0)).toBe(true); // the requests ran on the new sessions
    expect((await model.sample(x, 4, mc)).stats).toEqual(expected[0]);
    await model.close();
    expect(created.every((s) => s.released)).toBe(true);
  });
});
