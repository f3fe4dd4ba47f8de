/**
 * `npx tsx bench/v2-binary-codec.ts`: the V2 codecs alone (no HTTP), a 256-row × 10-feature FP32 request
 * decoded from the binary tensor extension (src/server/protocol/v2-binary.ts) vs from JSON (JSON.parse of
 * the body + the rows into a Float32Array), and a 256 × 1 FP32 response encoded binary vs JSON.
 * Ratios of A/B alternated in one run (bench/lib.ts ab). The HTTP comparison belongs to the route.
 */
import { parseBinaryRequest, encodeResponse } from '../src/server/protocol/v2-binary.js';
import { ab, fmtUs } from './lib.js';

const rows = 256;
const F = 10;
const x = new Float32Array(rows * F).map((_, i) => Math.fround(Math.sin(i) * 100));
const head = JSON.stringify({
  inputs: [{ name: 'input', shape: [rows, F], datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }],
});
const binary = Buffer.concat([Buffer.from(head), Buffer.from(x.buffer)]);
const json = Buffer.from(
  JSON.stringify({ inputs: [{ name: 'input', shape: [rows, F], datatype: 'FP32', data: Array.from(x) }] }),
);
const headerLength = String(Buffer.byteLength(head));

let r = await ab(
  async () => parseBinaryRequest(binary, headerLength),
  async () =>
    Float32Array.from((JSON.parse(json.toString('utf8')) as { inputs: { data: number[] }[] }).inputs[0]!.data),
);
console.log(
  `request decode ${rows}×${F} FP32: binary ${fmtUs(r.aUs)} (${binary.length} B) vs JSON ${fmtUs(r.bUs)} (${json.length} B): JSON/binary ${(r.bUs / r.aUs).toFixed(1)}×`,
);
const y = new Float32Array(rows).map((_, i) => Math.fround(Math.cos(i)));
const out = [{ name: 'y', shape: [rows, 1], datatype: 'FP32' as const, data: y }];
r = await ab(
  async () => encodeResponse({ model_name: 'm' }, out, () => true),
  async () => encodeResponse({ model_name: 'm' }, out, () => false),
);
console.log(
  `response encode ${rows}×1 FP32: binary ${fmtUs(r.aUs)} vs JSON ${fmtUs(r.bUs)}: JSON/binary ${(r.bUs / r.aUs).toFixed(1)}×`,
);
