/** Build the app over a temporary models folder: the shipped models plus PyTorch fixtures. */
import { cpSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type Config, loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/server/app.js';

let modelsDir: string | null = null;

/** models/diabetes, models/wine, torchnet (PyTorch train-mode export), nodrop (eval export, no Dropout). */
export function testModelsDir(): string {
  if (modelsDir) return modelsDir;
  const dir = mkdtempSync(join(tmpdir(), 'ds-models-'));
  cpSync('models/diabetes', join(dir, 'diabetes'), { recursive: true });
  cpSync('models/wine', join(dir, 'wine'), { recursive: true });
  mkdirSync(join(dir, 'torchnet'));
  cpSync('test/fixtures/torch/legacy_train_op13.onnx', join(dir, 'torchnet', 'model.onnx'));
  mkdirSync(join(dir, 'nodrop'));
  cpSync('test/fixtures/torch/eval_op13.onnx', join(dir, 'nodrop', 'model.onnx'));
  modelsDir = dir;
  return dir;
}

export async function testApp(env: Record<string, string> = {}): Promise<{ app: FastifyInstance; config: Config }> {
  const config = loadConfig({ MODELS_DIR: testModelsDir(), MC_WORKERS: '0', BATCH_MAX_ROWS: '0', ...env });
  const app = await buildApp({ config });
  await app.loadModels();
  await app.ready();
  return { app, config };
}

export const DIABETES_ROW = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87];
export const WINE_ROW = [13, 2, 2.4, 19, 100, 2, 2, 0.3, 1.5, 5, 1, 2.5, 700];
