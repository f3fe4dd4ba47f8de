/**
 * A minimal WebAssembly binary writer: enough of the core, SIMD (v128) and bulk-memory instruction sets
 * to emit the training kernels (src/train/wasm/kernels.ts) and the dropout-mask generator
 * (src/model/onnx/masks.ts). Code is generated at run time for a network's exact layer shapes, so
 * offsets and trip counts are constants. Encodings: WebAssembly core spec 2.0, "Binary format"
 * (5.4 instructions; SIMD instructions are 0xFD followed by a LEB128 opcode).
 */

export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;
export type ValType = typeof I32 | typeof F32 | typeof F64 | typeof V128;

function uleb(out: number[], n: number): void {
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
}

function sleb(out: number[], n: number): void {
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return;
    }
    out.push(byte | 0x80);
  }
}

function name(out: number[], s: string): void {
  const bytes = new TextEncoder().encode(s);
  uleb(out, bytes.length);
  for (const b of bytes) out.push(b);
}

const f32Scratch = new DataView(new ArrayBuffer(4));

/** One function body. Locals are numbered after the parameters, as in the binary format. */
export class Fn {
  readonly code: number[] = [];
  private readonly locals: ValType[] = [];

  constructor(
    readonly exportName: string,
    readonly params: ValType[],
  ) {}

  /** Declare a local of `type` and return its index. */
  local(type: ValType): number {
    this.locals.push(type);
    return this.params.length + this.locals.length - 1;
  }

  private op(a: number, b?: number): this {
    this.code.push(a);
    if (b !== undefined) this.code.push(b);
    return this;
  }
  private simd(opcode: number): this {
    this.code.push(0xfd);
    uleb(this.code, opcode);
    return this;
  }
  private memarg(align: number, offset: number): this {
    if (!(offset >= 0 && offset < 2 ** 32)) throw new RangeError(`memory offset ${offset} out of range`);
    uleb(this.code, align);
    uleb(this.code, offset);
    return this;
  }

  // control
  block(): this {
    return this.op(0x02, 0x40);
  }
  loop(): this {
    return this.op(0x03, 0x40);
  }
  end(): this {
    return this.op(0x0b);
  }
  brIf(depth: number): this {
    this.op(0x0d);
    uleb(this.code, depth);
    return this;
  }
  select(): this {
    return this.op(0x1b);
  }

  // locals
  get(i: number): this {
    this.op(0x20);
    uleb(this.code, i);
    return this;
  }
  set(i: number): this {
    this.op(0x21);
    uleb(this.code, i);
    return this;
  }
  tee(i: number): this {
    this.op(0x22);
    uleb(this.code, i);
    return this;
  }

  // i32
  i32(n: number): this {
    this.op(0x41);
    sleb(this.code, n | 0);
    return this;
  }
  i32Add(): this {
    return this.op(0x6a);
  }
  i32Sub(): this {
    return this.op(0x6b);
  }
  i32Eqz(): this {
    return this.op(0x45);
  }
  i32Load(offset: number): this {
    return this.op(0x28).memarg(2, offset);
  }
  i32Store(offset: number): this {
    return this.op(0x36).memarg(2, offset);
  }
  i32And(): this {
    return this.op(0x71);
  }
  i32Xor(): this {
    return this.op(0x73);
  }
  i32Shl(): this {
    return this.op(0x74);
  }
  i32ShrU(): this {
    return this.op(0x76);
  }
  i32Rotl(): this {
    return this.op(0x77);
  }
  i32GeU(): this {
    return this.op(0x4f);
  }
  /** local i += n */
  addTo(i: number, n: number): this {
    return this.get(i).i32(n).i32Add().set(i);
  }

  // f32
  f32(x: number): this {
    this.op(0x43);
    f32Scratch.setFloat32(0, x, true);
    for (let k = 0; k < 4; k++) this.code.push(f32Scratch.getUint8(k));
    return this;
  }
  f32Load(offset: number): this {
    return this.op(0x2a).memarg(0, offset);
  }
  f32Store(offset: number): this {
    return this.op(0x38).memarg(0, offset);
  }
  f32Add(): this {
    return this.op(0x92);
  }
  f32Sub(): this {
    return this.op(0x93);
  }
  f32Mul(): this {
    return this.op(0x94);
  }
  f32Div(): this {
    return this.op(0x95);
  }
  f32Sqrt(): this {
    return this.op(0x91);
  }
  f32Max(): this {
    return this.op(0x97);
  }
  f32Gt(): this {
    return this.op(0x5e);
  }

