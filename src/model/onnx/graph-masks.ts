/**
 * Dropout masks drawn inside the graph (issue 19 item 3): each live Dropout(x, p) becomes
 * x · keep / (1 − p), with `keep` computed by onnxruntime for x's own runtime shape, whatever it is
 * (attention weights [N·heads, L, L] carry no batch first), from a per-run key, so no mask is made on
 * the host or copied in.
 *
 * keep[i] = squares32(i, key_k) < (1 − p)·2³², where i is the element's flat index in x and key_k the
 * run's key of the k-th live dropout: Widynski's counter-based generator "Squares" (2020,
 * arXiv:2004.06278), four rounds of x = x² + y or z and a 32-bit rotation, in uint64 with Mul, Add and
 * BitShift only (onnxruntime's CPU kernels wrap uint64 Mul/Add modulo 2⁶⁴ and shift uint64; BitwiseXor
 * would need opset 18, which the models' other ops may not allow). The rotation is Add of the two
 * shifted halves, which share no bits. Keys come from the request's seed and the run (maskKeys), so the
 * same seed gives the same answer. Needs opset ≥ 11 (Range, BitShift).
 */
import {
  AttributeType,
  DataType,
  type Graph,
  type Model,
  type Node,
  type Tensor,
  floatRaw,
} from '../../onnx-proto/proto.js';
import { cloneModel, isDropout } from './graph-query.js';
import { type GraphInfo, ModelFormatError } from './inspect.js';
import { dropControlInputs, freezeBatchNorm } from './rewrite.js';

/** The graph input holding one int64 key per live dropout for the run ([K]). */
export const MASK_KEYS_INPUT = 'dropout_serve.mask_keys';
/** The first opset with Range and BitShift. */
export const HASH_MASK_MIN_OPSET = 11;

const UINT64 = 13;
const P = 'dropout_serve/hash';

const u64 = (name: string, v: bigint): Tensor => ({
  name,
  dims: [],
  data_type: UINT64,
  raw_data: new Uint8Array(BigUint64Array.of(v).buffer),
});
const i64 = (name: string, v: number): Tensor => ({
  name,
  dims: [],
  data_type: DataType.INT64,
  raw_data: new Uint8Array(BigInt64Array.of(BigInt(v)).buffer),
});
const f32 = (name: string, v: number): Tensor => ({
  name,
  dims: [],
  data_type: DataType.FLOAT,
  raw_data: floatRaw(Float32Array.of(v)),
});
const shift = (x: string, by: string, direction: 'LEFT' | 'RIGHT', y: string): Node => ({
  op_type: 'BitShift',
  input: [x, by],
  output: [y],
  attribute: [{ name: 'direction', type: AttributeType.STRING, s: new TextEncoder().encode(direction) }],
});
const op = (op_type: string, input: string[], y: string): Node => ({ op_type, input, output: [y] });

/** The constants every hashed dropout shares. */
function sharedConstants(): Tensor[] {
  return [i64(`${P}/zero`, 0), i64(`${P}/one`, 1), u64(`${P}/32`, 32n), f32(`${P}/0f`, 0)];
}

/** The keep threshold of rate p on the 32-bit output: keep when h < (1 − p)·2³². */
export const keepThreshold = (ratio: number): bigint => BigInt(Math.round((1 - ratio) * 2 ** 32));

/** One round of Squares on tensor `x`: x·x + `add`, then its 32-bit halves swapped (rotate). */
function squareRound(t: string, x: string, add: string, out: string, rotate: boolean): Node[] {
  const nodes = [op('Mul', [x, x], `${t}.sq`), op('Add', [`${t}.sq`, add], rotate ? `${t}.sum` : out)];
  if (!rotate) return nodes;
  return [
    ...nodes,
    shift(`${t}.sum`, `${P}/32`, 'RIGHT', `${t}.hi`),
    shift(`${t}.sum`, `${P}/32`, 'LEFT', `${t}.lo`),
    op('Add', [`${t}.hi`, `${t}.lo`], out),
  ];
}

