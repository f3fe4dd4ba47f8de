/**
 * WebAssembly SIMD (f32x4) kernels for training a ReLU dropout MLP, generated for one network's layer
 * shapes (asm.ts writes the binary). All pointers are byte offsets into one imported memory; every
 * buffer is row-major float32, W is out × in (torch.nn.Linear layout).
 *
 * Per layer:
 *   fwd{l}   y = act(x·Wᵀ + b)·mask, act = ReLU for hidden layers (identity for the output layer);
 *   eval{l}  the same without the mask (hidden layers only). Wide layers (≥ 4 outputs) broadcast one input
 *            across 4 outputs per lane group and read Wᵀ (kept up to date by tr{l}); narrow layers
 *            (1–3 outputs) take dot products over the inputs and read W.
 *   tr{l}    Wᵀ ← W (in × out), after every optimiser step; only for wide layers.
 *   bwd{l}   dW = δᵀ·x and db = Σ_r δ (written, not accumulated), and for l > 0 the gradient at the
 *            layer's input, gated by the ReLU and dropout of the layer below:
 *            dIn = (δ·W) ⊙ [h > 0]·mask, where h is that layer's output (= this layer's input).
 * Summation runs in float32 in a fixed order, so results are deterministic; they differ from the
 * float64-accumulating JavaScript kernels in mlp.ts by float32 rounding only.
 *
 * Per network: mask (the dropout masks of util/rng.ts) and adam (the optimiser's update of optim.ts),
 * copies of JavaScript loops that give the same bits, so a model trains to the same bytes as before
 * they existed, 0.94× the CPU of a 4000-epoch run.
 */
import { F32, F64, Fn, I32, V128, assemble } from '../../util/wasm-asm.js';

/** How many 4-lane vectors one pass keeps in registers (x86-64 has 16 xmm registers). */
const MAX_VECS = 8;

interface Block {
  start: number;
  vecs: number;
  tail: number;
}

/** Split n lanes into blocks of at most MAX_VECS vectors; the last block carries the n % 4 tail. */
export function blocks(n: number): Block[] {
  const nv = Math.floor(n / 4);
  const tail = n % 4;
  const out: Block[] = [];
  for (let v = 0; v < nv; v += MAX_VECS) out.push({ start: v * 4, vecs: Math.min(MAX_VECS, nv - v), tail: 0 });
  if (tail) {
    const last = out[out.length - 1];
    if (last && last.vecs < MAX_VECS) last.tail = tail;
    else out.push({ start: nv * 4, vecs: 0, tail });
  }
  return out;
}

export const isWide = (nout: number): boolean => nout >= 4;

/** none: output layer; relu: hidden layer in evaluation; dropout: hidden layer with ReLU then mask. */
type Act = 'none' | 'relu' | 'dropout';

