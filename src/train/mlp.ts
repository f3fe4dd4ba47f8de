/**
 * A multilayer perceptron with dropout after every hidden activation:
 *   in → [Linear → act → Dropout(p_l)] × L → Linear → out
 * Weights are stored like torch.nn.Linear (W is out × in, row-major) in one flat parameter array, so
 * the optimiser, best-weights snapshots and the ONNX export each see a single buffer.
 * Dropout is inverted dropout exactly like torch.nn.Dropout: in training a unit is zeroed with
 * probability p and survivors are scaled by 1/(1−p); in evaluation it is the identity.
 */
import type { Rng } from '../util/rng.js';
import { erf } from '../util/special-functions.js';

export type Activation = 'relu' | 'tanh' | 'gelu';
export type FloatArray = Float32Array | Float64Array;
type FloatArrayCtor = Float32ArrayConstructor | Float64ArrayConstructor;

export interface MlpSpec {
  inputs: number;
  hidden: number[];
  outputs: number;
  activation: Activation;
  /** Dropout rate after each hidden layer (same length as `hidden`). */
  dropout: number[];
  /**
   * Dropout rate on the (standardised) inputs, the paper's network (Gal & Ghahramani 2016); 0 or absent:
   * none. The trainer applies it by masking the input rows (no parameters depend on it).
   */
  inputDropout?: number;
}

export interface Layer {
  in: number;
  out: number;
  /** out × in, row-major (torch.nn.Linear.weight layout). */
  w: FloatArray;
  b: FloatArray;
  gw: FloatArray;
  gb: FloatArray;
  /** Generated forward/backward code for this layer's shape (null: too wide, the generic loops run). */
  kernels: LayerKernels | null;
}

export interface Mlp {
  spec: MlpSpec;
  /** All parameters, layer by layer: W then b. */
  params: FloatArray;
  grads: FloatArray;
  layers: Layer[];
}

export function parameterCount(spec: MlpSpec): number {
  const sizes = [spec.inputs, ...spec.hidden, spec.outputs];
  let n = 0;
  for (let l = 0; l + 1 < sizes.length; l++) n += sizes[l]! * sizes[l + 1]! + sizes[l + 1]!;
  return n;
}

/**
 * Build a network with PyTorch's default nn.Linear initialisation: weights and biases uniform in
 * ±1/√fan_in (kaiming_uniform with a=√5 reduces to this bound).
 */
export function createMlp(spec: MlpSpec, rng: Rng, ArrayType: FloatArrayCtor = Float32Array): Mlp {
  if (spec.dropout.length !== spec.hidden.length) {
    throw new Error(`dropout has ${spec.dropout.length} rates for ${spec.hidden.length} hidden layers`);
  }
  const total = parameterCount(spec);
  const params = new ArrayType(total);
  const grads = new ArrayType(total);
  const sizes = [spec.inputs, ...spec.hidden, spec.outputs];
  const layers: Layer[] = [];
  let off = 0;
  for (let l = 0; l + 1 < sizes.length; l++) {
    const nin = sizes[l]!;
    const nout = sizes[l + 1]!;
    const bound = 1 / Math.sqrt(nin);
    const w = params.subarray(off, off + nin * nout);
    const gw = grads.subarray(off, off + nin * nout);
    off += nin * nout;
    const b = params.subarray(off, off + nout);
    const gb = grads.subarray(off, off + nout);
    off += nout;
    for (let i = 0; i < w.length; i++) w[i] = rng.uniform(-bound, bound);
    for (let i = 0; i < b.length; i++) b[i] = rng.uniform(-bound, bound);
    layers.push({ in: nin, out: nout, w, b, gw, gb, kernels: kernels(nin, nout) });
  }
  return { spec, params, grads, layers };
}

// --- activations -------------------------------------------------------------------------------

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

