/**
 * The model card (model.json) and the ONNX metadata derived from it. The card is the contract with the
 * server: field names are those of the API (name, task, features, target, labels, dropout,
 * aleatoric_std, metrics, ...).
 */
import { basename } from 'node:path';
import type { ClassificationMetrics, RegressionMetrics } from './metrics.js';
import type { TrainedModel, TrainOptions } from './train.js';

export interface DataRef {
  file: string;
  sha256: string;
  rows: number;
}

export interface ModelCard {
  format: 'dropout-serve/1';
  name: string;
  task: 'regression' | 'classification';
  features: string[];
  target: string;
  labels?: string[];
  /** Graph input and the output the server reads. */
  input: string;
  output: string;
  /** What `output` holds: regression values, or class logits (softmax is applied by the consumer). */
  output_kind: 'regression' | 'logits';
  /** Dropout rate of each hidden layer, in graph order. */
  dropout: number[];
  architecture: { inputs: number; hidden: number[]; outputs: number; activation: string };
  /** Calibrated observation noise σ in target units (regression). */
  aleatoric_std?: number;
  calibration?: { method: string; mc_samples: number; rows: number };
  training: Record<string, unknown>;
  metrics: { validation: RegressionMetrics | ClassificationMetrics; test?: RegressionMetrics | ClassificationMetrics };
  data: DataRef;
  test_data?: DataRef;
  onnx: { opset: number; training_mode_input: string; note: string };
  created_at?: string;
}

export function buildCard(
  name: string,
  m: TrainedModel,
  opts: TrainOptions,
  data: DataRef,
  test: DataRef | undefined,
  testSource: string,
  opset: number,
): ModelCard {
  const card: ModelCard = {
    format: 'dropout-serve/1',
    name,
    task: m.task,
    features: m.features,
    target: m.target,
    ...(m.task === 'classification' ? { labels: m.labels } : {}),
    input: 'input',
    output: m.task === 'regression' ? 'prediction' : 'logits',
    output_kind: m.task === 'regression' ? 'regression' : 'logits',
    dropout: m.spec.dropout,
    architecture: { inputs: m.spec.inputs, hidden: m.spec.hidden, outputs: m.spec.outputs, activation: m.spec.activation },
    ...(m.task === 'regression'
      ? {
          aleatoric_std: m.aleatoricStd,
          calibration: {
            method: 'Gaussian maximum likelihood of σ on validation rows: y ~ N(MC mean, MC variance + σ²) (Gal & Ghahramani 2016, eq. 8)',
            mc_samples: opts.mcSamples,
            rows: m.valRows,
          },
        }
      : {}),
    training: {
      hidden: opts.hidden,
      dropout: m.spec.dropout,
      activation: opts.activation,
      epochs: opts.epochs,
      batch_size: opts.batchSize,
      lr: opts.lr,
      weight_decay: opts.weightDecay,
      patience: opts.patience,
      val_split: opts.valSplit,
      seed: opts.seed,
      epochs_run: m.epochsRun,
      best_epoch: m.bestEpoch,
      train_rows: m.trainRows,
      val_rows: m.valRows,
      test_source: testSource,
      engine: m.engine,
      optimizer: 'Adam (PyTorch semantics, L2 weight decay)',
      loss: m.task === 'regression' ? 'MSE on the standardised target' : 'softmax cross-entropy',
    },
    metrics: m.metrics,
    data: { ...data, file: basename(data.file) },
    ...(test ? { test_data: { ...test, file: basename(test.file) } } : {}),
    onnx: {
      opset,
      training_mode_input: 'training_mode',
      note: 'Feed training_mode=false for predictions (dropout off) and true for Monte Carlo dropout. Disable onnxruntime\'s EliminateDropout optimizer or it deletes the Dropout nodes.',
    },
  };
  return card;
}