  // v128 (f32x4)
  v128Load(offset: number): this {
    return this.simd(0x00).memarg(0, offset);
  }
  v128Store(offset: number): this {
    return this.simd(0x0b).memarg(0, offset);
  }
  splat(): this {
    return this.simd(0x13);
  }
  lane(l: number): this {
    return this.simd(0x1f).op(l);
  }
  vAnd(): this {
    return this.simd(0x4e);
  }
  vGt(): this {
    return this.simd(0x44);
  }
  vAdd(): this {
    return this.simd(0xe4);
  }
  vSub(): this {
    return this.simd(0xe5);
  }
  vMul(): this {
    return this.simd(0xe6);
  }
  vDiv(): this {
    return this.simd(0xe7);
  }
  vMax(): this {
    return this.simd(0xe9);
  }
  vSqrt(): this {
    return this.simd(0xe3);
  }

  // v128 (i32x4)
  iSplat(): this {
    return this.simd(0x11);
  }
  iAdd(): this {
    return this.simd(0xae);
  }
  iMul(): this {
    return this.simd(0xb5);
  }
  iShl(): this {
    return this.simd(0xab);
  }
  iShrU(): this {
    return this.simd(0xad);
  }
  iGeU(): this {
    return this.simd(0x40);
  }
  vOr(): this {
    return this.simd(0x50);
  }
  vXor(): this {
    return this.simd(0x51);
  }

  // v128 (f64x2)
  /** v128.load64_zero: two float32 into the low half. */
  load64Zero(offset: number): this {
    return this.simd(0x5d).memarg(3, offset);
  }
  /** v128.store64_lane 0: the low half (two float32). */
  store64Low(offset: number): this {
    return this.simd(0x5b).memarg(3, offset).op(0);
  }
  /** f64x2.promote_low_f32x4 */
  promoteLow(): this {
    return this.simd(0x5f);
  }
  /** f32x4.demote_f64x2_zero */
  demoteZero(): this {
    return this.simd(0x5e);
  }
  dSplat(): this {
    return this.simd(0x14);
  }
  dAdd(): this {
    return this.simd(0xf0);
  }
  dSub(): this {
    return this.simd(0xf1);
  }
  dMul(): this {
    return this.simd(0xf2);
  }
  dDiv(): this {
    return this.simd(0xf3);
  }
  dSqrt(): this {
    return this.simd(0xef);
  }

  // bulk memory
  /** memory.copy: (dst, src, n) → copies n bytes. */
  memoryCopy(): this {
    this.code.push(0xfc);
    uleb(this.code, 10);
    this.code.push(0x00, 0x00);
    return this;
  }
  i32Mul(): this {
    return this.op(0x6c);
  }

  /** The function's body in the binary format (local declarations, code, end). */
  body(): number[] {
    const out: number[] = [];
    const groups: [number, ValType][] = [];
    for (const t of this.locals) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    uleb(out, groups.length);
    for (const [count, t] of groups) {
      uleb(out, count);
      out.push(t);
    }
    for (const b of this.code) out.push(b);
    out.push(0x0b);
    const sized: number[] = [];
    uleb(sized, out.length);
    return sized.concat(out);
  }
}

function section(out: number[], id: number, content: number[]): void {
  out.push(id);
  uleb(out, content.length);
  for (const b of content) out.push(b);
}

/** A module importing one memory as env.memory, exporting every function (no results). */
export function assemble(fns: Fn[]): Uint8Array {
  const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const sigs: string[] = [];
  const typeIdx = fns.map((f) => {
    const key = f.params.join(',');
    let i = sigs.indexOf(key);
    if (i < 0) i = sigs.push(key) - 1;
    return i;
  });
  const types: number[] = [];
  uleb(types, sigs.length);
  for (const key of sigs) {
    const params = key === '' ? [] : key.split(',').map(Number);
    types.push(0x60);
    uleb(types, params.length);
    for (const p of params) types.push(p);
    types.push(0x00);
  }
  section(out, 1, types);
  const imports: number[] = [1];
  name(imports, 'env');
  name(imports, 'memory');
  imports.push(0x02, 0x00, 0x01); // memory, limits: min 1 page, no max
  section(out, 2, imports);
  const funcs: number[] = [];
  uleb(funcs, fns.length);
  for (const t of typeIdx) uleb(funcs, t);
  section(out, 3, funcs);
  const exports: number[] = [];
  uleb(exports, fns.length);
  fns.forEach((f, i) => {
    name(exports, f.exportName);
    exports.push(0x00);
    uleb(exports, i);
  });
  section(out, 7, exports);
  const code: number[] = [];
  uleb(code, fns.length);
  for (const f of fns) for (const b of f.body()) code.push(b);
  section(out, 10, code);
  return Uint8Array.from(out);
}
