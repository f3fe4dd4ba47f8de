/**
 * Ensembles of MC dropout networks (--members, src/train/ensemble.ts): the mixture's moments in closed
 * form, and the exported graph served by the runtime against the trainer's mixture (predict = the
 * members' average; each MC pass one member's, within Monte Carlo error), with onnxruntime's own Dropout
 * as a third sampler.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { OnnxModel } from '../../src/model/onnx/model.js';
import { inspect } from '../../src/model/onnx/inspect.js';
import type { RegressionStats } from '../../src/uncertainty/record.js';
import { run } from '../../src/train/cli.js';
import { ensembleMembers, ensembleRecord, mixPredictives, selectorKeeps } from '../../src/train/ensemble.js';
import { exportOnnx } from '../../src/train/export-onnx.js';
import { createMlp } from '../../src/train/mlp.js';
import { type FittedNetwork, ensemblePrediction, mcPredictive, standardise } from '../../src/train/train.js';
import { Rng } from '../../src/util/rng.js';
import { heteroNet } from '../helpers/hetero.js';
import { tiledTrainRuns } from '../helpers/ort-tiled.js';

/** A member: heteroNet's shape and standardisation with its own weights (seed), homoscedastic or not. */
function member(seed: number, hetero: boolean): FittedNetwork {
  const base = heteroNet();
  const spec = { ...base.spec, outputs: hetero ? 2 : 1 };
  const net = createMlp(spec, new Rng(seed));
  // spread the members apart so that their disagreement is a visible part of the mixture's variance
  net.layers[1]!.b[0] = (seed % 3) - 1;
  return { ...base, spec, net, noise: hetero ? 'heteroscedastic' : 'homoscedastic' };
}

const ensemble = (hetero: boolean): FittedNetwork => {
  const [first, ...rest] = [31, 32, 33].map((s) => member(s, hetero));
  return { ...first!, ensemble: rest };
};

const ROWS = [
  [1.2, -0.3],
  [-2, 0.8],
  [0.1, -1.4],
];
const dir = mkdtempSync(join(tmpdir(), 'ds-ensemble-'));

describe('mixPredictives: the uniform mixture in closed form', () => {
  it('mean of means; within-member variance plus the spread of the means; mean aleatoric variance', () => {
    const p = (mean: number, v: number, a: number) => ({
      mean: Float64Array.of(mean),
      epistemicVar: Float64Array.of(v),
      aleatoricVar: Float64Array.of(a),
    });
    const m = mixPredictives([p(1, 0.5, 2), p(3, 1.5, 4), p(8, 1, 0)]);
    expect(m.mean[0]).toBeCloseTo(4, 14);
    // (0.5 + 1.5 + 1)/3 + ((1−4)² + (3−4)² + (8−4)²)/3 = 1 + 26/3
    expect(m.epistemicVar[0]).toBeCloseTo(1 + 26 / 3, 13);
    expect(m.aleatoricVar![0]).toBeCloseTo(2, 14);
    expect(mixPredictives([p(1, 0.5, 2)]).epistemicVar[0]).toBe(0.5);
  });

  it('selectors: member k is kept with 1/(M − k) of the passes that reach it, so each gets 1/M', () => {
    for (const M of [2, 3, 5]) {
      const q = selectorKeeps(M);
      let reach = 1;
      const share = q.map((qk) => {
        const s = reach * qk;
        reach *= 1 - qk;
        return s;
      });
      for (const s of [...share, reach]) expect(s).toBeCloseTo(1 / M, 14);
      expect(ensembleRecord(M).selector_dropout).toEqual(q.map((x) => 1 - x));
    }
  });

  it('members beyond one only where the calibration is cross-fitted (regression)', () => {
    expect(ensembleMembers(3, 'regression', 'crossfit')).toBe(3);
    expect(ensembleMembers(3, 'regression', 'winner')).toBe(1);
    expect(ensembleMembers(3, 'classification', 'validation')).toBe(1);
  });
});

