import { standardise, type TrainedModel } from '../../src/train/train.js';

/**
 * Closed form of MC dropout for a network with one dropout before the last linear layer (one output):
 * y = b + Σ_j w_j m_j h_j with m_j ∈ {0, 1/(1−p)}, so E[y] = the eval output and
 * Var[y] = Σ_j w_j² h_j² p/(1−p); both de-standardised to target units.
 */
export function closedFormOneDropout(m: TrainedModel, row: Float32Array): { mean: number; std: number } {
  const f = m.spec.inputs;
  const xs = standardise(Float64Array.from(row), 1, f, m.xMean, m.xStd);
  const l0 = m.net.layers[0]!;
  const l1 = m.net.layers[1]!;
  const p = m.spec.dropout[0]!;
  let evalOut = l1.b[0]!;
  let variance = 0;
  for (let j = 0; j < l0.out; j++) {
    let z = l0.b[j]!;
    for (let i = 0; i < f; i++) z += xs[i]! * l0.w[j * f + i]!;
    const h = Math.max(0, z);
    evalOut += l1.w[j]! * h;
    variance += l1.w[j]! ** 2 * h * h * (p / (1 - p));
  }
  return { mean: evalOut * m.yStd + m.yMean, std: Math.sqrt(variance) * m.yStd };
}