/** fwd: (x, wt or w, b, y, mask, rows) */
function forwardBroadcast(fnName: string, nin: number, nout: number, act: Act): Fn {
  const f = new Fn(fnName, [I32, I32, I32, I32, I32, I32]);
  const [x, wt, b, y, mask, rows] = [0, 1, 2, 3, 4, 5];
  const px = f.local(I32),
    py = f.local(I32),
    pm = f.local(I32),
    pw = f.local(I32),
    pxi = f.local(I32),
    i = f.local(I32);
  const xf = f.local(F32);
  const xs = f.local(V128),
    zero = f.local(V128);
  const acc = Array.from({ length: MAX_VECS }, () => f.local(V128));
  const tl = Array.from({ length: 3 }, () => f.local(F32));
  f.f32(0).splat().set(zero);
  f.block().get(rows).i32Eqz().brIf(0);
  f.get(x).set(px).get(y).set(py).get(mask).set(pm);
  f.loop();
  for (const blk of blocks(nout)) {
    for (let u = 0; u < blk.vecs; u++)
      f.get(b)
        .v128Load((blk.start + 4 * u) * 4)
        .set(acc[u]!);
    for (let k = 0; k < blk.tail; k++)
      f.get(b)
        .f32Load((blk.start + 4 * blk.vecs + k) * 4)
        .set(tl[k]!);
    f.get(wt).set(pw).get(px).set(pxi).i32(nin).set(i);
    f.loop();
    f.get(pxi).f32Load(0).tee(xf).splat().set(xs);
    for (let u = 0; u < blk.vecs; u++)
      f.get(acc[u]!)
        .get(xs)
        .get(pw)
        .v128Load((blk.start + 4 * u) * 4)
        .vMul()
        .vAdd()
        .set(acc[u]!);
    for (let k = 0; k < blk.tail; k++)
      f.get(tl[k]!)
        .get(xf)
        .get(pw)
        .f32Load((blk.start + 4 * blk.vecs + k) * 4)
        .f32Mul()
        .f32Add()
        .set(tl[k]!);
    f.addTo(pw, nout * 4).addTo(pxi, 4);
    f.get(i).i32(1).i32Sub().tee(i).brIf(0).end();
    for (let u = 0; u < blk.vecs; u++) {
      const off = (blk.start + 4 * u) * 4;
      f.get(py).get(acc[u]!);
      if (act !== 'none') f.get(zero).vMax();
      if (act === 'dropout') f.get(pm).v128Load(off).vMul();
      f.v128Store(off);
    }
    for (let k = 0; k < blk.tail; k++) {
      const off = (blk.start + 4 * blk.vecs + k) * 4;
      f.get(py).get(tl[k]!);
      if (act !== 'none') f.f32(0).f32Max();
      if (act === 'dropout') f.get(pm).f32Load(off).f32Mul();
      f.f32Store(off);
    }
  }
  f.addTo(px, nin * 4)
    .addTo(py, nout * 4)
    .addTo(pm, nout * 4);
  f.get(rows).i32(1).i32Sub().tee(rows).brIf(0).end();
  f.end();
  return f;
}

function forwardDot(fnName: string, nin: number, nout: number, act: Act): Fn {
  const f = new Fn(fnName, [I32, I32, I32, I32, I32, I32]);
  const [x, w, b, y, mask, rows] = [0, 1, 2, 3, 4, 5];
  const px = f.local(I32),
    py = f.local(I32),
    pm = f.local(I32);
  const s = f.local(F32);
  const acc = Array.from({ length: 4 }, () => f.local(V128));
  const nv = Math.floor(nin / 4);
  f.block().get(rows).i32Eqz().brIf(0);
  f.get(x).set(px).get(y).set(py).get(mask).set(pm);
  f.loop();
  for (let o = 0; o < nout; o++) {
    const used = Math.min(4, nv);
    for (let a = 0; a < used; a++) f.f32(0).splat().set(acc[a]!);
    for (let v = 0; v < nv; v++) {
      const a = acc[v % 4]!;
      f.get(a)
        .get(px)
        .v128Load(v * 16)
        .get(w)
        .v128Load((o * nin + 4 * v) * 4)
        .vMul()
        .vAdd()
        .set(a);
    }
    f.get(b)
      .f32Load(o * 4)
      .set(s);
    if (used > 0) {
      for (let a = 1; a < used; a++) f.get(acc[0]!).get(acc[a]!).vAdd().set(acc[0]!);
      for (let l = 0; l < 4; l++) f.get(s).get(acc[0]!).lane(l).f32Add().set(s);
    }
    for (let i = nv * 4; i < nin; i++)
      f.get(s)
        .get(px)
        .f32Load(i * 4)
        .get(w)
        .f32Load((o * nin + i) * 4)
        .f32Mul()
        .f32Add()
        .set(s);
    f.get(py).get(s);
    if (act !== 'none') f.f32(0).f32Max();
    if (act === 'dropout')
      f.get(pm)
        .f32Load(o * 4)
        .f32Mul();
    f.f32Store(o * 4);
  }
  f.addTo(px, nin * 4)
    .addTo(py, nout * 4)
    .addTo(pm, nout * 4);
  f.get(rows).i32(1).i32Sub().tee(rows).brIf(0).end();
  f.end();
  return f;
}

