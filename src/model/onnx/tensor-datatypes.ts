/**
 * The tensor datatypes a tensor model's inputs may have (model.ts Datatype), one row per datatype: its
 * ONNX element type, the array type its values travel in (model.ts TensorValues), its width, and how a
 * number becomes a value of it (for the self-check's synthetic and sample inputs).
 */
import { DataType } from '../../onnx-proto/proto.js';
import type { Datatype, TensorValues } from '../model.js';

type ArrayKind =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | BigInt64ArrayConstructor
  | Int32ArrayConstructor
  | Uint8ArrayConstructor
  | Uint16ArrayConstructor;

export interface DatatypeInfo {
  elemType: number;
  array: ArrayKind;
  bytes: number;
  /** Integer-valued (ids, masks, flags): the self-check feeds small valid ids (0 or 1), never noise. */
  integer: boolean;
  /** The values of `numbers` in this datatype (integers rounded, FP16 as IEEE half bits). */
  from(numbers: ArrayLike<number>): TensorValues;
}

export const DATATYPES: Record<Datatype, DatatypeInfo> = {
  FP32: { elemType: DataType.FLOAT, array: Float32Array, bytes: 4, integer: false, from: (v) => Float32Array.from(v) },
  FP16: { elemType: 10, array: Uint16Array, bytes: 2, integer: false, from: (v) => Uint16Array.from(v, toHalfBits) },
  FP64: { elemType: 11, array: Float64Array, bytes: 8, integer: false, from: (v) => Float64Array.from(v) },
  INT64: {
    elemType: DataType.INT64,
    array: BigInt64Array,
    bytes: 8,
    integer: true,
    from: (v) => BigInt64Array.from(Array.from(v, (x) => BigInt(Math.round(x)))),
  },
  INT32: { elemType: 6, array: Int32Array, bytes: 4, integer: true, from: (v) => Int32Array.from(v, Math.round) },
  BOOL: {
    elemType: 9,
    array: Uint8Array,
    bytes: 1,
    integer: true,
    from: (v) => Uint8Array.from(v, (x) => (x ? 1 : 0)),
  },
  UINT8: { elemType: 2, array: Uint8Array, bytes: 1, integer: true, from: (v) => Uint8Array.from(v, Math.round) },
};

/** The datatype of an ONNX element type, or null when a tensor model cannot take it. */
export function datatypeOf(elemType: number): Datatype | null {
  for (const [name, d] of Object.entries(DATATYPES)) if (d.elemType === elemType) return name as Datatype;
  return null;
}

/** Whether `data` is in the array type of `datatype`. */
export const holds = (datatype: Datatype, data: TensorValues): boolean => data instanceof DATATYPES[datatype].array;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 half bits of a number (round to nearest even; overflow to ±Infinity, subnormals kept). */
export function toHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && half & 1) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  return sign | (half + (rest > 0x1000 || (rest === 0x1000 && half & 1) ? 1 : 0));
}
