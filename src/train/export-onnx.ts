/**
 * Export a trained model to ONNX (opset 17, IR 8):
 *
 *   input [batch, F] ─ Sub(x_mean) ─ Div(x_std) ─ [Dropout(input ratio)] ─ [Gemm ─ act ─ Dropout(ratio, training_mode)] × L ─ Gemm ─┬
 *     regression:     ─ Mul(y_std) ─ Add(y_mean) → prediction [batch, 1]
 *     heteroscedastic regression: two last Gemms on the same hidden output,
 *                     mean row ─ Mul(y_std) ─ Add(y_mean) → prediction [batch, 1]
 *                     log-variance row, bias + 2·log(y_std) → log_variance [batch, 1] (log σ², target units²)
 *     classification: → logits [batch, K] ─ Softmax → probabilities [batch, K]
 * The input dropout (optional, `spec.inputDropout`) acts on the standardised inputs, as in the paper's
 * network (Gal & Ghahramani 2016). An ensemble (`m.ensemble`, regression) has one such network per member
 * on the shared standardisation (names prefixed `members.j.`), mixed before the destandardisation by
 * selectors that are Dropout ops too (mixNodes).
 *
 * Every dropout is a real ONNX Dropout op. Its `training_mode` input is the graph input
 * `training_mode` (bool scalar), so any ONNX runtime runs the model in eval mode with
 * `training_mode = false` and in Monte Carlo mode with `training_mode = true`. (A default initializer
 * for it would be neater, but onnxruntime-node does not accept feeds for overridable initializers:
 * measured with 1.30, the feed is silently ignored.)
 * The output is byte-identical for the same trained weights: no timestamps, fixed names and order.
 */
import {
  AttributeType,
  DataType,
  type Model,
  type Node,
  type Tensor,
  type ValueInfo,
  encodeModel,
  floatRaw,
} from '../onnx-proto/proto.js';
import { selectorKeeps } from './ensemble.js';
import type { MlpSpec } from './mlp.js';
import type { FittedNetwork } from './train.js';

export const OPSET = 17;
export const IR_VERSION = 8;
export const INPUT_NAME = 'input';
export const TRAINING_MODE_NAME = 'training_mode';
/** The heteroscedastic model's second output: log σ² of the observation noise, in target units². */
export const LOG_VARIANCE_NAME = 'log_variance';

function floatTensor(name: string, dims: number[], values: ArrayLike<number>): Tensor {
  return { name, dims, data_type: DataType.FLOAT, raw_data: floatRaw(Float32Array.from(values)) };
}

function node(
  op_type: string,
  input: string[],
  output: string[],
  name: string,
  attribute: Node['attribute'] = [],
): Node {
  return { op_type, input, output, name, attribute };
}