/** tr: (w, wt) */
function transpose(fnName: string, nin: number, nout: number): Fn {
  const f = new Fn(fnName, [I32, I32]);
  const [w, wt] = [0, 1];
  const po = f.local(I32),
    pt = f.local(I32),
    o = f.local(I32),
    i = f.local(I32);
  f.get(wt).set(po).i32(nout).set(o);
  f.loop();
  f.get(po).set(pt).i32(nin).set(i);
  f.loop();
  f.get(pt).get(w).f32Load(0).f32Store(0);
  f.addTo(w, 4).addTo(pt, nout * 4);
  f.get(i).i32(1).i32Sub().tee(i).brIf(0).end();
  f.addTo(po, 4);
  f.get(o).i32(1).i32Sub().tee(o).brIf(0).end();
  return f;
}

/** The locals of a backward kernel (params 0–7: input, delta, w, gw, gb, dIn, mask, rows). */
interface BackwardLocals {
  pgw: number;
  pgb: number;
  pdc: number;
  pin: number;
  pd: number;
  r: number;
  o: number;
  pdi: number;
  pm: number;
  pwo: number;
  pdo: number;
  df: number;
  sb: number;
  ds: number;
  zero: number;
  acc: number[];
  tl: number[];
}

const [INPUT, DELTA, W, GW, GB, DIN, MASK, ROWS] = [0, 1, 2, 3, 4, 5, 6, 7];

/**
 * dW[o, :] = Σ_r δ[r, o]·x[r, :] and db[o] = Σ_r δ[r, o]: outputs outer, rows inner, so each block of dW
 * stays in registers for the whole batch.
 */
function weightGradients(f: Fn, v: BackwardLocals, bl: Block[], nin: number, nout: number): void {
  const { pgw, pgb, pdc, pin, pd, r, o, df, sb, ds, zero, acc, tl } = v;
  f.get(GW).set(pgw).get(GB).set(pgb).get(DELTA).set(pdc).i32(nout).set(o);
  f.loop();
  bl.forEach((blk, bi) => {
    for (let u = 0; u < blk.vecs; u++) f.get(zero).set(acc[u]!);
    for (let k = 0; k < blk.tail; k++) f.f32(0).set(tl[k]!);
    if (bi === 0) f.f32(0).set(sb);
    f.get(INPUT).set(pin).get(pdc).set(pd).get(ROWS).set(r);
    f.loop();
    f.get(pd).f32Load(0).tee(df).splat().set(ds);
    for (let u = 0; u < blk.vecs; u++)
      f.get(acc[u]!)
        .get(ds)
        .get(pin)
        .v128Load((blk.start + 4 * u) * 4)
        .vMul()
        .vAdd()
        .set(acc[u]!);
    for (let k = 0; k < blk.tail; k++)
      f.get(tl[k]!)
        .get(df)
        .get(pin)
        .f32Load((blk.start + 4 * blk.vecs + k) * 4)
        .f32Mul()
        .f32Add()
        .set(tl[k]!);
    if (bi === 0) f.get(sb).get(df).f32Add().set(sb);
    f.addTo(pin, nin * 4).addTo(pd, nout * 4);
    f.get(r).i32(1).i32Sub().tee(r).brIf(0).end();
    for (let u = 0; u < blk.vecs; u++)
      f.get(pgw)
        .get(acc[u]!)
        .v128Store((blk.start + 4 * u) * 4);
    for (let k = 0; k < blk.tail; k++)
      f.get(pgw)
        .get(tl[k]!)
        .f32Store((blk.start + 4 * blk.vecs + k) * 4);
    if (bi === 0) f.get(pgb).get(sb).f32Store(0);
  });
  f.addTo(pgw, nin * 4)
    .addTo(pgb, 4)
    .addTo(pdc, 4);
  f.get(o).i32(1).i32Sub().tee(o).brIf(0).end();
}

