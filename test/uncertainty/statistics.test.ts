import { describe, expect, it } from 'vitest';
import { ClassificationAccumulator, RegressionAccumulator } from '../../src/uncertainty/accumulators.js';
import {
  type McStats,
  NAMED_FIELDS,
  type RegressionStats,
  makeStats,
  servedStats,
  statValues,
} from '../../src/uncertainty/record.js';
import { joinRows } from '../helpers/records.js';
import {
  maskStatistics,
  needsSamples,
  onRequestKeys,
  STATS,
  statisticsMask,
} from '../../src/uncertainty/statistics.js';
import { packStats, unpackStats } from '../../src/uncertainty/record-wire.js';
import { encodeStats, predictionSchema } from '../../src/server/protocol/v1.js';
import { mcOutputNames, mcOutputs } from '../../src/server/protocol/v2.js';
import { normalQuantile } from '../../src/util/special-functions.js';

/** The record keys of the on-request quartiles. */
const QUARTILES = ['quantile25', 'quantile75'];

/** Samples of 2 rows × 2 outputs (regression) or 2 rows × 3 classes (logits), sample-major. */
function regression(
  rows: number,
  outputs: number,
  T: number,
  aleatoric: Float64Array,
  level = 0.9,
  keep = false,
  statistics?: readonly string[],
): RegressionStats {
  const acc = new RegressionAccumulator(rows, outputs, T, keep, null, false, statistics);
  const out = new Float32Array(T * rows * outputs);
  for (let i = 0; i < out.length; i++) out[i] = Math.sin(i * 1.7) * 3 + (i % (rows * outputs));
  acc.add(out, T);
  return acc.finish(aleatoric, level);
}

function classification(rows: number, K: number, T: number, keep = false): McStats {
  const acc = new ClassificationAccumulator(rows, K, T, keep, true);
  const out = new Float32Array(T * rows * K);
  for (let i = 0; i < out.length; i++) out[i] = Math.cos(i * 0.9) * 2;
  acc.add(out, T);
  return acc.finish();
}

describe('the statistics record', () => {
  it('aleatoric_std is per row × output: a heteroscedastic noise gives each row its own total std and interval', () => {
    const alea = Float64Array.from([1, 10, 2, 20]); // rows × outputs
    const s = regression(2, 2, 50, alea, 0.8);
    const z = normalQuantile(0.9);
    for (let i = 0; i < 4; i++) {
      expect(s.aleatoricStd[i]).toBe(alea[i]);
      expect(s.std[i]).toBeCloseTo(Math.sqrt(s.epistemicStd[i]! ** 2 + alea[i]! ** 2), 12);
      expect(s.upper[i]! - s.mean[i]!).toBeCloseTo(z * s.std[i]!, 9);
    }
    // the /v1 JSON gives each row its own value (an array per row: two outputs)
    const json = encodeStats(s, [], false);
    expect(json.map((r) => r.aleatoric_std)).toEqual([
      [1, 10],
      [2, 20],
    ]);
    expect(() => regression(2, 2, 5, Float64Array.from([1, 2]))).toThrow(
      'aleatoric_std: 2 values for 2 rows × 2 outputs',
    );
  });

  it("each statistic is read by name (statValues): the named fields are the tables' keys; servedStats sees on-request ones", () => {
    expect(NAMED_FIELDS.regression).toEqual(STATS.regression.map((d) => d.key));
    expect(NAMED_FIELDS.classification).toEqual(STATS.classification.map((d) => d.key));
    const plain = regression(2, 2, 5, new Float64Array(4));
    const quartiles = regression(2, 2, 5, new Float64Array(4), 0.9, false, QUARTILES);
    for (const s of [plain, quartiles])
      for (const d of servedStats(s)) expect(statValues(s, d)).toBe((s as unknown as Record<string, unknown>)[d.key]);
    expect(servedStats(plain).map((d) => d.key)).toEqual(
      STATS.regression.filter((d) => d.served === 'always').map((d) => d.key),
    );
    expect(servedStats(quartiles).map((d) => d.key)).toEqual(STATS.regression.map((d) => d.key));
    // records are made as one literal per task (makeStatsFrom): the same keys, in table order, as a field at a time
    for (const s of [plain, quartiles]) {
      const keys = Object.keys(s);
      const held = STATS.regression.filter((d) => d.key in s).map((d) => d.key);
      expect(keys.filter((k) => NAMED_FIELDS.regression.includes(k as never))).toEqual(held);
      expect(keys.slice(0, 6)).toEqual(['kind', 'rows', 'outputs', 'samples', 'level', 'intervalMethod']);
      expect(keys.includes('quantile25')).toBe(s === quartiles);
    }
  });

  it('a record must hold every statistic of its table, each of its length', () => {
    const s = regression(1, 1, 5, Float64Array.from([0]));
    const { mean, std, epistemicStd, aleatoricStd, lower } = s;
    expect(() =>
      makeStats(
        'regression',
        { rows: 1, width: 1, samples: 5, level: 0.9 },
        { mean, std, epistemicStd, aleatoricStd, lower },
      ),
    ).toThrow('"upper" needs 1 values, got none');
    expect(() =>
      makeStats(
        'regression',
        { rows: 1, width: 1, samples: 5, level: 0.9 },
        { mean, std, epistemicStd, aleatoricStd, lower, upper: new Float64Array(2) },
      ),
    ).toThrow('"upper" needs 1 values, got 2');
  });
});

