/**
 * The compute behind one training run: forward and backward on a minibatch, and the evaluation
 * forward on the validation rows. Two implementations with one interface:
 *   - WasmEngine: WebAssembly SIMD kernels generated for the network's shapes (wasm/kernels.ts); the
 *     network's parameters, gradients and every buffer move into one WebAssembly memory, so the
 *     optimiser and the rest of the trainer keep working on plain Float32Array views of it.
 *     ReLU networks only (the default and the seed network).
 *   - JsEngine: the JavaScript kernels of mlp.ts, for every activation.
 */
import { type Mlp, type Workspace, backward, createWorkspace, drawMasks, forward } from './mlp.js';
import { type MaskPairKernel, Rng } from '../util/rng.js';
import type { AdamKernel } from './optim.js';
import { Fn, V128, assemble } from '../util/wasm-asm.js';
import { buildKernels, isWide, type TrainKernels } from './wasm/kernels.js';

export type EngineKind = 'wasm' | 'js';

export interface TrainEngine {
  readonly kind: EngineKind;
  /** Minibatch inputs (batch × inputs), dropout masks per hidden layer, dL/dout (batch × outputs). */
  readonly xb: Float32Array;
  readonly masks: Float32Array[];
  readonly dOut: Float32Array;
  /** Adam's loop over this engine's parameters and gradients, if it has one (give it to the optimiser). */
  readonly adamKernel?: AdamKernel;
  /** Draw the masks of `rows` rows from rng (the stream of mlp.ts's drawMasks, on either engine). */
  drawMasks(rng: Rng, rows: number): void;
  /** Training forward of the first `rows` rows of xb with masks; returns the outputs buffer. */
  forward(rows: number): Float32Array;
  /** Gradients of the last forward given dOut, written into net.grads. */
  backward(rows: number): void;
  /** Call after every change of net.params (optimiser step). */
  paramsChanged(): void;
  /** Evaluation-mode outputs of every validation row (rows × outputs). */
  evalOutputs(): Float32Array;
}

/** Rows per evaluation call, so that validation buffers stay small however many rows there are. */
const EVAL_CHUNK = 1024;

let simd: boolean | undefined;

/** Whether this runtime validates a module with a v128 instruction (checked once). */
export function wasmSupported(): boolean {
  if (simd === undefined) {
    try {
      const f = new Fn('probe', []);
      f.f32(0).splat().set(f.local(V128));
      simd = WebAssembly.validate(assemble([f]));
    } catch {
      simd = false;
    }
  }
  return simd;
}

/** Choose and build the engine: WebAssembly for ReLU networks when available, unless `prefer` is js. */
export function createEngine(
  net: Mlp,
  batch: number,
  xVal: Float32Array,
  valRows: number,
  prefer: 'auto' | EngineKind = 'auto',
): TrainEngine {
  const wasmOk = net.spec.activation === 'relu' && wasmSupported();
  if (prefer === 'wasm' && !wasmOk) throw new Error('the WebAssembly engine needs ReLU and WebAssembly SIMD');
  if (prefer !== 'js' && wasmOk) return new WasmEngine(net, batch, xVal, valRows);
  return new JsEngine(net, batch, xVal, valRows);
}

class JsEngine implements TrainEngine {
  readonly kind = 'js';
  readonly xb: Float32Array;
  readonly masks: Float32Array[];
  readonly dOut: Float32Array;
  private readonly ws: Workspace;
  private readonly valWs: Workspace;

  constructor(
    private readonly net: Mlp,
    batch: number,
    private readonly xVal: Float32Array,
    private readonly valRows: number,
  ) {
    const { spec } = net;
    this.xb = new Float32Array(batch * spec.inputs);
    this.masks = drawMasks(spec, batch, new Rng(0));
    this.dOut = new Float32Array(batch * spec.outputs);
    this.ws = createWorkspace(spec, batch);
    this.valWs = createWorkspace(spec, valRows);
  }
  drawMasks(rng: Rng, rows: number): void {
    drawMasks(this.net.spec, rows, rng, this.masks);
  }
  forward(rows: number): Float32Array {
    return forward(this.net, this.xb, rows, this.ws, this.masks) as Float32Array;
  }
  backward(rows: number): void {
    this.net.grads.fill(0);
    backward(this.net, this.xb, rows, this.ws, this.masks, this.dOut);
  }
  paramsChanged(): void {}
  evalOutputs(): Float32Array {
    return forward(this.net, this.xVal, this.valRows, this.valWs, null) as Float32Array;
  }
}

