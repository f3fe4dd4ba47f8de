/**
 * The shipped models (models/NAME) and the `npm run train` arguments that make them: docs/training.md's
 * "Shipped models" commands. test/train/shipped.test.ts checks that they reproduce the files byte for
 * byte; scripts/report-shots.mts --retrain runs them.
 */
export const SHIPPED_MODELS: Readonly<Record<string, readonly string[]>> = {
  diabetes: [
    '--data',
    'data/diabetes.csv',
    '--target',
    'target',
    '--name',
    'diabetes',
    '--tune',
    '--test-split',
    '0.2',
    '--seed',
    '0',
  ],
  wine: [
    '--data',
    'data/wine.csv',
    '--target',
    'class',
    '--name',
    'wine',
    '--hidden',
    '64,64',
    '--tune',
    '--test-split',
    '0.2',
    '--seed',
    '0',
  ],
};
