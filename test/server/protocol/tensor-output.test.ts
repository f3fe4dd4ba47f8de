/** The class axis moves between a tensor output's layout and the record's (tensor-output.ts), and half floats. */
import { describe, expect, it } from 'vitest';
import { floatToHalf } from '../../../src/server/protocol/tensor-input.js';
import {
  argmaxRows,
  classGeometry,
  classesInPlace,
  classesLast,
  nestRows,
  positionDims,
} from '../../../src/server/protocol/tensor-output.js';

describe('the class axis', () => {
  it('[N, K, H, W] (axis 1): record row n·P + p holds the K classes of position p', () => {
    const dims = [2, 3, 2, 2];
    const data = Float32Array.from({ length: 24 }, (_, i) => i);
    const g = classGeometry(dims, 1);
    expect(g).toEqual({ outer: 2, classes: 3, inner: 4 });
    const last = classesLast(data, g);
    // row 1 (n = 0, p = 1): element (0, k, 0, 1) = k·4 + 1
    expect(Array.from(last.subarray(3, 6))).toEqual([1, 5, 9]);
    // row 6 (n = 1, p = 2): element (1, k, 1, 0) = 12 + k·4 + 2
    expect(Array.from(last.subarray(18, 21))).toEqual([14, 18, 22]);
    expect(classesInPlace(last, g)).toEqual(data);
    expect(positionDims(dims, 1)).toEqual([2, 2, 2]);
  });
  it('[N, L, K] (axis 2, token level) is already record order; [N, K] too', () => {
    const data = Float32Array.from({ length: 12 }, (_, i) => i);
    for (const [dims, axis] of [
      [[2, 3, 2], 2],
      [[6, 2], 1],
    ] as const) {
      const g = classGeometry(dims, axis);
      expect(g.inner).toBe(1);
      expect(classesLast(data, g)).toEqual(data);
    }
    expect(positionDims([2, 3, 2], 2)).toEqual([2, 3]);
  });
  it('argmax per row, the first on a tie', () => {
    expect(Array.from(argmaxRows([0.2, 0.5, 0.3, 0.4, 0.4, 0.2], 2, 3))).toEqual([1, 0]);
  });
  it('nestRows: one nested array per row; a row of no dims is its value', () => {
    expect(nestRows([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2])).toEqual([
      [
        [1, 2],
        [3, 4],
      ],
      [
        [5, 6],
        [7, 8],
      ],
    ]);
    expect(nestRows(['a', 'b'], [2])).toEqual(['a', 'b']);
  });
});

describe('floatToHalf', () => {
  it('rounds to the nearest half (ties to even), subnormals and overflow included', () => {
    // references: numpy.float16(v).view(uint16)
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [1e-5, 0x00a8],
      [6e-8, 0x0001],
      [Math.PI, 0x4248],
      [0.1, 0x2e66],
      [1 / 3, 0x3555],
      [2 ** -14, 0x0400],
      [1 + 2 ** -11, 0x3c00], // a tie: to even
      [1 + 3 * 2 ** -11, 0x3c02], // a tie: to even (up)
      [1e6, 0x7c00],
      [0, 0],
    ];
    for (const [v, bits] of cases) expect([v, floatToHalf(v)]).toEqual([v, bits]);
  });
});
