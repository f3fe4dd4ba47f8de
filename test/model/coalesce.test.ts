import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClassificationStats, RegressionStats } from '../../src/uncertainty/record.js';
import { packStats, unpackStats } from '../../src/uncertainty/record-wire.js';
import { packBatch, unpackBatch } from '../../src/serving/wire.js';
import type { McJob } from '../../src/model/model.js';
import { OnnxModel } from '../../src/model/onnx/model.js';
import { Rng } from '../../src/util/rng.js';

describe('mask streams ignore call boundaries', () => {
  it('filling a buffer piece by piece (odd pieces included) equals one fill', () => {
    const whole = new Rng(9).fillDropoutMask(new Float32Array(1001), 0.3);
    const pieces = new Float32Array(1001);
    const rng = new Rng(9);
    let at = 0;
    for (const n of [1, 2, 3, 50, 7, 0, 1, 600, 337]) {
      rng.fillDropoutMaskRange(pieces, at, at + n, 0.3);
      at += n;
    }
    expect(at).toBe(1001);
    expect(pieces).toEqual(whole);
    // and the stream is a real mask: about 30% zeros, survivors scaled
    expect(whole.filter((v) => v === 0).length / 1001).toBeGreaterThan(0.25);
    expect(whole.filter((v) => v === 0).length / 1001).toBeLessThan(0.35);
  });
});

const row = (features: number, k: number): Float32Array => {
  const rng = new Rng(1000 + k);
  return Float32Array.from({ length: features }, () => rng.normal());
};

describe('coalesced Monte Carlo (several requests, one run)', () => {
  let diabetes: OnnxModel;
  let wine: OnnxModel;
  beforeAll(async () => {
    diabetes = await OnnxModel.load('diabetes', 'models/diabetes/model.onnx', 'models/diabetes/model.json');
    wine = await OnnxModel.load('wine', 'models/wine/model.onnx', 'models/wine/model.json');
  });
  afterAll(async () => {
    await diabetes.close();
    await wine.close();
  });

  // raw diabetes rows are in feature units; standard normals are fine for equality checks
  const jobsFor = (features: number): McJob[] => [
    { x: row(features, 1), rows: 1, opts: { samples: 100, interval: 0.9, seed: 11 } },
    {
      x: Float32Array.from([...row(features, 2), ...row(features, 3), ...row(features, 4)]),
      rows: 3,
      opts: { samples: 100, interval: 0.8, seed: 12, returnSamples: true },
    },
    { x: row(features, 5), rows: 1, opts: { samples: 100, interval: 0.95, seed: 13 } },
  ];

  it('regression: each request gets exactly what it gets alone with its seed', async () => {
    const jobs = jobsFor(10);
    const together = await diabetes.sampleBatch(jobs);
    for (let j = 0; j < jobs.length; j++) {
      const alone = await diabetes.sample(jobs[j]!.x, jobs[j]!.rows, jobs[j]!.opts);
      expect(together[j]!.seed).toBe(alone.seed);
      const a = together[j]!.stats as RegressionStats;
      const b = alone.stats as RegressionStats;
      expect(Array.from(a.mean)).toEqual(Array.from(b.mean));
      expect(Array.from(a.epistemicStd)).toEqual(Array.from(b.epistemicStd));
      expect(Array.from(a.lower)).toEqual(Array.from(b.lower));
      expect(a.level).toBe(jobs[j]!.opts.interval);
      expect(a.epistemicStd[0]).toBeGreaterThan(0);
    }
    expect((together[1]!.stats as RegressionStats).raw).toHaveLength(300);
    // a neighbour's seed matters to nobody else: change request 0's seed, request 2 is unchanged
    const changed = await diabetes.sampleBatch([
      { ...jobs[0]!, opts: { ...jobs[0]!.opts, seed: 99 } },
      jobs[1]!,
      jobs[2]!,
    ]);
    expect((changed[0]!.stats as RegressionStats).mean[0]).not.toBe((together[0]!.stats as RegressionStats).mean[0]);
    expect((changed[2]!.stats as RegressionStats).mean[0]).toBe((together[2]!.stats as RegressionStats).mean[0]);
  });

  it('classification with two dropout layers: the same', async () => {
    const jobs = jobsFor(13);
    const together = await wine.sampleBatch(jobs);
    for (let j = 0; j < jobs.length; j++) {
      const alone = (await wine.sample(jobs[j]!.x, jobs[j]!.rows, jobs[j]!.opts)).stats as ClassificationStats;
      const a = together[j]!.stats as ClassificationStats;
      expect(Array.from(a.probabilities)).toEqual(Array.from(alone.probabilities));
      expect(Array.from(a.mutualInformation)).toEqual(Array.from(alone.mutualInformation));
    }
  });

  it('refuses mixed sample counts and runs larger than one run', async () => {
    const [a, b] = jobsFor(10);
    await expect(diabetes.sampleBatch([a!, { ...b!, opts: { ...b!.opts, samples: 50 } }])).rejects.toThrow(
      /share the sample count/,
    );
    expect(diabetes.fitsOneRun(40, 100)).toBe(true);
    expect(diabetes.fitsOneRun(41, 100)).toBe(false);
    await expect(diabetes.sampleBatch([{ ...a!, x: new Float32Array(410), rows: 41 }])).rejects.toThrow(
      /exceeds one run/,
    );
  });
});

