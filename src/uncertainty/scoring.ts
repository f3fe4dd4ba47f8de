/** Proper scoring rules of a Gaussian predictive N(mean, std²) (float64, pure). */
import { normalCdf, normalPdf } from '../util/special-functions.js';

const LOG_2PI = Math.log(2 * Math.PI);

/** log N(y; mean, std²), nats (std floored at 1e-300). */
export function gaussianLogLik(y: number, mean: number, std: number): number {
  const s = Math.max(std, 1e-300);
  const z = (y - mean) / s;
  return -0.5 * (LOG_2PI + z * z) - Math.log(s);
}

/**
 * Continuous ranked probability score of N(mean, std²) at y, closed form (Gneiting & Raftery 2007,
 * eq. 21): CRPS = σ·[z·(2Φ(z) − 1) + 2φ(z) − 1/√π], z = (y − mean)/σ. Target units; lower is better;
 * for std → 0 it tends to |y − mean|.
 */
export function gaussianCrps(y: number, mean: number, std: number): number {
  if (!(std > 0)) return Math.abs(y - mean);
  const z = (y - mean) / std;
  return std * (z * (2 * normalCdf(z) - 1) + 2 * normalPdf(z) - 1 / Math.sqrt(Math.PI));
}