describe('the worker wire', () => {
  const results = () => [
    { stats: regression(2, 2, 30, Float64Array.from([1, 2, 3, 4]), 0.9, true, QUARTILES), seed: 2 ** 52 + 3 },
    { stats: regression(1, 1, 8, Float64Array.from([1])), seed: 5 },
    { stats: regression(1, 2, 8, Float64Array.from([1, 1]), 0.5, false, ['quantile75']), seed: 6 },
    { stats: classification(3, 3, 20), seed: 7 },
    { stats: classification(1, 4, 10, true), seed: 0 },
  ];
  const plain = (x: unknown): string =>
    JSON.stringify(x, (_k, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as Float64Array) : v));

  it('round-trips records of both tasks, with and without raw samples', () => {
    const r = results();
    expect(plain(unpackStats(packStats(r)))).toBe(plain(r));
  });

  it('carries an on-request statistic only when the record holds it', () => {
    const [asked, plainRecord, one] = results().map((r) => unpackStats(packStats([r]))[0]!.stats);
    expect('quantile25' in asked! && 'quantile75' in asked!).toBe(true);
    expect('quantile25' in plainRecord! || 'quantile75' in plainRecord!).toBe(false);
    expect(['quantile25' in one!, 'quantile75' in one!]).toEqual([false, true]);
    // the record without them packs two fewer arrays of rows × outputs
    const rec = regression(3, 2, 8, new Float64Array(6));
    const withQ = regression(3, 2, 8, new Float64Array(6), 0.9, false, QUARTILES);
    expect(packStats([{ stats: withQ, seed: 1 }]).length - packStats([{ stats: rec, seed: 1 }]).length).toBe(12);
  });

  it('carries per-row sample counts (joinRows: rows stopped apart), and the codecs show them', () => {
    const parts = [30, 60, 30].map((T, i) => regression(1, 2, T, Float64Array.from([i, 1])));
    const joined = joinRows(parts);
    expect(joined.samples).toBe(60);
    expect(Array.from(joined.rowSamples!)).toEqual([30, 60, 30]);
    expect((joined as RegressionStats).mean.subarray(2, 4)).toEqual(parts[1]!.mean);
    const back = unpackStats(packStats([{ stats: joined, seed: 7 }]))[0]!;
    expect(plain([back])).toBe(plain([{ stats: joined, seed: 7 }]));
    expect(Array.from(back.stats.rowSamples!)).toEqual([30, 60, 30]);
    // rows that agree: no counts (the record's samples says it all)
    expect(joinRows([parts[0]!, parts[2]!]).rowSamples).toBeUndefined();
    // /v1: each row says its own; V2 mcOutputs stays the statistics' (the codec adds mc_samples_used)
    const json = encodeStats(joined, [], false);
    expect(json.map((r) => r.samples_used)).toEqual([30, 60, 30]);
    for (const row of json) expect(predictionSchema('regression').strict().parse(row)).toEqual(row);
    const tampered = packStats([{ stats: joined, seed: 7 }]);
    tampered[10] = 2; // two counts for three rows
    expect(() => unpackStats(tampered)).toThrow('MC wire: 2 row sample counts for 3 rows');
  });

  it('fails loudly on a layout it was not built for, a record lacking a statistic served always or a truncated buffer', () => {
    const packed = packStats(results());
    const tampered = packed.slice();
    tampered[0] = tampered[0]! + 1;
    expect(() => unpackStats(tampered)).toThrow(/layout tag .* is not this build's/);
    const held = packed.slice();
    held[9] = held[9]! & ~1; // bit 0: mean
    expect(() => unpackStats(held)).toThrow('MC wire: the regression record lacks "mean"');
    expect(() => unpackStats(packed.subarray(0, packed.length - 1))).toThrow(/truncated/);
  });
});