export function activate(kind: Activation, z: number): number {
  switch (kind) {
    case 'relu':
      return z > 0 ? z : 0;
    case 'tanh':
      return Math.tanh(z);
    case 'gelu':
      // exact GELU as torch.nn.GELU() (approximate='none'): x·Φ(x)
      return 0.5 * z * (1 + erf(z * SQRT1_2));
  }
}

/** d act / dz, evaluated from the pre-activation z (and the activation a for tanh). */
function activateGrad(kind: Activation, z: number, a: number): number {
  switch (kind) {
    case 'relu':
      return z > 0 ? 1 : 0;
    case 'tanh':
      return 1 - a * a;
    case 'gelu':
      return 0.5 * (1 + erf(z * SQRT1_2)) + z * INV_SQRT_2PI * Math.exp(-0.5 * z * z);
  }
}

// --- forward / backward -------------------------------------------------------------------------

/** Buffers for one forward/backward pass of up to `rows` rows. */
export interface Workspace {
  rows: number;
  /** Pre-activations of each hidden layer (rows × width). */
  z: FloatArray[];
  /** Post-dropout activations of each hidden layer (input of the next Linear). */
  h: FloatArray[];
  /** Network outputs (rows × outputs). */
  out: FloatArray;
  /** Gradient buffers for backprop (rows × max width), two to alternate between. */
  d0: FloatArray;
  d1: FloatArray;
}

export function createWorkspace(spec: MlpSpec, rows: number, ArrayType: FloatArrayCtor = Float32Array): Workspace {
  const maxWidth = Math.max(spec.inputs, spec.outputs, ...spec.hidden);
  return {
    rows,
    z: spec.hidden.map((w) => new ArrayType(rows * w)),
    h: spec.hidden.map((w) => new ArrayType(rows * w)),
    out: new ArrayType(rows * spec.outputs),
    d0: new ArrayType(rows * maxWidth),
    d1: new ArrayType(rows * maxWidth),
  };
}

// --- layer kernels -----------------------------------------------------------------------------
//
// For layers with at most KERNEL_MAX_IN inputs, forward and backward run code generated for the layer's
// exact shape: a row's inputs are loaded once into locals, and every dot product over the inputs is
// one unrolled expression (and, backward, one local accumulator per input). Measured 2-3× faster than
// the loops below for the seed network's 10 → 50 layer, because the loops re-load each input for every
// output and their short trip counts cost as much as the arithmetic. Only numbers are substituted into
// the generated source (no user input reaches it). Wider layers use the loops.

const KERNEL_MAX_IN = 64;

type ForwardKernel = (x: FloatArray, w: FloatArray, b: FloatArray, y: FloatArray, rows: number) => void;
type BackwardKernel = (
  input: FloatArray,
  delta: FloatArray,
  w: FloatArray,
  gw: FloatArray,
  gb: FloatArray,
  dIn: FloatArray | null,
  rows: number,
) => void;
interface LayerKernels {
  forward: ForwardKernel;
  backward: BackwardKernel;
}
const kernelCache = new Map<string, LayerKernels>();

