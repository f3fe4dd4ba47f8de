/**
 * The tensor ONNX model (issue 19): any named inputs of any rank and datatype, the batch first, and a
 * float32 output of any rank, behind the Model interface (`layout: 'tensor'`). Predict runs the eval
 * graph (rewrite.ts evalGraph: Dropout off, BatchNorm frozen); Monte Carlo is the sampler's
 * (tensor-sampler.ts). Every request's tensors are checked against the inputs first (tensor-io.ts).
 * tensor-load.ts builds it; the tabular graphs keep OnnxModel (model.ts).
 */
import type { Card } from '../card.js';
import { InputError, NoDropoutError } from '../errors.js';
import type {
  InputTensor,
  McJob,
  McOptions,
  McResult,
  Model,
  ModelDescription,
  OutputLayout,
  RuntimeOptions,
  Task,
  TensorMcResult,
  TensorOutput,
  TensorSpec,
} from '../model.js';
import type { UncertaintySettings } from '../uncertainty.js';
import type { TensorGraphInfo } from './inspect.js';
import type { OrtSession } from './ort.js';
import { type SharedDim, checkInputTensors, sharedDims } from './tensor-io.js';
import type { ServedOutput } from './tensor-output.js';
import type { TensorMcSampler } from './tensor-sampler.js';

/** Everything a TensorModel is made of, computed by tensor-load.ts. */
export interface TensorModelInit {
  name: string;
  version: string;
  file: string;
  cardPath: string | null;
  card: Card;
  info: TensorGraphInfo;
  inputs: TensorSpec[];
  outputName: string;
  served: ServedOutput;
  uncertainty: UncertaintySettings;
  evalSession: OrtSession;
  /** null: no live dropout, or no sampler (mcAvailable false). */
  sampler: TensorMcSampler | null;
  runtime: RuntimeOptions;
  loadMs: number;
  /** What relaxBatch changed to serve a fixed-batch export (its log line); null when nothing. */
  batchRelaxed: string | null;
  /** What the load-time check ran on (the sample file, or synthetic inputs); null when it was skipped. */
  checkedOn: string | null;
}

const shapeText = (s: TensorSpec): string => `${s.name} ${s.datatype} [${s.shape.join(', ')}]`;

export class TensorModel implements Model {
  readonly layout = 'tensor' as const;
  readonly name: string;
  readonly version: string;
  readonly task: Task;
  readonly features: readonly string[] = [];
  readonly labels: readonly string[];
  readonly inputs: readonly TensorSpec[];
  readonly input: TensorSpec;
  readonly output: TensorSpec;
  readonly outputLayout: OutputLayout;
  readonly outputSize: number;
  readonly outputKind: Model['outputKind'];
  // the Open Inference Protocol's name for ONNX models, as OnnxModel
  readonly platform = 'onnx_onnxv1';
  readonly maxRunRows: number;
  readonly uncertainty: UncertaintySettings;
  readonly featureStats = null;
  readonly runBytesPerRow: number;
  /** Free dims several inputs share (a sequence length): their extents must agree in a request. */
  private readonly shared: SharedDim[];

  constructor(private readonly init: TensorModelInit) {
    const { served } = init;
    this.name = init.name;
    this.version = init.version;
    this.task = served.task;
    this.labels = served.labels;
    this.inputs = init.inputs;
    this.input = init.inputs[0]!;
    this.output = { name: init.outputName, datatype: 'FP32', shape: [-1, ...served.layout.dims] };
    this.outputLayout = served.layout;
    this.outputSize = served.outputSize;
    this.outputKind = served.outputKind;
    this.maxRunRows = init.runtime.maxRunRows;
    this.uncertainty = init.uncertainty;
    this.runBytesPerRow = init.sampler?.runBytesPerRow ?? 0;
    this.shared = sharedDims(init.info.inputDimParams);
  }

  /** Whether the graph has a live dropout and a sampler for it. */
  get mcAvailable(): boolean {
    return this.init.sampler !== null;
  }

  /**
   * Eval-mode output of validated input tensors (each checked against `inputs`: InputError naming the
   * input, the axis and the extent expected). A run that fails on inputs that passed the check is
   * refused as an InputError when the model has free dims (their extents must agree between inputs).
   */
  async predictTensors(inputs: readonly InputTensor[], rows: number): Promise<TensorOutput> {
    const ordered = checkInputTensors(this.inputs, inputs, rows, this.shared);
    const feeds = Object.fromEntries(
      ordered.map((t, k) => [t.name, { data: t.data, dims: t.dims, datatype: this.inputs[k]!.datatype }]),
    );
    try {
      const out = (await this.init.evalSession.run(feeds, [this.output.name]))[this.output.name]!;
      return { data: out.data, dims: out.dims };
    } catch (err) {
      if (!this.inputs.some((s) => s.shape.slice(1).some((d) => d < 0))) throw err;
      throw new InputError(`the model cannot run these input shapes: ${String((err as Error).message).split('\n')[0]}`);
    }
  }