describe('the protocol codecs follow the tables', () => {
  it('/v1: every statistic with a v1 field is in the JSON and in its schema, in table order; the JSON validates', () => {
    const reg = regression(2, 1, 20, Float64Array.from([3, 3]), 0.9, true, QUARTILES);
    const cls = classification(2, 3, 20, true);
    for (const [s, labels] of [
      [reg, []],
      [cls, ['a', 'b', 'c']],
    ] as const) {
      const fields = [...new Set(STATS[s.kind].filter((d) => d.v1 !== null).map((d) => d.v1!))];
      const json = encodeStats(s, labels, true);
      expect(Object.keys(json[0]!)).toEqual([...fields, 'samples']);
      const schema = predictionSchema(s.kind);
      expect(Object.keys(schema.shape)).toEqual([...fields, 'samples', 'samples_used', 'out_of_range']);
      for (const row of json) expect(schema.strict().parse(row)).toEqual(row);
    }
    // one output: numbers, not arrays; the interval carries the level and its method
    const row = encodeStats(reg, [], false)[0]!;
    expect(row).toEqual({
      mean: reg.mean[0],
      std: reg.std[0],
      epistemic_std: reg.epistemicStd[0],
      aleatoric_std: 3,
      interval: { level: 0.9, method: 'gaussian', lower: reg.lower[0], upper: reg.upper[0] },
      quantile_25: reg.quantile25![0],
      quantile_75: reg.quantile75![0],
    });
    // not asked for: no such field, and the default JSON validates too
    const unasked = encodeStats(regression(2, 1, 20, Float64Array.from([3, 3])), [], false);
    expect(Object.keys(unasked[0]!)).toEqual(['mean', 'std', 'epistemic_std', 'aleatoric_std', 'interval']);
    for (const r of unasked) expect(predictionSchema('regression').strict().parse(r)).toEqual(r);
    expect(encodeStats(cls, ['a', 'b', 'c'], false)[1]!.label).toBe(
      ['a', 'b', 'c'][(cls as { label: Int32Array }).label[1]!],
    );
  });

  it('V2: one FP32 tensor per statistic with a V2 name, batch first', () => {
    const reg = regression(3, 2, 10, new Float64Array(6), 0.9, false, QUARTILES);
    expect(mcOutputs(reg).map((o) => [o.name, o.shape])).toEqual(
      STATS.regression.filter((d) => d.v2).map((d) => [d.v2, [3, 2]]),
    );
    // not asked for: the tensors served always only
    expect(mcOutputs(regression(3, 2, 10, new Float64Array(6))).map((o) => o.name)).toEqual(
      STATS.regression.filter((d) => d.v2 && d.served === 'always').map((d) => d.v2),
    );
    expect(mcOutputNames('regression')).toEqual([
      'mean',
      'std',
      'epistemic_std',
      'aleatoric_std',
      'lower',
      'upper',
      'quantile_25',
      'quantile_75',
    ]);
    expect(mcOutputNames('classification')).toEqual([
      'probabilities',
      'entropy',
      'mutual_information',
      'variation_ratio',
    ]);
    const cls = mcOutputs(classification(2, 3, 10));
    expect(cls.map((o) => o.shape)).toEqual([[2, 3], [2], [2], [2]]);
    expect(Array.from(cls[1]!.data)).toEqual(
      Array.from((classification(2, 3, 10) as { entropy: Float64Array }).entropy, (v) => Math.fround(v)),
    );
  });
});

