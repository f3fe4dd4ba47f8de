/**
 * The /v1 codec of tensor models (issue 19, `model.layout === 'tensor'`), in the TF Serving row format
 * that KServe's v1 protocol uses: each instance is a nested array of one row's shape (a model with one
 * input) or an object keyed by input name (each a nested array of that input's row shape). Answers are
 * per row, nested arrays of the output's row shape: a classifier's probabilities with the class axis in
 * place and its labels per position (a segmentation model's per-pixel maps). Pure.
 */
import { InputError } from '../../model/errors.js';
import type { InputTensor, Model } from '../../model/model.js';
import { type McStats, servedStats, statValues } from '../../uncertainty/record.js';
import { STATS } from '../../uncertainty/statistics.js';
import {
  checkSameBatch,
  checkShape,
  flattenNested,
  inputName,
  jsonValues,
  matchInputs,
  modelInputs,
  nestedShape,
} from './tensor-input.js';
import { nestRows, statTensor, tensorClassPredict } from './tensor-output.js';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The instances as one value per input and row: keyed by input name, or the rows themselves for one input. */
function perInput(model: Model, instances: readonly unknown[]): Map<string, unknown[]> {
  const specs = modelInputs(model);
  const names = specs.map((s) => `"${s.name}"`).join(', ');
  if (!isRecord(instances[0])) {
    if (specs.length > 1)
      throw new InputError(
        `instances[0]: the model takes ${specs.length} inputs (${names}); send each instance as an object keyed by input name`,
      );
    return new Map([[specs[0]!.name, instances as unknown[]]]);
  }
  instances.forEach((inst, i) => {
    if (!isRecord(inst))
      throw new InputError(`instances[${i}]: expected an object keyed by input name (${names}), as instances[0]`);
    matchInputs(model, Object.keys(inst), `instances[${i}]`);
  });
  return new Map(specs.map((s) => [s.name, instances.map((inst) => (inst as Record<string, unknown>)[s.name])]));
}

/**
 * A tensor model's input tensors from /v1 instances, in the model's order: `count` gets the rows first;
 * each input's row shape is read from the first instance and every instance must have it.
 */
export function instanceTensors(
  model: Model,
  instances: readonly unknown[],
  count: (rows: number, field: string) => void,
): { inputs: InputTensor[]; rows: number } {
  count(instances.length, 'instances');
  const values = perInput(model, instances);
  const inputs = modelInputs(model).map((spec) => {
    const rows = values.get(spec.name)!;
    const where = inputName(spec.name);
    const dims = [rows.length, ...nestedShape(rows[0])];
    checkShape(spec, dims, where);
    return {
      name: spec.name,
      dims,
      data: jsonValues(flattenNested(rows, dims, where, 'instances'), spec.datatype, where),
    };
  });
  return { inputs, rows: instances.length };
}

/**
 * A tensor model's input tensors from TF Serving's columnar `inputs`: the batch of a one-input model,
 * or each input's batch keyed by name; every input's shape is read, checked and `count` told the rows
 * before any value is read.
 */
export function columnTensors(
  model: Model,
  columns: unknown[] | Record<string, unknown>,
  count: (rows: number, field: string) => void,
): { inputs: InputTensor[]; rows: number } {
  const specs = modelInputs(model);
  let batches: unknown[];
  if (Array.isArray(columns)) {
    if (specs.length > 1)
      throw new InputError(
        `inputs: the model takes ${specs.length} inputs (${specs.map((s) => `"${s.name}"`).join(', ')}); send an object keyed by input name`,
      );
    batches = [columns];
  } else {
    const names = Object.keys(columns);
    batches = matchInputs(model, names, 'inputs').map((i) => columns[names[i]!]);
  }
  const shaped = specs.map((spec, j) => {
    const dims = nestedShape(batches[j]);
    checkShape(spec, dims);
    return { name: spec.name, dims, data: new Float32Array(0) };
  });
  const rows = checkSameBatch(shaped);
  count(rows, 'inputs');
  const inputs = shaped.map((t, j) => {
    const where = inputName(t.name);
    return { ...t, data: jsonValues(flattenNested(batches[j], t.dims, where, 'inputs'), specs[j]!.datatype, where) };
  });
  return { inputs, rows };
}

/** Class indices as the model's labels (the index itself when the model has none for it). */
const labelNames = (model: Pick<Model, 'labels'>, classes: Int32Array): string[] =>
  Array.from(classes, (k) => model.labels[k] ?? String(k));

/** Eval answers per row: regression the output row; a classifier {label, probabilities} per position. */
export function tensorPredictions(model: Model, raw: Float32Array, dims: number[]): unknown[] {
  const classAxis = model.outputLayout?.classAxis ?? null;
  if (model.task !== 'classification' || classAxis === null) return nestRows(raw, dims);
  const c = tensorClassPredict(model, raw, dims, classAxis);
  const labels = nestRows(labelNames(model, c.labels), c.labelDims);
  const probabilities = nestRows(c.probabilities, dims);
  return labels.map((label, n) => ({ label, probabilities: probabilities[n] }));
}

/**
 * Monte Carlo answers per row: every /v1 field the record holds, nested to the output's row shape
 * (per position for a classifier's label, entropy, mutual information and variation ratio); a
 * regression interval as {level, method, lower, upper}.
 */
export function tensorStatsRows(
  model: Model,
  s: McStats,
  outputDims: number[],
  classAxis: number | null,
): Record<string, unknown>[] {
  const held = servedStats(s);
  const rows: Record<string, unknown>[] = Array.from({ length: outputDims[0]! }, () => ({}));
  for (const d of STATS[s.kind]) {
    if (d.v1 === null || !held.includes(d)) continue;
    const values = statValues(s, d);
    const t = statTensor(s, values, d.shape !== 'row', outputDims, classAxis);
    const data: ArrayLike<unknown> = d.key === 'label' ? labelNames(model, values as Int32Array) : t.data;
    const nested = nestRows(data, t.shape);
    nested.forEach((v, n) => {
      const row = rows[n]!;
      if (d.v1 !== 'interval') row[d.v1!] = v;
      else if (s.kind === 'regression') {
        row.interval ??= { level: s.level, method: s.intervalMethod };
        (row.interval as Record<string, unknown>)[d.key] = v;
      }
    });
  }
  return rows;
}
