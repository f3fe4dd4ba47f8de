/**
 * The smoke run of `npm run bench -- tensors --smoke` (bench/tensors.ts): each bench fixture loads through
 * src/model/formats.ts as a tensor model, MC and predict run and are timed, and the answers have the
 * shapes of the output layout; a tabular model is refused with a clear message.
 */
import { describe, expect, it } from 'vitest';
import { CASES, loadTensorModel, runTensorCases } from '../../bench/tensors.js';

describe('npm run bench -- tensors --smoke', () => {
  it('loads each fixture as a tensor model, times MC against predict, answers in the output layout', async () => {
    const results = await runTensorCases(true);
    expect(results.map((r) => r.tensorCase.fixture)).toEqual(CASES.map((c) => c.fixture));
    for (const r of results) {
      const c = r.tensorCase;
      expect(r.answer.outputDims, c.fixture).toEqual(c.outputDims);
      // classifiers: one record row per position (rows × the dims other than batch and class axis 1)
      const positions = c.outputDims.slice(2).reduce((a, b) => a * b, 1);
      expect(r.answer.stats).toMatchObject({
        kind: 'classification',
        samples: r.samples,
        rows: c.rows * positions,
        classes: c.outputDims[1],
      });
      expect(r.samples).toBe(4);
      expect(Number.isFinite(r.mcUs) && r.mcUs > 0).toBe(true);
      expect(Number.isFinite(r.predictUs) && r.predictUs > 0).toBe(true);
      expect(r.rssPeakMb).toBeGreaterThanOrEqual(r.rssBeforeMb);
    }
  });

  it('refuses a tabular model with a message that names it', async () => {
    await expect(loadTensorModel('diabetes', 'models/diabetes/model.onnx')).rejects.toThrow(
      'model diabetes did not load as a tensor model: layout tabular',
    );
  });
});