describe('statistics that need the samples', () => {
  it('quantile_25 and quantile_75 are the type-7 quartiles of each row and output over the T samples', () => {
    const rows = 2;
    const outputs = 2;
    const T = 41;
    const s = regression(rows, outputs, T, new Float64Array(rows * outputs), 0.9, false, QUARTILES);
    expect(s.raw).toBeUndefined(); // kept for the quartiles, not handed out unasked
    const n = rows * outputs;
    for (let i = 0; i < n; i++) {
      // the same samples regression() feeds, sorted: T = 41, so the quartiles are the 11th and 31st
      const column = Array.from({ length: T }, (_, t) => Math.fround(Math.sin((t * n + i) * 1.7) * 3 + i)).sort(
        (a, b) => a - b,
      );
      expect(s.quantile25![i]).toBe(column[10]);
      expect(s.quantile75![i]).toBe(column[30]);
      expect(s.quantile25![i]!).toBeLessThan(s.quantile75![i]!);
    }
    // between order statistics: T = 4 samples 0, 1, 2, 3 give 0.75 and 2.25 (numpy.quantile)
    const acc = new RegressionAccumulator(1, 1, 4, true, null, false, QUARTILES);
    acc.add(Float32Array.from([3, 0, 2, 1]), 4);
    const q = acc.finish(new Float64Array(1), 0.5);
    expect([q.quantile25![0], q.quantile75![0]]).toEqual([0.75, 2.25]);
    expect(Array.from(q.raw!)).toEqual([3, 0, 2, 1]);
    // with the card's epistemic_scale s the quartiles are those of mean + s·(ŷ_t − mean), as epistemic_std is
    const scaled = new RegressionAccumulator(1, 1, 4, false, null, false, QUARTILES);
    scaled.add(Float32Array.from([3, 0, 2, 1]), 4);
    const h = scaled.finish(new Float64Array(1), 0.5, 0.5);
    expect([h.quantile25![0], h.quantile75![0]]).toEqual([1.125, 1.875]);
    expect(h.epistemicStd[0]).toBeCloseTo(0.5 * Math.sqrt(5 / 3), 12);
    expect(needsSamples(STATS.regression)).toBe(true);
    expect(needsSamples(STATS.classification)).toBe(false);
  });

  it('are served on request only: unasked, the accumulator keeps no samples and the record has no quartiles', () => {
    for (const d of [...STATS.regression, ...STATS.classification])
      if (d.needs === 'samples') expect(d.served).toBe('on-request');
    const out = Float32Array.from([3, 0, 2, 1]);
    const plain = new RegressionAccumulator(1, 1, 4, false);
    plain.add(out, 4);
    expect((plain as unknown as { kept?: Float32Array }).kept).toBeUndefined();
    const r = plain.finish(new Float64Array(1), 0.5);
    expect('quantile25' in r || 'quantile75' in r).toBe(false);
    // asked for one: that one only, equal to the value of both asked for
    const one = new RegressionAccumulator(1, 1, 4, false, null, false, ['quantile75']);
    one.add(out, 4);
    const o = one.finish(new Float64Array(1), 0.5);
    expect(['quantile25' in o, o.quantile75![0]]).toEqual([false, 2.25]);
    // the statistics served always are the same with or without the quartiles
    const both = new RegressionAccumulator(1, 1, 4, false, null, false, QUARTILES);
    both.add(out, 4);
    const b = both.finish(new Float64Array(1), 0.5);
    for (const k of ['mean', 'std', 'epistemicStd', 'aleatoricStd', 'lower', 'upper'] as const)
      expect(b[k]).toEqual(r[k]);
  });

  it('names resolve per task, by /v1 field or V2 tensor; an unknown one is reported', () => {
    expect(onRequestKeys('regression', ['quantile_75', 'quantile_25', 'quantile_75'], 'v1')).toEqual({
      keys: ['quantile75', 'quantile25'],
    });
    expect(onRequestKeys('regression', ['quantile_25'], 'v2')).toEqual({ keys: ['quantile25'] });
    expect(onRequestKeys('regression', ['mean'], 'v1')).toEqual({ unknown: 'mean' });
    expect(onRequestKeys('classification', ['quantile_25'], 'v1')).toEqual({ unknown: 'quantile_25' });
    expect(maskStatistics(statisticsMask(['quantile75']))).toEqual(['quantile75']);
    expect(statisticsMask(undefined)).toBe(0);
    expect(() => statisticsMask(['mean'])).toThrow('"mean" is not a statistic served on request');
  });
});