function kernels(nin: number, nout: number): LayerKernels | null {
  if (nin > KERNEL_MAX_IN) return null;
  const key = `${nin}x${nout}`;
  let k = kernelCache.get(key);
  if (k) return k;
  const idx = Array.from({ length: nin }, (_, i) => i);
  const loads = idx.map((i) => `const x${i} = x[xo + ${i}];`).join(' ');
  const dot = idx.map((i) => `x${i} * w[wo + ${i}]`).join(' + ');
  const forwardSrc = `for (let r = 0; r < rows; r++) { const xo = r * ${nin}, yo = r * ${nout}; ${loads}
    for (let o = 0; o < ${nout}; o++) { const wo = o * ${nin}; y[yo + o] = b[o] + ${dot}; } }`;
  const gwUpd = idx.map((i) => `gw[wo + ${i}] += d * x${i};`).join(' ');
  const accInit = idx.map((i) => `let a${i} = 0;`).join(' ');
  const accUpd = idx.map((i) => `a${i} += d * w[wo + ${i}];`).join(' ');
  const accStore = idx.map((i) => `dIn[xo + ${i}] = a${i};`).join(' ');
  const backwardSrc = `if (dIn) {
    for (let r = 0; r < rows; r++) { const xo = r * ${nin}, dOff = r * ${nout}; ${loads.replaceAll('x[', 'input[')} ${accInit}
      for (let o = 0; o < ${nout}; o++) { const d = delta[dOff + o]; if (d === 0) continue; gb[o] += d; const wo = o * ${nin}; ${gwUpd} ${accUpd} }
      ${accStore} }
  } else {
    for (let r = 0; r < rows; r++) { const xo = r * ${nin}, dOff = r * ${nout}; ${loads.replaceAll('x[', 'input[')}
      for (let o = 0; o < ${nout}; o++) { const d = delta[dOff + o]; if (d === 0) continue; gb[o] += d; const wo = o * ${nin}; ${gwUpd} } }
  }`;
  k = {
    forward: new Function('x', 'w', 'b', 'y', 'rows', forwardSrc) as ForwardKernel,
    backward: new Function('input', 'delta', 'w', 'gw', 'gb', 'dIn', 'rows', backwardSrc) as BackwardKernel,
  };
  kernelCache.set(key, k);
  return k;
}

/** y[r, o] = b[o] + Σ_i x[r, i]·W[o, i] for r < rows. */
function linear(layer: Layer, x: FloatArray, rows: number, y: FloatArray): void {
  const { in: nin, out: nout, w, b } = layer;
  if (layer.kernels) {
    layer.kernels.forward(x, w, b, y, rows);
    return;
  }
  for (let r = 0; r < rows; r++) {
    const xo = r * nin;
    const yo = r * nout;
    for (let o = 0; o < nout; o++) {
      const wo = o * nin;
      // two partial sums: a single accumulator makes each add wait for the previous one
      let s0 = b[o]!;
      let s1 = 0;
      let i = 0;
      for (; i + 1 < nin; i += 2) {
        s0 += x[xo + i]! * w[wo + i]!;
        s1 += x[xo + i + 1]! * w[wo + i + 1]!;
      }
      if (i < nin) s0 += x[xo + i]! * w[wo + i]!;
      y[yo + o] = s0 + s1;
    }
  }
}

/**
 * Forward pass on `rows` rows of `x` (rows × inputs, already standardised).
 * `masks[l]` (rows × hidden[l], values 0 or 1/(1−p)) applies dropout after hidden layer l; pass null
 * for evaluation mode. Returns ws.out.
 */
export function forward(
  net: Mlp,
  x: FloatArray,
  rows: number,
  ws: Workspace,
  masks: (FloatArray | null)[] | null,
): FloatArray {
  const { spec, layers } = net;
  let input: FloatArray = x;
  for (let l = 0; l < spec.hidden.length; l++) {
    const z = ws.z[l]!;
    const h = ws.h[l]!;
    linear(layers[l]!, input, rows, z);
    const n = rows * spec.hidden[l]!;
    const mask = masks ? masks[l] : null;
    const kind = spec.activation;
    // one pass, no data-dependent branch (Math.max compiles to a max instruction)
    if (kind === 'relu' && mask) for (let i = 0; i < n; i++) h[i] = Math.max(z[i]!, 0) * mask[i]!;
    else if (kind === 'relu') for (let i = 0; i < n; i++) h[i] = Math.max(z[i]!, 0);
    else {
      for (let i = 0; i < n; i++) h[i] = activate(kind, z[i]!);
      if (mask) for (let i = 0; i < n; i++) h[i]! *= mask[i]!;
    }
    input = h;
  }
  linear(layers[layers.length - 1]!, input, rows, ws.out);
  return ws.out;
}