/** The nodes replacing Dropout k on `x` (rate `ratio`) by x · keep/(1 − p), writing `y`. */
function hashDropoutNodes(k: number, x: string, ratio: number, y: string): { nodes: Node[]; inits: Tensor[] } {
  const t = `${P}.${k}`;
  const inits = [i64(`${t}/k`, k), u64(`${t}/threshold`, keepThreshold(ratio)), f32(`${t}/scale`, 1 / (1 - ratio))];
  const nodes: Node[] = [
    op('Size', [x], `${t}.n`),
    op('Range', [`${P}/zero`, `${t}.n`, `${P}/one`], `${t}.index`),
    {
      op_type: 'Cast',
      input: [`${t}.index`],
      output: [`${t}.ctr`],
      attribute: [{ name: 'to', type: AttributeType.INT, i: UINT64 }],
    },
    op('Gather', [`${P}.keys`, `${t}/k`], `${t}.key`),
    op('Mul', [`${t}.ctr`, `${t}.key`], `${t}.y`),
    op('Add', [`${t}.y`, `${t}.key`], `${t}.z`),
    ...squareRound(`${t}.r1`, `${t}.y`, `${t}.y`, `${t}.x1`, true),
    ...squareRound(`${t}.r2`, `${t}.x1`, `${t}.z`, `${t}.x2`, true),
    ...squareRound(`${t}.r3`, `${t}.x2`, `${t}.y`, `${t}.x3`, true),
    ...squareRound(`${t}.r4`, `${t}.x3`, `${t}.z`, `${t}.x4`, false),
    shift(`${t}.x4`, `${P}/32`, 'RIGHT', `${t}.h`),
    op('Less', [`${t}.h`, `${t}/threshold`], `${t}.keep`),
    op('Where', [`${t}.keep`, `${t}/scale`, `${P}/0f`], `${t}.flat`),
    op('Shape', [x], `${t}.shape`),
    op('Reshape', [`${t}.flat`, `${t}.shape`], `${t}.mask`),
    op('Mul', [x, `${t}.mask`], y),
  ];
  return { nodes: nodes.map((n, i) => ({ ...n, name: n.name ?? `${t}/${i}` })), inits };
}

/**
 * A copy of `model` whose live dropouts draw their masks in the graph (see the file comment), with a
 * new int64 input MASK_KEYS_INPUT [K] (K live dropouts, in node order; maskKeys makes them); rate-0
 * dropouts become Identity, BatchNorm in training mode is set to inference (as in every served graph).
 * Throws ModelFormatError below opset 11.
 */
export function hashMaskedModel(model: Model, info: GraphInfo): Model {
  if (info.opset < HASH_MASK_MIN_OPSET)
    throw new ModelFormatError(
      `in-graph dropout masks need opset ≥ ${HASH_MASK_MIN_OPSET}; the model has ${info.opset}`,
    );
  const m = cloneModel(model);
  const g = m.graph!;
  const nodes: Node[] = [
    {
      op_type: 'Cast',
      input: [MASK_KEYS_INPUT],
      output: [`${P}.keys`],
      attribute: [{ name: 'to', type: AttributeType.INT, i: UINT64 }],
      name: `${P}/keys`,
    },
  ];
  const inits: Tensor[] = sharedConstants();
  let live = 0;
  let d = 0;
  for (const n of g.node) {
    if (!isDropout(n)) {
      nodes.push(n);
      continue;
    }
    const ratio = info.dropouts[d++]!.ratio;
    if (ratio === 0) {
      nodes.push({
        ...n,
        op_type: 'Identity',
        input: n.input.slice(0, 1),
        output: n.output.slice(0, 1),
        attribute: [],
      });
      continue;
    }
    const hashed = hashDropoutNodes(live++, n.input[0]!, ratio, n.output[0]!);
    nodes.push(...hashed.nodes);
    inits.push(...hashed.inits);
  }
  g.node = nodes;
  g.initializer = [...(g.initializer ?? []), ...inits];
  g.input.push({
    name: MASK_KEYS_INPUT,
    type: { tensor_type: { elem_type: DataType.INT64, shape: { dim: [{ dim_value: live }] } } },
  });
  freezeBatchNorm(g);
  dropControlInputs(g, info.controlInputs);
  dropStaleShapes(g);
  return m;
}

/** value_info of tensors no node produces any more (Dropout's mask output) must go. */
function dropStaleShapes(g: Graph): void {
  const produced = new Set([...g.node.flatMap((n) => n.output), ...g.input.map((i) => i.name)]);
  g.value_info = (g.value_info ?? []).filter((v) => produced.has(v.name));
}

const MASK64 = (1n << 64n) - 1n;

/** splitmix64 (Steele et al. 2014): one 64-bit output of state `s`. */
function splitmix64(s: bigint): bigint {
  let z = (s + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * The keys of one run: for live dropout k, an odd 64-bit key from (seed, run, k) through splitmix64,
 * as int64 (the graph reinterprets them as uint64). `run` numbers the runs of one request, so each
 * chunk of samples draws fresh masks and the same seed gives the same answer.
 */
export function maskKeys(seed: number, run: number, live: number): BigInt64Array {
  const keys = new BigInt64Array(live);
  const base = splitmix64(BigInt.asUintN(64, BigInt(Math.trunc(seed))));
  for (let k = 0; k < live; k++) {
    const key = splitmix64(base ^ splitmix64((BigInt(run) << 16n) + BigInt(k))) | 1n;
    keys[k] = BigInt.asIntN(64, key);
  }
  return keys;
}

/** The reference of the graph's hash on the host (tests): Squares' 32-bit output for (counter, key). */
export function squares32(ctr: bigint, key: bigint): number {
  const k = BigInt.asUintN(64, key);
  const y = (ctr * k) & MASK64;
  const z = (y + k) & MASK64;
  const rot = (v: bigint): bigint => ((v >> 32n) | (v << 32n)) & MASK64;
  let x = rot((y * y + y) & MASK64);
  x = rot((x * x + z) & MASK64);
  x = rot((x * x + y) & MASK64);
  return Number(((x * x + z) & MASK64) >> 32n);
}