for (const hetero of [false, true]) {
  describe(`an exported ensemble of 3 ${hetero ? 'heteroscedastic' : 'homoscedastic'} networks, served`, () => {
    const m = ensemble(hetero);
    const bytes = exportOnnx(m, {});
    const x = Float32Array.from(ROWS.flat());
    const xs = standardise(Float64Array.from(ROWS.flat()), 3, 2, m.xMean, m.xStd);
    let served: OnnxModel;
    beforeAll(async () => {
      const file = join(dir, `e${hetero ? 'h' : ''}.onnx`);
      writeFileSync(file, bytes);
      const cardFile = join(dir, `e${hetero ? 'h' : ''}.json`);
      const roles = hetero ? { output_roles: { mean: 'prediction', log_variance: 'log_variance' } } : {};
      const dropout = [0.3, 0.3, 0.3, ...ensembleRecord(3).selector_dropout];
      writeFileSync(cardFile, JSON.stringify({ task: 'regression', features: ['a', 'b'], dropout, ...roles }));
      served = await OnnxModel.load('e', file, cardFile);
    });
    afterAll(() => served.close());

    it('the graph has every member’s Dropout and the two selectors, in the card’s order', () => {
      const { info } = inspect(bytes);
      expect(info.dropouts.map((d) => Number(d.ratio.toFixed(6)))).toEqual([0.3, 0.3, 0.3, 0.666667, 0.5]);
      expect(served.mcAvailable).toBe(true);
    });

    it("predict is the members' average (float32 rounding)", async () => {
      const got = await served.predict(x, 3);
      const want = ensemblePrediction(m, xs, 3);
      for (let i = 0; i < 3; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-5 * (1 + Math.abs(want[i]!)));
      // and not any one member's
      const alone = ensemblePrediction({ ...m, ensemble: [] }, xs, 3);
      expect(Math.max(...want.map((w, i) => Math.abs(w - alone[i]!)))).toBeGreaterThan(0.1);
    });

    it("MC: the served mean and variances are the trainer's mixture and onnxruntime's Dropout's (T = 6000, within MC error)", async () => {
      const T = 6000;
      const r = (await served.sample(x, 3, { samples: T, interval: 0.9, seed: 5 })).stats as RegressionStats;
      const p = mcPredictive(m, xs, 3, T, 77);
      const ortRuns = await tiledTrainRuns(bytes);
      for (let i = 0; i < 3; i++) {
        const out = await ortRuns.run(ROWS[i]!, T);
        const mu = out.prediction!;
        const mean = mu.reduce((a, b) => a + b, 0) / T;
        const epi = mu.reduce((a, b) => a + (b - mean) ** 2, 0) / (T - 1);
        const alea = hetero ? out.log_variance!.reduce((a, b) => a + Math.exp(b), 0) / T : 0;
        for (const [what, wantMean, wantVar, wantAlea] of [
          ['trainer', p.mean[i]!, p.epistemicVar[i]!, hetero ? p.aleatoricVar![i]! : 0],
          ['onnxruntime', mean, epi, alea],
        ] as const) {
          const tol = 4 * Math.sqrt(wantVar / T) * Math.SQRT2;
          expect(Math.abs(r.mean[i]! - wantMean), `${what} mean, row ${i}`).toBeLessThan(tol);
          expect(Math.abs(r.epistemicStd[i]! / Math.sqrt(wantVar) - 1), `${what} epistemic, row ${i}`).toBeLessThan(
            0.06,
          );
          if (hetero)
            expect(Math.abs(r.aleatoricStd[i]! ** 2 / wantAlea - 1), `${what} aleatoric, row ${i}`).toBeLessThan(0.08);
        }
        // the members' disagreement is part of the spread: more than the average member's own variance
        const alone = [m, ...m.ensemble!].map((e) => mcPredictive({ ...e, ensemble: [] }, xs, 3, 2000, 9));
        const within = alone.reduce((a, q) => a + q.epistemicVar[i]!, 0) / 3;
        expect(p.epistemicVar[i]!).toBeGreaterThan(within * 1.05);
      }
      await ortRuns.release();
    });
  });
}

/** The training CLI on diabetes (a 5-epoch grid of one candidate) with `extra`: exit code, its output, the model's folder. */
async function tinyTune(
  name: string,
  extra: string[],
): Promise<{ code: number; stdout: string; stderr: string; dir: string }> {
  const out = mkdtempSync(join(tmpdir(), `ds-ensemble-${name}-`));
  const text = { stdout: '', stderr: '' };
  const capture = (k: 'stdout' | 'stderr') =>
    vi.spyOn(process[k], 'write').mockImplementation((s) => {
      text[k] += String(s);
      return true;
    });
  const spies = [capture('stdout'), capture('stderr')];
  try {
    const code = await run([
      ...['--data', 'data/diabetes.csv', '--target', 'target', '--name', name, '--out', out, '--seed', '1'],
      ...['--tune', '--tune-epochs', '5', '--tune-dropout', '0.1', '--tune-weight-decay', '1', '--threads', '0'],
      ...extra,
    ]);
    return { code, ...text, dir: join(out, name) };
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
}

describe('the training CLI with --members 2', () => {
  it('writes an ensemble the server loads against its card, which says how the answer is formed', async () => {
    const { code, dir } = await tinyTune('e2', ['--members', '2', '--quiet']);
    expect(code).toBe(0);
    const card = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    expect(card.ensemble).toEqual(ensembleRecord(2));
    expect(card.tuning.calibration).toMatchObject({ source: 'crossfit', members: 2 });
    expect(card.dropout).toEqual([0.1, 0.1, 0.5]);
    const served = await OnnxModel.load('e2', join(dir, 'model.onnx'), join(dir, 'model.json'));
    try {
      expect((served.describe() as { ensemble?: unknown }).ensemble).toEqual(ensembleRecord(2));
      const r = await served.sample(Float32Array.from(card.feature_stats.mean), 1, {
        samples: 50,
        interval: 0.9,
        seed: 1,
      });
      expect(Number.isFinite((r.stats as RegressionStats).std[0])).toBe(true);
    } finally {
      await served.close();
    }
  });
});

describe('--members where the calibration is not cross-fitted', () => {
  it('serves one network and says so', async () => {
    const { code, stderr, dir } = await tinyTune('v2', ['--members', '2', '--calibration', 'validation']);
    expect(code).toBe(0);
    expect(stderr).toContain(
      "note: --members 2 applies where the calibration is cross-fitted (regression, the full grid); this run calibrated on 'validation', so it serves one network",
    );
    expect(JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')).ensemble).toBeUndefined();
  });

  it("a model served without a refit (calibration winner): its summary counts no '0 steps'", async () => {
    const { code, stdout } = await tinyTune('w', ['--members', '2', '--calibration', 'winner']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/epochs run 5 \(best 5\), \d+\.\d+ s \(/);
    expect(stdout).not.toContain(' 0 steps');
  });
});