/** One block of dIn[r, :] = (Σ_o δ[r, o]·W[o, :]) ⊙ [h > 0]·mask. */
function inputGradientBlock(f: Fn, v: BackwardLocals, blk: Block, nin: number, nout: number): void {
  const { pin, pd, o, pdi, pm, pwo, pdo, df, ds, zero, acc, tl } = v;
  for (let u = 0; u < blk.vecs; u++) f.get(zero).set(acc[u]!);
  for (let k = 0; k < blk.tail; k++) f.f32(0).set(tl[k]!);
  f.get(W).set(pwo).get(pd).set(pdo).i32(nout).set(o);
  f.loop();
  f.get(pdo).f32Load(0).tee(df).splat().set(ds);
  for (let u = 0; u < blk.vecs; u++)
    f.get(acc[u]!)
      .get(ds)
      .get(pwo)
      .v128Load((blk.start + 4 * u) * 4)
      .vMul()
      .vAdd()
      .set(acc[u]!);
  for (let k = 0; k < blk.tail; k++)
    f.get(tl[k]!)
      .get(df)
      .get(pwo)
      .f32Load((blk.start + 4 * blk.vecs + k) * 4)
      .f32Mul()
      .f32Add()
      .set(tl[k]!);
  f.addTo(pwo, nin * 4).addTo(pdo, 4);
  f.get(o).i32(1).i32Sub().tee(o).brIf(0).end();
  for (let u = 0; u < blk.vecs; u++) {
    const off = (blk.start + 4 * u) * 4;
    // [h > 0] is all-ones lanes where h > 0; AND with the mask's bits keeps the mask value there
    f.get(pdi).get(acc[u]!).get(pin).v128Load(off).get(zero).vGt().get(pm).v128Load(off).vAnd().vMul().v128Store(off);
  }
  for (let k = 0; k < blk.tail; k++) {
    const off = (blk.start + 4 * blk.vecs + k) * 4;
    f.get(pdi)
      .get(tl[k]!)
      .get(pm)
      .f32Load(off)
      .f32(0)
      .get(pin)
      .f32Load(off)
      .f32(0)
      .f32Gt()
      .select()
      .f32Mul()
      .f32Store(off);
  }
}

/** dIn for every row, gated by the ReLU and dropout of the layer below. */
function inputGradients(f: Fn, v: BackwardLocals, bl: Block[], nin: number, nout: number): void {
  const { pin, pd, r, pdi, pm } = v;
  f.get(INPUT).set(pin).get(DIN).set(pdi).get(MASK).set(pm).get(DELTA).set(pd).get(ROWS).set(r);
  f.loop();
  for (const blk of bl) inputGradientBlock(f, v, blk, nin, nout);
  f.addTo(pin, nin * 4)
    .addTo(pdi, nin * 4)
    .addTo(pm, nin * 4)
    .addTo(pd, nout * 4);
  f.get(r).i32(1).i32Sub().tee(r).brIf(0).end();
}