/**
 * Backward pass after `forward` with the same x, rows and masks: given dL/dout (rows × outputs) it
 * accumulates dL/dW and dL/db into net.grads (zero them first with net.grads.fill(0)).
 */
export function backward(
  net: Mlp,
  x: FloatArray,
  rows: number,
  ws: Workspace,
  masks: (FloatArray | null)[] | null,
  dOut: FloatArray,
): void {
  const { spec, layers } = net;
  const L = spec.hidden.length;
  let delta: FloatArray = dOut; // dL/d(output of layer l)
  let spare = ws.d0;
  for (let l = L; l >= 0; l--) {
    const layer = layers[l]!;
    const input = l === 0 ? x : ws.h[l - 1]!;
    const { in: nin, out: nout, w, gw, gb } = layer;
    // parameter gradients, and (below the first layer) dL/d(input) = δ · W in the same pass
    const dIn = l > 0 ? spare : null;
    const k = layer.kernels;
    if (k) k.backward(input, delta, w, gw, gb, dIn, rows);
    else dIn?.fill(0, 0, rows * nin);
    for (let r = 0; r < rows && !k; r++) {
      const xo = r * nin;
      const dOff = r * nout;
      for (let o = 0; o < nout; o++) {
        const d = delta[dOff + o]!;
        if (d === 0) continue;
        gb[o]! += d;
        const wo = o * nin;
        if (dIn) {
          for (let i = 0; i < nin; i++) {
            gw[wo + i]! += d * input[xo + i]!;
            dIn[xo + i]! += d * w[wo + i]!;
          }
        } else {
          for (let i = 0; i < nin; i++) gw[wo + i]! += d * input[xo + i]!;
        }
      }
    }
    if (!dIn) break;
    // then through dropout and the activation of hidden layer l-1
    const z = ws.z[l - 1]!;
    const h = ws.h[l - 1]!;
    const mask = masks ? masks[l - 1] : null;
    const n = rows * nin;
    const kind = spec.activation;
    if (kind === 'relu') {
      // d/dz relu(z)·m = m where z > 0 (z > 0 selects with no data-dependent branch in the loop body)
      if (mask) for (let i = 0; i < n; i++) dIn[i] = z[i]! > 0 ? dIn[i]! * mask[i]! : 0;
      else for (let i = 0; i < n; i++) dIn[i] = z[i]! > 0 ? dIn[i]! : 0;
      spare = dIn === ws.d0 ? ws.d1 : ws.d0;
      delta = dIn;
      continue;
    }
    for (let i = 0; i < n; i++) {
      const m = mask ? mask[i]! : 1;
      if (m === 0) {
        dIn[i] = 0;
        continue;
      }
      // h = act(z)·m, so act(z) = h/m; tanh's derivative needs it
      const a = kind === 'tanh' ? h[i]! / m : 0;
      dIn[i]! *= m * activateGrad(kind, z[i]!, a);
    }
    spare = dIn === ws.d0 ? ws.d1 : ws.d0;
    delta = dIn;
  }
}

// --- losses ------------------------------------------------------------------------------------

/** Mean squared error over rows × outputs; writes dL/dout into dOut. */
export function mseLoss(out: FloatArray, y: FloatArray, rows: number, outputs: number, dOut: FloatArray): number {
  const n = rows * outputs;
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const d = out[i]! - y[i]!;
    loss += d * d;
    dOut[i] = (2 * d) / n;
  }
  return loss / n;
}