/** Float32Array views carved out of one WebAssembly memory (16-byte aligned; offset 0 unused). */
class Arena {
  private readonly sizes: number[] = [];
  private views: Float32Array[] = [];
  memory: WebAssembly.Memory | null = null;

  /** Reserve `n` floats; returns the index of the view that `view(i)` gives after `commit`. */
  reserve(n: number): number {
    return this.sizes.push(n) - 1;
  }
  commit(): void {
    let bytes = 16;
    const offsets = this.sizes.map((n) => {
      const at = bytes;
      bytes += Math.ceil((n * 4) / 16) * 16 + 16;
      return at;
    });
    this.memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) + 1 });
    const buf = this.memory.buffer;
    this.views = this.sizes.map((n, i) => new Float32Array(buf, offsets[i]!, n));
  }
  view(i: number): Float32Array {
    return this.views[i]!;
  }
}

const ptr = (a: Float32Array): number => a.byteOffset;

class WasmEngine implements TrainEngine {
  readonly kind = 'wasm';
  readonly xb: Float32Array;
  readonly masks: Float32Array[];
  readonly dOut: Float32Array;
  private readonly k: TrainKernels;
  private readonly wt: (Float32Array | null)[];
  private readonly h: Float32Array[];
  private readonly out: Float32Array;
  private readonly d: [Float32Array, Float32Array];
  private readonly xVal: Float32Array;
  private readonly valH: Float32Array[];
  private readonly valOut: Float32Array;
  private readonly maskKernel: MaskPairKernel;
  readonly adamKernel: AdamKernel;

  constructor(
    private readonly net: Mlp,
    batch: number,
    xVal: Float32Array,
    private readonly valRows: number,
  ) {
    const { spec, layers } = net;
    const widths = [spec.inputs, ...spec.hidden, spec.outputs];
    const maxWidth = Math.max(...widths);
    const chunk = Math.min(EVAL_CHUNK, Math.max(1, valRows));
    const a = new Arena();
    const r = {
      params: a.reserve(net.params.length),
      grads: a.reserve(net.grads.length),
      wt: layers.map((l) => (isWide(l.out) ? a.reserve(l.in * l.out) : -1)),
      xb: a.reserve(batch * spec.inputs),
      masks: spec.hidden.map((w) => a.reserve(batch * w)),
      h: spec.hidden.map((w) => a.reserve(batch * w)),
      out: a.reserve(batch * spec.outputs),
      dOut: a.reserve(batch * spec.outputs),
      d0: a.reserve(batch * maxWidth),
      d1: a.reserve(batch * maxWidth),
      xVal: a.reserve(valRows * spec.inputs),
      valH: spec.hidden.map((w) => a.reserve(chunk * w)),
      valOut: a.reserve(valRows * spec.outputs),
      rngState: a.reserve(4),
      // Adam's float64 moments
      m: a.reserve(2 * net.params.length),
      v: a.reserve(2 * net.params.length),
    };
    a.commit();
    // move the parameters into the memory: net.params, net.grads and every layer's views now point there
    const params = a.view(r.params);
    const grads = a.view(r.grads);
    params.set(net.params);
    let off = 0;
    for (const layer of layers) {
      const nw = layer.in * layer.out;
      layer.w = params.subarray(off, off + nw);
      layer.gw = grads.subarray(off, off + nw);
      off += nw;
      layer.b = params.subarray(off, off + layer.out);
      layer.gb = grads.subarray(off, off + layer.out);
      off += layer.out;
    }
    net.params = params;
    net.grads = grads;
    this.wt = r.wt.map((i) => (i >= 0 ? a.view(i) : null));
    this.xb = a.view(r.xb);
    this.masks = r.masks.map((i) => a.view(i));
    this.h = r.h.map((i) => a.view(i));
    this.out = a.view(r.out);
    this.dOut = a.view(r.dOut);
    this.d = [a.view(r.d0), a.view(r.d1)];
    this.xVal = a.view(r.xVal);
    this.xVal.set(xVal.subarray(0, valRows * spec.inputs));
    this.valH = r.valH.map((i) => a.view(i));
    this.valOut = a.view(r.valOut);
    this.k = buildKernels(
      layers.map((l, i) => ({ nin: l.in, nout: l.out, hidden: i < layers.length - 1 })),
      a.memory!,
    );
    const state = new Int32Array(a.memory!.buffer, a.view(r.rngState).byteOffset, 4);
    const mask = this.k.mask;
    this.maskKernel = {
      state,
      fill: (out, from, pairs, threshold, keep) => mask(ptr(out) + 4 * from, pairs, threshold, keep, state.byteOffset),
    };
    this.adamKernel = this.adamOn(a.view(r.m), a.view(r.v));
    this.paramsChanged();
  }