/** bwd: (input, delta, w, gw, gb, dIn, mask, rows); dIn = 0 skips the input gradient. */
function backwardKernel(fnName: string, nin: number, nout: number, withInputGrad: boolean): Fn {
  const f = new Fn(fnName, [I32, I32, I32, I32, I32, I32, I32, I32]);
  // locals in a fixed order (their indices are part of the generated code)
  const [pgw, pgb, pdc, pin, pd, r, o] = Array.from({ length: 7 }, () => f.local(I32));
  const [pdi, pm, pwo, pdo] = Array.from({ length: 4 }, () => f.local(I32));
  const [df, sb] = [f.local(F32), f.local(F32)];
  const [ds, zero] = [f.local(V128), f.local(V128)];
  const acc = Array.from({ length: MAX_VECS }, () => f.local(V128));
  const tl = Array.from({ length: 3 }, () => f.local(F32));
  const v = { pgw, pgb, pdc, pin, pd, r, o, pdi, pm, pwo, pdo, df, sb, ds, zero, acc, tl } as BackwardLocals;
  const bl = blocks(nin);
  f.f32(0).splat().set(zero);
  f.block().get(ROWS).i32Eqz().brIf(0);
  weightGradients(f, v, bl, nin, nout);
  if (withInputGrad) inputGradients(f, v, bl, nin, nout);
  f.end();
  return f;
}

/**
 * mask: (out, pairs, threshold, keep, state) — the pair loop of Rng.fillDropoutMaskRange (util/rng.ts)
 * instruction for instruction: xoshiro128** from the four state words at `state` (read, advanced `pairs`
 * draws, written back), each draw deciding two units, high half first: keep where half ≥ threshold, else 0.
 * Same stream, same float32 values (keep is rounded to float32 by the call, as the JavaScript loop's
 * store rounds it), so the masks, and every trained network, are the same bytes.
 */
function maskKernel(fnName: string): Fn {
  const f = new Fn(fnName, [I32, I32, I32, F32, I32]);
  const [out, pairs, threshold, keep, state] = [0, 1, 2, 3, 4];
  const s0 = f.local(I32),
    s1 = f.local(I32),
    s2 = f.local(I32),
    s3 = f.local(I32),
    m = f.local(I32),
    r = f.local(I32),
    t = f.local(I32);
  const zero = f.local(F32);
  const st = [s0, s1, s2, s3];
  for (const [k, s] of st.entries())
    f.get(state)
      .i32Load(4 * k)
      .set(s);
  f.f32(0).set(zero);
  f.block().get(pairs).i32Eqz().brIf(0);
  f.loop();
  f.get(s1).i32(5).i32Mul().set(m);
  f.get(m).i32(7).i32Rotl().i32(9).i32Mul().set(r);
  f.get(s1).i32(9).i32Shl().set(t);
  f.get(s2).get(s0).i32Xor().set(s2);
  f.get(s3).get(s1).i32Xor().set(s3);
  f.get(s1).get(s2).i32Xor().set(s1);
  f.get(s0).get(s3).i32Xor().set(s0);
  f.get(s2).get(t).i32Xor().set(s2);
  f.get(s3).i32(11).i32Rotl().set(s3);
  const unit = (offset: number, half: () => Fn): void => {
    f.get(out).get(keep).get(zero);
    half().get(threshold).i32GeU().select().f32Store(offset);
  };
  unit(0, () => f.get(r).i32(16).i32ShrU());
  unit(4, () => f.get(r).i32(0xffff).i32And());
  f.addTo(out, 8);
  f.get(pairs).i32(1).i32Sub().tee(pairs).brIf(0);
  f.end().end();
  for (const [k, s] of st.entries())
    f.get(state)
      .get(s)
      .i32Store(4 * k);
  return f;
}

/**
 * adam: (params, grads, m, v, pairs, stepSize, sqrtBc2, β1, 1 − β1, β2, 1 − β2, eps, λ) — Adam.step's loop
 * (train/optim.ts) on the first 2·pairs parameters, two per f64x2 vector, every operation in the same
 * order and precision (float32 parameters and gradients promoted to float64, moments in float64, the new
 * parameter rounded to float32): IEEE arithmetic without fused multiply-adds, so the same bits.
 */