describe('the worker hand-off format', () => {
  it('packs jobs into two transferable arrays and back', () => {
    const jobs: McJob[] = [
      {
        x: Float32Array.from([1, 2, 3, 4]),
        rows: 2,
        opts: { samples: 7, interval: 0.8, seed: 2 ** 52 + 1, returnSamples: true },
      },
      { x: Float32Array.from([5, 6]), rows: 1, opts: { samples: 7, interval: 0.9 } },
    ];
    const { task, transfer } = packBatch('m', jobs, 2);
    expect(transfer).toHaveLength(2);
    const back = unpackBatch(task, 2);
    expect(back.map((j) => [Array.from(j.x), j.rows, j.opts])).toEqual([
      [[1, 2, 3, 4], 2, { samples: 7, interval: 0.8, seed: 2 ** 52 + 1, returnSamples: true }],
      [[5, 6], 1, { samples: 7, interval: 0.9, returnSamples: false }],
    ]);
  });

  it('sampleBatch gives the same answers for rows in separate arrays, adjacent in one buffer (as unpacked) or apart in one', async () => {
    const diabetes = await OnnxModel.load('diabetes', 'models/diabetes/model.onnx', 'models/diabetes/model.json');
    const opts = (seed: number) => ({ samples: 30, interval: 0.9, seed });
    const rows = [row(10, 1), Float32Array.from([...row(10, 2), ...row(10, 3)]), row(10, 4)];
    const n = [1, 2, 1];
    const separate = await diabetes.sampleBatch(rows.map((x, k) => ({ x, rows: n[k]!, opts: opts(k + 1) })));
    const unpacked = unpackBatch(
      packBatch(
        'diabetes',
        separate.map((_, k) => ({ x: rows[k]!, rows: n[k]!, opts: opts(k + 1) })),
        10,
      ).task,
      10,
    );
    expect(unpacked[1]!.x.buffer).toBe(unpacked[0]!.x.buffer);
    // the same buffer with a gap between the rows, and out of order
    const buf = new Float32Array(70);
    const apart = [buf.subarray(0, 10), buf.subarray(20, 40), buf.subarray(50, 60)];
    apart.forEach((v, k) => {
      v.set(rows[k]!);
    });
    const buf2 = new Float32Array(40);
    const reordered = [buf2.subarray(30, 40), buf2.subarray(0, 20), buf2.subarray(20, 30)];
    reordered.forEach((v, k) => {
      v.set(rows[k]!);
    });
    const cases = [
      unpacked,
      apart.map((x, k) => ({ x, rows: n[k]!, opts: opts(k + 1) })),
      reordered.map((x, k) => ({ x, rows: n[k]!, opts: opts(k + 1) })),
    ];
    for (const jobs of cases) {
      const got = await diabetes.sampleBatch(jobs);
      expect(got.map((r) => Array.from((r.stats as RegressionStats).mean))).toEqual(
        separate.map((r) => Array.from((r.stats as RegressionStats).mean)),
      );
    }
    await diabetes.close();
  });

  it('packs statistics of both kinds, with and without raw samples, into one Float64Array and back', async () => {
    const diabetes = await OnnxModel.load('diabetes', 'models/diabetes/model.onnx', 'models/diabetes/model.json');
    const wine = await OnnxModel.load('wine', 'models/wine/model.onnx', 'models/wine/model.json');
    const results = [
      ...(await diabetes.sampleBatch([
        { x: row(10, 1), rows: 1, opts: { samples: 20, interval: 0.9, seed: 1, returnSamples: true } },
      ])),
      ...(await wine.sampleBatch([
        {
          x: Float32Array.from([...row(13, 2), ...row(13, 3)]),
          rows: 2,
          opts: { samples: 20, interval: 0.9, seed: 2 },
        },
        { x: row(13, 4), rows: 1, opts: { samples: 20, interval: 0.9, seed: 3, returnSamples: true } },
      ])),
    ];
    const back = unpackStats(packStats(results));
    expect(back.map((r) => r.seed)).toEqual([1, 2, 3]);
    // typed arrays compare by content; the unpacked ones are views of one buffer
    expect(JSON.stringify(back, (_k, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as Float64Array) : v))).toBe(
      JSON.stringify(results, (_k, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as Float64Array) : v)),
    );
    await diabetes.close();
    await wine.close();
  });
});
