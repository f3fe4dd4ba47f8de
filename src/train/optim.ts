/**
 * Adam with L2 weight decay, the semantics of torch.optim.Adam(weight_decay=λ) (not AdamW): the decay
 * is added to the gradient before the moment updates, g ← g + λ·θ.
 * Kingma & Ba 2015, Algorithm 1; PyTorch docs for torch.optim.Adam.
 */
import type { FloatArray } from './mlp.js';

export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export class Adam {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly m: Float64Array;
  private readonly v: Float64Array;
  private t = 0;

  /** `kernel`: a compiled copy of step's loop, whose moments this optimiser then keeps (engine.ts). */
  constructor(
    size: number,
    opts: AdamOptions,
    private readonly kernel?: AdamKernel,
  ) {
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.m = kernel?.m ?? new Float64Array(size);
    this.v = kernel?.v ?? new Float64Array(size);
    if (this.m.length !== size || this.v.length !== size)
      throw new Error('Adam: the kernel has moments of another size');
  }

  /** One update of params from grads (same length as the optimiser; the kernel's own buffers if it has one). */
  step(params: FloatArray, grads: FloatArray): void {
    this.t++;
    const { beta1, beta2, eps, weightDecay, m, v } = this;
    const bc1 = 1 - beta1 ** this.t;
    const bc2 = 1 - beta2 ** this.t;
    const stepSize = this.lr / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    const done = this.kernel
      ? this.kernel.run(stepSize, sqrtBc2, beta1, 1 - beta1, beta2, 1 - beta2, eps, weightDecay)
      : 0;
    for (let i = done; i < params.length; i++) {
      const g = grads[i]! + weightDecay * params[i]!;
      const mi = beta1 * m[i]! + (1 - beta1) * g;
      const vi = beta2 * v[i]! + (1 - beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      // PyTorch: θ ← θ − lr/bc1 · m / (√v/√bc2 + eps)
      params[i]! -= (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
    }
  }
}

/**
 * Adam.step's loop compiled over fixed parameters, gradients and moments (the trainer's WebAssembly
 * engine): the same operations in the same order, so the same bits.
 */
export interface AdamKernel {
  readonly m: Float64Array;
  readonly v: Float64Array;
  /** Update the first parameters (as many as it vectorises); returns how many, the rest left to step. */
  run(
    stepSize: number,
    sqrtBc2: number,
    b1: number,
    c1: number,
    b2: number,
    c2: number,
    eps: number,
    wd: number,
  ): number;
}
