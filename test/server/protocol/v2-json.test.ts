import { describe, expect, it } from 'vitest';
import { type V2Output, encodeInferBody, inferJson } from '../../../src/server/protocol/v2.js';
import { Rng } from '../../../src/util/rng.js';

/** What the infer body was before it was written directly: JSON.stringify of the response with arrays. */
const viaArrays = (head: object, outputs: V2Output[]): string =>
  JSON.stringify({
    ...head,
    outputs: outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape, data: Array.from(o.data) })),
  });

describe('the V2 infer JSON body (inferJson)', () => {
  it('is JSON.stringify of the response, byte for byte, for any values, names and heads', () => {
    const rng = new Rng(7);
    const special = [
      0,
      -0,
      1,
      -1,
      0.1,
      1e-45,
      3.4028234663852886e38,
      1e21,
      1e-7,
      123456789,
      Number.NaN,
      Infinity,
      -Infinity,
    ];
    for (let trial = 0; trial < 300; trial++) {
      const outputs: V2Output[] = Array.from({ length: 1 + (trial % 4) }, (_, k) => {
        const n = trial % 7;
        const int = k === 2;
        const data = int ? new Int32Array(n) : new Float32Array(n);
        for (let i = 0; i < n; i++)
          data[i] = trial % 3 === 0 ? special[(trial + i) % special.length]! : rng.normal() * 10 ** ((trial % 9) - 4);
        return { name: k === 1 ? `out "${trial}"\\n` : `o${k}`, datatype: int ? 'INT32' : 'FP32', shape: [1, n], data };
      });
      const head =
        trial % 5 === 0
          ? { model_name: 'm', model_version: '2', id: 'a"b', parameters: { mc_samples: 3, seed: trial } }
          : { model_name: `model ${trial}`, model_version: '1' };
      const text = inferJson(head, outputs);
      expect(text).toBe(viaArrays(head, outputs));
      expect(JSON.parse(text)).toEqual(JSON.parse(viaArrays(head, outputs)));
    }
    expect(inferJson({} as never, [])).toBe('{"outputs":[]}');
  });

  it('is the body encodeInferBody sends when no output is asked for in binary', () => {
    const outputs: V2Output[] = [
      { name: 'mean', datatype: 'FP32', shape: [2], data: Float32Array.from([1.5, 204.534027]) },
    ];
    const res = { model_name: 'diabetes', model_version: '1', parameters: { mc_samples: 100 }, outputs };
    const { body, headerLength, contentType } = encodeInferBody({ inputs: [] } as never, res);
    expect([body, headerLength, contentType]).toEqual([
      '{"model_name":"diabetes","model_version":"1","parameters":{"mc_samples":100},"outputs":[{"name":"mean","datatype":"FP32","shape":[2],"data":[1.5,204.53402709960938]}]}',
      null,
      'application/json',
    ]);
  });
});
