/**
 * The seam between a tensor model and its Monte Carlo sampler (src/model/onnx/tensor-mc.ts, built on
 * branch t2; the contract is /work/wt/t1-t2-contract.md): what the model needs of a sampler, what the
 * loader gives it, and the one call that creates it.
 */
import { createError } from '../errors.js';
import type {
  InputTensor,
  McOptions,
  Model,
  OutputLayout,
  RuntimeOptions,
  TensorMcResult,
  TensorSpec,
} from '../model.js';
import type { UncertaintySettings } from '../uncertainty.js';
import type { Model as OnnxProto } from '../../onnx-proto/proto.js';
import type { DropoutInfo } from './inspect.js';
import type { Agreement } from './self-check.js';

/** What a tensor model asks of its sampler (tensor-mc.ts TensorSampler). */
export interface TensorMcSampler {
  /** Activation bytes of one row in one MC pass of the repeated part (Model.runBytesPerRow). */
  readonly runBytesPerRow: number;
  /** Whether the layers no Dropout reaches run once per row. */
  readonly sharedPrefix: boolean;
  sample(inputs: readonly InputTensor[], rows: number, opts: McOptions): Promise<TensorMcResult>;
  /** The MC graph with every mask 1 equals `evalOut` (the eval outputs of `inputs`) within `agree`. */
  check(inputs: readonly InputTensor[], rows: number, evalOut: Float32Array, agree: Agreement): Promise<void>;
  close(): Promise<void>;
}

/** What the loader gives the sampler (tensor-mc.ts TensorSamplerInit). */
export interface TensorSamplerInit {
  model: OnnxProto;
  dropouts: readonly DropoutInfo[];
  controlInputs: readonly string[];
  inputs: readonly TensorSpec[];
  outputName: string;
  layout: OutputLayout;
  runtime: Pick<RuntimeOptions, 'intraOpThreads' | 'sharedPrefix'> & { maxRunBytes?: number };
  /** The model's name, for the sampler's error messages. */
  name?: string;
  probeInputs: readonly InputTensor[];
  task: Model['task'];
  outputKind: Model['outputKind'];
  uncertainty: UncertaintySettings;
  aleatoricStd?: readonly number[];
}

/**
 * The sampler of a graph with a live Dropout, or null (no live Dropout: mcAvailable false). Until the
 * sampler of branch t2 is merged there is none, and a tensor model serves predict only; the wiring is
 * `return createTensorSampler(init)` (tensor-mc.ts).
 */
export async function createSampler(init: TensorSamplerInit): Promise<TensorMcSampler | null> {
  if (!init.dropouts.some((d) => d.ratio > 0)) return null;
  return null;
}

/** Monte Carlo asked of a tensor model whose graph has dropout but no sampler yet (422, like a model without dropout). */
export const McNotAvailableError = createError(
  'NoDropoutError',
  'no_dropout',
  (model: string) =>
    `model "${model}": Monte Carlo dropout is not available yet for tensor models (any input and output shape); use predict`,
);
