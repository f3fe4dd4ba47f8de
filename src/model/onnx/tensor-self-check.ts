/**
 * A tensor model's load-time check of its eval graph (issue 19 item 4): run on check rows like real
 * ones (tensor-check-input.ts), each row of a batch must equal a run of that row alone, within the
 * depth-scaled float32 tolerance of self-check.ts (agreementFor, relative to the output's magnitude).
 * A graph that mixes rows (a batch statistic, a reshape across the batch) cannot serve batches and is
 * refused. The Monte Carlo graph's own check (masks of 1 = eval) is the sampler's (tensor-mc.ts).
 */
import type { InputTensor, TensorOutput } from '../model.js';
import { ModelFormatError } from './inspect.js';
import { type Agreement, magnitude } from './self-check.js';
import type { TensorCheckInput } from './tensor-check-input.js';

/** The eval graph on `rows` rows of validated inputs. */
export type TensorEvalRun = (inputs: readonly InputTensor[], rows: number) => Promise<TensorOutput>;

/** The batches whose rows must each equal a run of that row alone. */
export const TENSOR_CHECK_BATCHES = [2, 7];

/** Rows `from` … `from + count` of every input tensor. */
export function sliceRows(inputs: readonly InputTensor[], from: number, count: number): InputTensor[] {
  return inputs.map((t) => {
    const size = t.dims.slice(1).reduce((a, b) => a * b, 1);
    return { name: t.name, dims: [count, ...t.dims.slice(1)], data: t.data.slice(from * size, (from + count) * size) };
  });
}

const firstLine = (err: unknown): string =>
  String((err as Error)?.message ?? err)
    .split('\n')[0]!
    .replace(/\/\S+\.cc:\d+ .*?\[ONNXRuntimeError\] : \d+ : \w+ : /, '')
    .slice(0, 400);

async function evalRows(run: TensorEvalRun, inputs: InputTensor[], rows: number, what: string): Promise<Float32Array> {
  let out: TensorOutput;
  try {
    out = await run(inputs, rows);
  } catch (err) {
    throw new ModelFormatError(`self-check: the eval graph fails for ${rows} rows (${what}): ${firstLine(err)}`);
  }
  if (out.dims[0] !== rows || out.data.length % rows !== 0)
    throw new ModelFormatError(
      `self-check: the eval graph gives an output of shape [${out.dims.join(', ')}] for ${rows} rows (${what}); the batch must come first`,
    );
  return out.data.slice();
}

/**
 * Throws ModelFormatError naming the batch, the row and the element when a row of a batch of
 * TENSOR_CHECK_BATCHES rows differs (by `agree`, at the single runs' magnitude) from that row run alone.
 */
export async function checkTensorEval(run: TensorEvalRun, input: TensorCheckInput, agree: Agreement): Promise<void> {
  const maxRows = Math.max(...TENSOR_CHECK_BATCHES);
  const x = input(maxRows);
  const single: Float32Array[] = [];
  for (let i = 0; i < maxRows; i++) single.push(await evalRows(run, sliceRows(x, i, 1), 1, 'one row'));
  const scale = Math.max(...single.map(magnitude));
  const size = single[0]!.length;
  for (const rows of TENSOR_CHECK_BATCHES) {
    const out = await evalRows(run, sliceRows(x, 0, rows), rows, `a batch of ${rows}`);
    if (out.length !== rows * size)
      throw new ModelFormatError(
        `self-check: the eval graph gives ${out.length} values for a batch of ${rows}, ${size} for one row: its output does not grow with the rows`,
      );
    for (let i = 0; i < rows; i++) {
      for (let e = 0; e < size; e++) {
        const [a, b] = [out[i * size + e]!, single[i]![e]!];
        if (!agree(a, b, scale))
          throw new ModelFormatError(
            `self-check: the eval graph gives ${a} for element ${e} of row ${i} in a batch of ${rows} but ${b} for that row alone: the graph mixes rows, so it cannot serve batches`,
          );
      }
    }
  }
}