  /** Monte Carlo dropout over validated input tensors, statistics per output element (OutputLayout). */
  async sampleTensors(inputs: readonly InputTensor[], rows: number, opts: McOptions): Promise<TensorMcResult> {
    const ordered = checkInputTensors(this.inputs, inputs, rows, this.shared);
    const { sampler } = this.init;
    if (!sampler) throw new NoDropoutError(this.name);
    return sampler.sample(ordered, rows, opts);
  }

  /** The one input as flat rows, when the model has one input of fixed dims (else InputError: use tensors). */
  private asTensor(x: Float32Array, rows: number): InputTensor {
    const [only, ...rest] = this.inputs;
    const rowDims = only!.shape.slice(1);
    if (rest.length > 0 || only!.datatype !== 'FP32' || rowDims.some((d) => d < 0))
      throw new InputError(
        `model "${this.name}" takes named tensors (${this.inputs.map(shapeText).join('; ')}), not rows of features`,
      );
    return { name: only!.name, dims: [rows, ...rowDims], data: x };
  }

  /** Rows of a single fixed-shape FP32 input, flattened (the tabular call on a tensor model). */
  async predict(x: Float32Array, rows: number): Promise<Float32Array> {
    return (await this.predictTensors([this.asTensor(x, rows)], rows)).data;
  }

  sample(x: Float32Array, rows: number, opts: McOptions): Promise<McResult> {
    return this.sampleTensors([this.asTensor(x, rows)], rows, opts);
  }

  /** Never: a tensor model's requests are not coalesced (their runs are cut by bytes, not rows). */
  fitsOneRun(): boolean {
    return false;
  }

  /** One request after another (the data plane does not coalesce tensor models: fitsOneRun). */
  async sampleBatch(jobs: readonly McJob[]): Promise<McResult[]> {
    const out: McResult[] = [];
    for (const j of jobs) out.push(await this.sample(j.x, j.rows, j.opts));
    return out;
  }

  describe(): ModelDescription {
    const { card, info, served } = this.init;
    return {
      ...card,
      name: this.name,
      task: this.task,
      features: [],
      ...(this.task === 'classification' ? { labels: [...this.labels] } : {}),
      dropout: info.dropouts.map((d) => d.ratio),
      aleatoric_std:
        this.task === 'regression'
          ? served.aleatoricStd.length === 1
            ? served.aleatoricStd[0]
            : [...served.aleatoricStd]
          : undefined,
      layout: 'tensor',
      inputs: this.inputs.map((s) => ({ ...s, shape: [...s.shape] })),
      outputs: [{ ...this.output, shape: [...this.output.shape] }],
      class_axis: served.layout.classAxis,
      mc_available: this.mcAvailable,
      shared_prefix: this.init.sampler?.sharedPrefix ?? false,
      opset: info.opset,
      producer: info.producer,
    };
  }

  /** A copy (an MC worker's) loads from the same bytes without repeating the load-time check. */
  copyOptions(): Partial<RuntimeOptions> {
    return { ...this.init.runtime, selfCheck: false };
  }

  loadInfo(): Record<string, unknown> {
    const { info, served, sampler } = this.init;
    return {
      path: this.init.file,
      layout: 'tensor',
      inputs: this.inputs.map(shapeText).join('; '),
      output: shapeText(this.output),
      task: this.task,
      class_axis: served.layout.classAxis,
      ...(served.classAxisFrom ? { class_axis_from: served.classAxisFrom } : {}),
      dropout_nodes: info.dropouts.length,
      mc_available: this.mcAvailable,
      ...(sampler ? { shared_prefix: sampler.sharedPrefix, run_bytes_per_row: sampler.runBytesPerRow } : {}),
      ...(this.init.batchRelaxed ? { batch_relaxed: this.init.batchRelaxed } : {}),
      ...(this.init.checkedOn ? { checked_on: this.init.checkedOn } : {}),
      ms: Math.round(this.init.loadMs),
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.init.evalSession.release(), this.init.sampler?.close()]);
  }
}