  private adamOn(mView: Float32Array, vView: Float32Array): AdamKernel {
    const n = this.net.params.length;
    const [m, v] = [mView, vView].map((w) => new Float64Array(w.buffer, w.byteOffset, n)) as [
      Float64Array,
      Float64Array,
    ];
    const [adam, params, grads] = [
      this.k.adam,
      ptr(this.net.params as Float32Array),
      ptr(this.net.grads as Float32Array),
    ];
    const pairs = n >> 1;
    return {
      m,
      v,
      run: (...hyper) => {
        adam(params, grads, m.byteOffset, v.byteOffset, pairs, ...hyper);
        return 2 * pairs;
      },
    };
  }

  /** W for dot-product layers, Wᵀ for broadcast layers. */
  private weights(l: number): number {
    const wt = this.wt[l];
    return wt ? ptr(wt) : ptr(this.net.layers[l]!.w as Float32Array);
  }

  paramsChanged(): void {
    const { layers } = this.net;
    for (let l = 0; l < layers.length; l++) {
      const tr = this.k.tr[l];
      if (tr) tr(ptr(layers[l]!.w as Float32Array), ptr(this.wt[l]!));
    }
  }

  drawMasks(rng: Rng, rows: number): void {
    const { spec } = this.net;
    for (let l = 0; l < spec.hidden.length; l++)
      rng.fillDropoutMaskRange(this.masks[l]!, 0, rows * spec.hidden[l]!, spec.dropout[l]!, this.maskKernel);
  }

  forward(rows: number): Float32Array {
    const { layers } = this.net;
    const L = layers.length - 1;
    let input = ptr(this.xb);
    for (let l = 0; l < L; l++) {
      const h = ptr(this.h[l]!);
      this.k.fwd[l]!(input, this.weights(l), ptr(layers[l]!.b as Float32Array), h, ptr(this.masks[l]!), rows);
      input = h;
    }
    this.k.fwd[L]!(input, this.weights(L), ptr(layers[L]!.b as Float32Array), ptr(this.out), 0, rows);
    return this.out;
  }

  backward(rows: number): void {
    const { layers } = this.net;
    const L = layers.length - 1;
    let delta = ptr(this.dOut);
    let spare = 0;
    for (let l = L; l >= 0; l--) {
      const layer = layers[l]!;
      const input = l === 0 ? ptr(this.xb) : ptr(this.h[l - 1]!);
      const dIn = l > 0 ? ptr(this.d[spare]!) : 0;
      const mask = l > 0 ? ptr(this.masks[l - 1]!) : 0;
      this.k.bwd[l]!(
        input,
        delta,
        ptr(layer.w as Float32Array),
        ptr(layer.gw as Float32Array),
        ptr(layer.gb as Float32Array),
        dIn,
        mask,
        rows,
      );
      delta = dIn;
      spare ^= 1;
    }
  }

  evalOutputs(): Float32Array {
    const { layers, spec } = this.net;
    const L = layers.length - 1;
    for (let s = 0; s < this.valRows; s += EVAL_CHUNK) {
      const rows = Math.min(EVAL_CHUNK, this.valRows - s);
      let input = ptr(this.xVal) + s * spec.inputs * 4;
      for (let l = 0; l < L; l++) {
        const h = ptr(this.valH[l]!);
        this.k.eval[l]!(input, this.weights(l), ptr(layers[l]!.b as Float32Array), h, 0, rows);
        input = h;
      }
      this.k.eval[L]!(
        input,
        this.weights(L),
        ptr(layers[L]!.b as Float32Array),
        ptr(this.valOut) + s * spec.outputs * 4,
        0,
        rows,
      );
    }
    return this.valOut;
  }
}