function adamKernel(fnName: string): Fn {
  const f = new Fn(fnName, [I32, I32, I32, I32, I32, F64, F64, F64, F64, F64, F64, F64, F64]);
  const [params, grads, m, v, pairs] = [0, 1, 2, 3, 4];
  const consts = [5, 6, 7, 8, 9, 10, 11, 12].map((arg) => {
    const l = f.local(V128);
    f.get(arg).dSplat().set(l);
    return l;
  });
  const [stepSize, sqrtBc2, beta1, c1, beta2, c2, eps, wd] = consts as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const p = f.local(V128),
    g = f.local(V128),
    mi = f.local(V128),
    vi = f.local(V128);
  f.block().get(pairs).i32Eqz().brIf(0);
  f.loop();
  f.get(params).load64Zero(0).promoteLow().set(p);
  f.get(grads).load64Zero(0).promoteLow().get(wd).get(p).dMul().dAdd().set(g);
  f.get(m).get(beta1).get(m).v128Load(0).dMul().get(c1).get(g).dMul().dAdd().tee(mi).v128Store(0);
  f.get(v).get(beta2).get(v).v128Load(0).dMul().get(c2).get(g).dMul().get(g).dMul().dAdd().tee(vi).v128Store(0);
  f.get(params).get(p).get(stepSize).get(mi).dMul();
  f.get(vi).dSqrt().get(sqrtBc2).dDiv().get(eps).dAdd().dDiv().dSub().demoteZero().store64Low(0);
  f.addTo(params, 8).addTo(grads, 8).addTo(m, 16).addTo(v, 16);
  f.get(pairs).i32(1).i32Sub().tee(pairs).brIf(0);
  f.end().end();
  return f;
}

export interface LayerKernelSpec {
  nin: number;
  nout: number;
  hidden: boolean;
}

export interface TrainKernels {
  /** Training forward (hidden layers: ReLU then dropout mask). */
  fwd: ((x: number, w: number, b: number, y: number, mask: number, rows: number) => void)[];
  /** Evaluation forward (no mask; the mask argument is ignored). */
  eval: ((x: number, w: number, b: number, y: number, mask: number, rows: number) => void)[];
  tr: (((w: number, wt: number) => void) | null)[];
  /** Dropout masks: see maskKernel. */
  mask: (out: number, pairs: number, threshold: number, keep: number, state: number) => void;
  /** Adam's update: see adamKernel. */
  adam: (params: number, grads: number, m: number, v: number, pairs: number, ...hyper: number[]) => void;
  bwd: ((
    input: number,
    delta: number,
    w: number,
    gw: number,
    gb: number,
    dIn: number,
    mask: number,
    rows: number,
  ) => void)[];
}

/** Generate, compile and instantiate the kernels for `layers` against `memory`. */
export function buildKernels(layers: LayerKernelSpec[], memory: WebAssembly.Memory): TrainKernels {
  const fns: Fn[] = [];
  layers.forEach(({ nin, nout, hidden }, l) => {
    const fwd = isWide(nout) ? forwardBroadcast : forwardDot;
    fns.push(fwd(`fwd${l}`, nin, nout, hidden ? 'dropout' : 'none'));
    if (hidden) fns.push(fwd(`eval${l}`, nin, nout, 'relu'));
    if (isWide(nout)) fns.push(transpose(`tr${l}`, nin, nout));
    fns.push(backwardKernel(`bwd${l}`, nin, nout, l > 0));
  });
  fns.push(maskKernel('mask'), adamKernel('adam'));
  const module = new WebAssembly.Module(assemble(fns));
  const ex = new WebAssembly.Instance(module, { env: { memory } }).exports as Record<string, (...a: number[]) => void>;
  return {
    fwd: layers.map((_, l) => ex[`fwd${l}`]!),
    eval: layers.map(({ hidden }, l) => ex[hidden ? `eval${l}` : `fwd${l}`]!),
    tr: layers.map(({ nout }, l) => (isWide(nout) ? ex[`tr${l}`]! : null)),
    bwd: layers.map((_, l) => ex[`bwd${l}`]!),
    mask: ex.mask!,
    adam: ex.adam!,
  };
}