/**
 * Gaussian negative log-likelihood with a predicted log-variance (Kendall & Gal 2017, eq. 8): each row's
 * outputs are (μ, s), s = log σ², and the loss is the mean over rows of
 *   ½·(log 2π + s + (y − μ)²·e^(−s)).
 * Writes dL/dμ = −(y − μ)·e^(−s)/rows and dL/ds = ½·(1 − (y − μ)²·e^(−s))/rows into dOut (rows × 2).
 * With `beta` > 0 the gradient is that of β-NLL (Seitzer et al. 2022): each row's NLL weighted by
 * (σ²)^β with the weight held constant (stop-gradient), i.e. both gradients × e^(β·s). β = 1 gives the
 * mean the gradient of ½·(y − μ)², whatever the predicted variance (a row cannot buy a smaller loss by
 * declaring itself noisy), and the variance ½·(σ² − (y − μ)²); the returned loss is the plain NLL.
 * s is clamped to ±MAX_LOG_VARIANCE (the gradient through s is 0 beyond, as for a clamp), so a wild step
 * cannot overflow e^(−s); standardised targets keep s far inside that range.
 */
export function gaussianNllLoss(out: FloatArray, y: FloatArray, rows: number, dOut: FloatArray, beta = 0): number {
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    const mu = out[2 * r]!;
    const raw = out[2 * r + 1]!;
    const s = raw > MAX_LOG_VARIANCE ? MAX_LOG_VARIANCE : raw < -MAX_LOG_VARIANCE ? -MAX_LOG_VARIANCE : raw;
    const d = y[r]! - mu;
    const w = d * d * Math.exp(-s);
    loss += 0.5 * (LOG_2PI + s + w);
    const weight = beta === 0 ? 1 : Math.exp(beta * s);
    dOut[2 * r] = (-d * Math.exp(-s) * weight) / rows;
    dOut[2 * r + 1] = s === raw ? (0.5 * (1 - w) * weight) / rows : 0;
  }
  return loss / rows;
}

/** Bound on a predicted log-variance in standardised units (e^±20: σ from 5e-5 to 2e4 target stds). */
import { MAX_LOG_VARIANCE } from '../uncertainty/moments.js';
const LOG_2PI = Math.log(2 * Math.PI);

/** Mean softmax cross-entropy; `labels[r]` is the class index of row r. Writes dL/dlogits. */
export function crossEntropyLoss(
  logits: FloatArray,
  labels: ArrayLike<number>,
  rows: number,
  classes: number,
  dOut: FloatArray,
): number {
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * classes;
    let max = -Infinity;
    for (let k = 0; k < classes; k++) max = Math.max(max, logits[o + k]!);
    let sum = 0;
    for (let k = 0; k < classes; k++) sum += Math.exp(logits[o + k]! - max);
    const logSum = max + Math.log(sum);
    const y = labels[r]!;
    loss += logSum - logits[o + y]!;
    for (let k = 0; k < classes; k++) {
      const p = Math.exp(logits[o + k]! - logSum);
      dOut[o + k] = (p - (k === y ? 1 : 0)) / rows;
    }
  }
  return loss / rows;
}

/** Softmax of each row of logits (rows × classes), numerically stable, float64 result. */
export function softmaxRows(logits: ArrayLike<number>, rows: number, classes: number): Float64Array {
  const out = new Float64Array(rows * classes);
  for (let r = 0; r < rows; r++) {
    const o = r * classes;
    let max = -Infinity;
    for (let k = 0; k < classes; k++) max = Math.max(max, logits[o + k]!);
    let sum = 0;
    for (let k = 0; k < classes; k++) {
      const e = Math.exp(logits[o + k]! - max);
      out[o + k] = e;
      sum += e;
    }
    for (let k = 0; k < classes; k++) out[o + k]! /= sum;
  }
  return out;
}

/** Draw one set of dropout masks (one per hidden layer, rows × width) from rng. */
export function drawMasks(spec: MlpSpec, rows: number, rng: Rng, into?: Float32Array[]): Float32Array[] {
  const masks = into ?? spec.hidden.map((w) => new Float32Array(rows * w));
  spec.hidden.forEach((w, l) => {
    rng.fillDropoutMask(masks[l]!.subarray(0, rows * w), spec.dropout[l]!);
  });
  return masks;
}
