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
 * network (Gal & Ghahramani 2016).
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

/** Build the ONNX model object; `metadata` is written to metadata_props in key order given. */
export function buildOnnxModel(m: FittedNetwork, metadata: Record<string, string>): Model {
  const { spec, net } = m;
  const nodes: Node[] = [];
  const inits: Tensor[] = [];
  inits.push(floatTensor('x_mean', [spec.inputs], m.xMean));
  inits.push(floatTensor('x_std', [spec.inputs], m.xStd));
  nodes.push(node('Sub', [INPUT_NAME, 'x_mean'], ['x_centered'], 'standardise/sub'));
  nodes.push(node('Div', ['x_centered', 'x_std'], ['x_standardised'], 'standardise/div'));
  let prev = 'x_standardised';
  if ((spec.inputDropout ?? 0) > 0) {
    inits.push(floatTensor('dropout.input.ratio', [], [spec.inputDropout!]));
    nodes.push(node('Dropout', [prev, 'dropout.input.ratio', TRAINING_MODE_NAME], ['x_dropout'], 'input/dropout'));
    prev = 'x_dropout';
  }
  const hetero = m.task === 'regression' && m.noise === 'heteroscedastic';
  const gemmAttr = [{ name: 'transB', type: AttributeType.INT, i: 1 }];
  if (spec.activation === 'gelu') {
    inits.push(floatTensor('gelu.sqrt2', [], [Math.SQRT2]));
    inits.push(floatTensor('gelu.one', [], [1]));
    inits.push(floatTensor('gelu.half', [], [0.5]));
  }
  net.layers.forEach((layer, l) => {
    const w = `layers.${l}.weight`;
    const b = `layers.${l}.bias`;
    const isLast = l === net.layers.length - 1;
    if (isLast && hetero) {
      // row 0 of the last layer is the mean, row 1 the log-variance: one Gemm each on the same input
      inits.push(floatTensor(`${w}.mean`, [1, layer.in], layer.w.subarray(0, layer.in)));
      inits.push(floatTensor(`${b}.mean`, [1], [layer.b[0]!]));
      inits.push(floatTensor(`${w}.log_variance`, [1, layer.in], layer.w.subarray(layer.in, 2 * layer.in)));
      // the network's log-variance is in standardised units: log σ²_target = s + 2·log(y_std)
      inits.push(floatTensor(`${b}.log_variance`, [1], [layer.b[1]! + 2 * Math.log(m.yStd)]));
      nodes.push(
        node('Gemm', [prev, `${w}.mean`, `${b}.mean`], ['prediction_standardised'], `layers.${l}/gemm_mean`, gemmAttr),
      );
      nodes.push(
        node(
          'Gemm',
          [prev, `${w}.log_variance`, `${b}.log_variance`],
          [LOG_VARIANCE_NAME],
          `layers.${l}/gemm_log_variance`,
          gemmAttr,
        ),
      );
      prev = 'prediction_standardised';
      return;
    }
    inits.push(floatTensor(w, [layer.out, layer.in], layer.w));
    inits.push(floatTensor(b, [layer.out], layer.b));
    const linOut = isLast ? (m.task === 'classification' ? 'logits' : 'prediction_standardised') : `hidden.${l}.linear`;
    nodes.push(node('Gemm', [prev, w, b], [linOut], `layers.${l}/gemm`, gemmAttr));
    if (isLast) {
      prev = linOut;
      return;
    }
    const act = `hidden.${l}.${spec.activation}`;
    if (spec.activation === 'relu') nodes.push(node('Relu', [linOut], [act], `hidden.${l}/relu`));
    else if (spec.activation === 'tanh') nodes.push(node('Tanh', [linOut], [act], `hidden.${l}/tanh`));
    else {
      // exact GELU x·½(1 + erf(x/√2)); opset 17 has no Gelu op
      nodes.push(node('Div', [linOut, 'gelu.sqrt2'], [`${act}.scaled`], `hidden.${l}/gelu/div`));
      nodes.push(node('Erf', [`${act}.scaled`], [`${act}.erf`], `hidden.${l}/gelu/erf`));
      nodes.push(node('Add', [`${act}.erf`, 'gelu.one'], [`${act}.cdf2`], `hidden.${l}/gelu/add`));
      nodes.push(node('Mul', [linOut, `${act}.cdf2`], [`${act}.x_cdf2`], `hidden.${l}/gelu/mul`));
      nodes.push(node('Mul', [`${act}.x_cdf2`, 'gelu.half'], [act], `hidden.${l}/gelu/half`));
    }
    if (spec.dropout[l] === 0) {
      prev = act; // no dropout on this layer: no node (as PyTorch without an nn.Dropout)
      return;
    }
    const ratio = `dropout.${l}.ratio`;
    inits.push(floatTensor(ratio, [], [spec.dropout[l]!]));
    const out = `hidden.${l}.dropout`;
    nodes.push(node('Dropout', [act, ratio, TRAINING_MODE_NAME], [out], `hidden.${l}/dropout`));
    prev = out;
  });
  const outputs: ValueInfo[] = [];
  if (m.task === 'regression') {
    inits.push(floatTensor('y_std', [1], [m.yStd]));
    inits.push(floatTensor('y_mean', [1], [m.yMean]));
    nodes.push(node('Mul', [prev, 'y_std'], ['prediction_scaled'], 'destandardise/mul'));
    nodes.push(node('Add', ['prediction_scaled', 'y_mean'], ['prediction'], 'destandardise/add'));
    outputs.push(tensorValueInfo('prediction', DataType.FLOAT, ['batch', 1]));
    if (hetero) outputs.push(tensorValueInfo(LOG_VARIANCE_NAME, DataType.FLOAT, ['batch', 1]));
  } else {
    nodes.push(
      node('Softmax', ['logits'], ['probabilities'], 'softmax', [{ name: 'axis', type: AttributeType.INT, i: -1 }]),
    );
    outputs.push(tensorValueInfo('logits', DataType.FLOAT, ['batch', spec.outputs]));
    outputs.push(tensorValueInfo('probabilities', DataType.FLOAT, ['batch', spec.outputs]));
  }
  return {
    ir_version: IR_VERSION,
    producer_name: 'dropout-serve',
    producer_version: '0.1.0',
    opset_import: [{ domain: '', version: OPSET }],
    doc_string: `Dropout MLP (${[spec.inputs, ...spec.hidden, spec.outputs].join('→')}${hetero ? ', outputs: mean and log-variance' : ''}, ${spec.activation}); feed training_mode=true for Monte Carlo dropout.`,
    graph: {
      name: 'dropout_mlp',
      node: nodes,
      initializer: inits,
      input: [
        tensorValueInfo(INPUT_NAME, DataType.FLOAT, ['batch', spec.inputs]),
        ...(nodes.some((n) => n.op_type === 'Dropout') ? [tensorValueInfo(TRAINING_MODE_NAME, DataType.BOOL, [])] : []),
      ],
      output: outputs,
    },
    metadata_props: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  };
}

export function exportOnnx(m: FittedNetwork, metadata: Record<string, string>): Uint8Array {
  return encodeModel(buildOnnxModel(m, metadata));
}