function tensorValueInfo(name: string, elemType: number, dims: (number | string)[]): ValueInfo {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

/** The graph being written: nodes and initialisers in the order they are added (fixed: same bytes). */
interface GraphParts {
  nodes: Node[];
  inits: Tensor[];
}

const GEMM_ATTR = [{ name: 'transB', type: AttributeType.INT, i: 1 }];

/** The nodes of each activation, from `x` to `out` (hidden layer `l`); the constants they read are added once. */
const ACTIVATIONS: Record<
  MlpSpec['activation'],
  { constants?: [string, number][]; nodes: (l: number, x: string, out: string) => Node[] }
> = {
  relu: { nodes: (l, x, out) => [node('Relu', [x], [out], `hidden.${l}/relu`)] },
  tanh: { nodes: (l, x, out) => [node('Tanh', [x], [out], `hidden.${l}/tanh`)] },
  // exact GELU x·½(1 + erf(x/√2)); opset 17 has no Gelu op
  gelu: {
    constants: [
      ['gelu.sqrt2', Math.SQRT2],
      ['gelu.one', 1],
      ['gelu.half', 0.5],
    ],
    nodes: (l, x, out) => [
      node('Div', [x, 'gelu.sqrt2'], [`${out}.scaled`], `hidden.${l}/gelu/div`),
      node('Erf', [`${out}.scaled`], [`${out}.erf`], `hidden.${l}/gelu/erf`),
      node('Add', [`${out}.erf`, 'gelu.one'], [`${out}.cdf2`], `hidden.${l}/gelu/add`),
      node('Mul', [x, `${out}.cdf2`], [`${out}.x_cdf2`], `hidden.${l}/gelu/mul`),
      node('Mul', [`${out}.x_cdf2`, 'gelu.half'], [out], `hidden.${l}/gelu/half`),
    ],
  },
};

/** Standardisation and the optional input dropout; returns the tensor the first layer reads. */
function inputNodes(g: GraphParts, m: FittedNetwork): string {
  const { spec } = m;
  g.inits.push(floatTensor('x_mean', [spec.inputs], m.xMean));
  g.inits.push(floatTensor('x_std', [spec.inputs], m.xStd));
  g.nodes.push(node('Sub', [INPUT_NAME, 'x_mean'], ['x_centered'], 'standardise/sub'));
  g.nodes.push(node('Div', ['x_centered', 'x_std'], ['x_standardised'], 'standardise/div'));
  if ((spec.inputDropout ?? 0) === 0) return 'x_standardised';
  g.inits.push(floatTensor('dropout.input.ratio', [], [spec.inputDropout!]));
  g.nodes.push(
    node('Dropout', ['x_standardised', 'dropout.input.ratio', TRAINING_MODE_NAME], ['x_dropout'], 'input/dropout'),
  );
  return 'x_dropout';
}

/** Hidden layer `l` (names prefixed by `p`: an ensemble's member): Gemm, activation, and a Dropout unless its rate is 0. */
function hiddenLayer(g: GraphParts, m: FittedNetwork, l: number, prev: string, p: string): string {
  const layer = m.net.layers[l]!;
  const [w, b, linOut] = [`${p}layers.${l}.weight`, `${p}layers.${l}.bias`, `${p}hidden.${l}.linear`];
  g.inits.push(floatTensor(w, [layer.out, layer.in], layer.w));
  g.inits.push(floatTensor(b, [layer.out], layer.b));
  g.nodes.push(node('Gemm', [prev, w, b], [linOut], `${p}layers.${l}/gemm`, GEMM_ATTR));
  const act = `${p}hidden.${l}.${m.spec.activation}`;
  g.nodes.push(...ACTIVATIONS[m.spec.activation].nodes(l, linOut, act).map((n) => ({ ...n, name: `${p}${n.name}` })));
  const rate = m.spec.dropout[l]!;
  if (rate === 0) return act; // no dropout on this layer: no node (as PyTorch without an nn.Dropout)
  const ratio = `${p}dropout.${l}.ratio`;
  g.inits.push(floatTensor(ratio, [], [rate]));
  const out = `${p}hidden.${l}.dropout`;
  g.nodes.push(node('Dropout', [act, ratio, TRAINING_MODE_NAME], [out], `${p}hidden.${l}/dropout`));
  return out;
}

/** A network's outputs before destandardisation: the mean (or logits) and the log-variance of a heteroscedastic one. */
interface Head {
  mean: string;
  logVariance?: string;
}

/**
 * The last layer's Gemm (names prefixed by `p`); returns its outputs in the network's units.
 * Heteroscedastic: row 0 of the layer is the mean, row 1 the log-variance, one Gemm each on the same input.
 */
function lastLayer(g: GraphParts, m: FittedNetwork, prev: string, p: string): Head {
  const l = m.net.layers.length - 1;
  const layer = m.net.layers[l]!;
  const [w, b] = [`${p}layers.${l}.weight`, `${p}layers.${l}.bias`];
  const gemm = (weight: string, bias: string, out: string, name: string): Node =>
    node('Gemm', [prev, weight, bias], [out], `${p}layers.${l}/${name}`, GEMM_ATTR);
  if (m.task === 'regression' && m.noise === 'heteroscedastic') {
    g.inits.push(floatTensor(`${w}.mean`, [1, layer.in], layer.w.subarray(0, layer.in)));
    g.inits.push(floatTensor(`${b}.mean`, [1], [layer.b[0]!]));
    g.inits.push(floatTensor(`${w}.log_variance`, [1, layer.in], layer.w.subarray(layer.in, 2 * layer.in)));
    // the network's log-variance is in standardised units: log σ²_target = s + 2·log(y_std)
    g.inits.push(floatTensor(`${b}.log_variance`, [1], [layer.b[1]! + 2 * Math.log(m.yStd)]));
    const head = { mean: `${p}prediction_standardised`, logVariance: `${p}${LOG_VARIANCE_NAME}` };
    g.nodes.push(gemm(`${w}.mean`, `${b}.mean`, head.mean, 'gemm_mean'));
    g.nodes.push(gemm(`${w}.log_variance`, `${b}.log_variance`, head.logVariance, 'gemm_log_variance'));
    return head;
  }
  g.inits.push(floatTensor(w, [layer.out, layer.in], layer.w));
  g.inits.push(floatTensor(b, [layer.out], layer.b));
  const out = `${p}${m.task === 'classification' ? 'logits' : 'prediction_standardised'}`;
  g.nodes.push(gemm(w, b, out, 'gemm'));
  return { mean: out };
}

/** One network from the (shared) standardised input to its head; `p` prefixes its names. */
function memberNodes(g: GraphParts, m: FittedNetwork, input: string, p: string): Head {
  let prev = input;
  for (let l = 0; l < m.net.layers.length - 1; l++) prev = hiddenLayer(g, m, l, prev, p);
  return lastLayer(g, m, prev, p);
}

/** The outputs: the destandardised prediction (and log-variance), or the logits and their softmax. */
function outputNodes(g: GraphParts, m: FittedNetwork, prev: string): ValueInfo[] {
  if (m.task === 'classification') {
    g.nodes.push(
      node('Softmax', ['logits'], ['probabilities'], 'softmax', [{ name: 'axis', type: AttributeType.INT, i: -1 }]),
    );
    return [
      tensorValueInfo('logits', DataType.FLOAT, ['batch', m.spec.outputs]),
      tensorValueInfo('probabilities', DataType.FLOAT, ['batch', m.spec.outputs]),
    ];
  }
  g.inits.push(floatTensor('y_std', [1], [m.yStd]));
  g.inits.push(floatTensor('y_mean', [1], [m.yMean]));
  g.nodes.push(node('Mul', [prev, 'y_std'], ['prediction_scaled'], 'destandardise/mul'));
  g.nodes.push(node('Add', ['prediction_scaled', 'y_mean'], ['prediction'], 'destandardise/add'));
  const outputs = [tensorValueInfo('prediction', DataType.FLOAT, ['batch', 1])];
  if (m.noise === 'heteroscedastic') outputs.push(tensorValueInfo(LOG_VARIANCE_NAME, DataType.FLOAT, ['batch', 1]));
  return outputs;
}

const int64Tensor = (name: string, values: number[]): Tensor => ({
  name,
  dims: [values.length],
  data_type: DataType.INT64,
  raw_data: new Uint8Array(BigInt64Array.from(values, BigInt).buffer),
});

/**
 * An ensemble's mixture (ensemble.ts): selectors s_k ∈ {0, 1} per row, s_k = min(Dropout(q_k, 1 − q_k), 1)
 * of a constant q_k = 1/(M − k) ([batch, 1]; Min removes the mask's rounding of 1/q_k), and
 * out = rest + s_k·(o_k − rest) folded from the last member, so that each Monte Carlo pass takes member k
 * with probability 1/M. With dropout off s_k = q_k, and the same fold averages the members' outputs.
 */
function mixNodes(g: GraphParts, heads: Head[]): Head {
  const M = heads.length;
  g.inits.push(int64Tensor('ensemble.start', [0]), int64Tensor('ensemble.one_row', [1]));
  g.inits.push(floatTensor('ensemble.one', [], [1]));
  g.nodes.push(node('Shape', [INPUT_NAME], ['ensemble.input_shape'], 'ensemble/shape'));
  g.nodes.push(
    node('Slice', ['ensemble.input_shape', 'ensemble.start', 'ensemble.one_row'], ['ensemble.batch'], 'ensemble/batch'),
  );
  const concatAxis = [{ name: 'axis', type: AttributeType.INT, i: 0 }];
  g.nodes.push(
    node(
      'Concat',
      ['ensemble.batch', 'ensemble.one_row'],
      ['ensemble.selector_shape'],
      'ensemble/selector_shape',
      concatAxis,
    ),
  );
  const select = selectorKeeps(M).map((q, k) => {
    const [c, ratio, kept, s] = ['keep', 'ratio', 'dropout', 'select'].map((x) => `ensemble.${k}.${x}`) as [
      string,
      string,
      string,
      string,
    ];
    const value = [{ name: 'value', type: AttributeType.TENSOR, t: floatTensor('', [1], [q]) }];
    g.inits.push(floatTensor(ratio, [], [1 - q]));
    g.nodes.push(node('ConstantOfShape', ['ensemble.selector_shape'], [c], `ensemble.${k}/keep`, value));
    g.nodes.push(node('Dropout', [c, ratio, TRAINING_MODE_NAME], [kept], `ensemble.${k}/dropout`));
    g.nodes.push(node('Min', [kept, 'ensemble.one'], [s], `ensemble.${k}/select`));
    return s;
  });
  const fold = (role: keyof Head, out: string): string => {
    let acc = heads[M - 1]![role]!;
    for (let k = M - 2; k >= 0; k--) {
      const t = (x: string): string => `ensemble.${k}.${role}.${x}`;
      const rest = acc;
      g.nodes.push(node('Sub', [heads[k]![role]!, rest], [t('difference')], `ensemble.${k}/${role}/sub`));
      g.nodes.push(node('Mul', [select[k]!, t('difference')], [t('taken')], `ensemble.${k}/${role}/mul`));
      acc = k === 0 ? out : t('mixed');
      g.nodes.push(node('Add', [rest, t('taken')], [acc], `ensemble.${k}/${role}/add`));
    }
    return acc;
  };
  return {
    mean: fold('mean', 'prediction_standardised'),
    ...(heads[0]!.logVariance ? { logVariance: fold('logVariance', LOG_VARIANCE_NAME) } : {}),
  };
}

/** Build the ONNX model object; `metadata` is written to metadata_props in key order given. */
export function buildOnnxModel(m: FittedNetwork, metadata: Record<string, string>): Model {
  const { spec } = m;
  const g: GraphParts = { nodes: [], inits: [] };
  const input = inputNodes(g, m);
  for (const [name, value] of ACTIVATIONS[spec.activation].constants ?? [])
    g.inits.push(floatTensor(name, [], [value]));
  const members = [m, ...(m.ensemble ?? [])];
  if (members.length > 1 && m.task !== 'regression') throw new Error('an ensemble must be a regression model');
  const heads = members.map((e, j) => memberNodes(g, e, input, members.length > 1 ? `members.${j}.` : ''));
  const prev = members.length > 1 ? mixNodes(g, heads).mean : heads[0]!.mean;
  const outputs = outputNodes(g, m, prev);
  const hetero = m.task === 'regression' && m.noise === 'heteroscedastic';
  return {
    ir_version: IR_VERSION,
    producer_name: 'dropout-serve',
    producer_version: '0.1.0',
    opset_import: [{ domain: '', version: OPSET }],
    doc_string: `${members.length > 1 ? `Ensemble of ${members.length} dropout MLPs, each Monte Carlo pass one member's` : 'Dropout MLP'} (${[spec.inputs, ...spec.hidden, spec.outputs].join('→')}${hetero ? ', outputs: mean and log-variance' : ''}, ${spec.activation}); feed training_mode=true for Monte Carlo dropout.`,
    graph: {
      name: 'dropout_mlp',
      node: g.nodes,
      initializer: g.inits,
      input: [
        tensorValueInfo(INPUT_NAME, DataType.FLOAT, ['batch', spec.inputs]),
        ...(g.nodes.some((n) => n.op_type === 'Dropout')
          ? [tensorValueInfo(TRAINING_MODE_NAME, DataType.BOOL, [])]
          : []),
      ],
      output: outputs,
    },
    metadata_props: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  };
}

export function exportOnnx(m: FittedNetwork, metadata: Record<string, string>): Uint8Array {
  return encodeModel(buildOnnxModel(m, metadata));
}
