/**
 * The seam between a tensor model and its Monte Carlo sampler (tensor-mc.ts): what the model needs of a
 * sampler, and the one call that creates it.
 */
import type { InputTensor, McOptions, TensorMcResult } from '../model.js';
import type { Agreement } from './self-check.js';
import { type TensorSamplerInit, createTensorSampler } from './tensor-mc.js';

export type { TensorSamplerInit } from './tensor-mc.js';

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

/** The sampler of a graph with a live Dropout, or null (no live Dropout: mcAvailable false). */
export async function createSampler(init: TensorSamplerInit): Promise<TensorMcSampler | null> {
  if (!init.dropouts.some((d) => d.ratio > 0)) return null;
  return createTensorSampler(init);
}
