/** Triton's model configuration (protocol/v2-config.ts): what each server setting becomes, per model.proto. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { encodeModelConfig } from '../../../src/server/protocol/v2-config.js';
import { fakeModel } from '../../helpers/fake-model.js';

describe('encodeModelConfig', () => {
  it('the batcher as dynamic_batching, the version policy, MAX_BATCH_ROWS, the MC settings as string parameters', () => {
    const config = loadConfig({
      MAX_BATCH_ROWS: '64',
      BATCH_MAX_ROWS: '32',
      BATCH_MAX_WAIT_US: '250',
      MAX_QUEUE: '9',
      MAX_REQUEST_MS: '1500',
      MODEL_VERSION_POLICY: 'latest:2',
      MC_DEFAULT_SAMPLES: '50',
      MC_MAX_SAMPLES: '500',
      MC_MAX_WORK: '7000',
    });
    const c = encodeModelConfig(fakeModel('m', 1, { features: 3 }), config);
    expect(c).toMatchObject({
      name: 'm',
      version_policy: { latest: { num_versions: 2 } },
      max_batch_size: 64,
      input: [{ data_type: 'TYPE_FP32', dims: [3] }],
      dynamic_batching: {
        preferred_batch_size: [32],
        max_queue_delay_microseconds: 250,
        default_queue_policy: {
          timeout_action: 'REJECT',
          default_timeout_microseconds: 1_500_000,
          allow_timeout_override: true,
          max_queue_size: 9,
        },
      },
      instance_group: [{ kind: 'KIND_CPU', count: 1 }],
    });
    expect(c.parameters).toMatchObject({
      task: { string_value: 'regression' },
      mc_available: { string_value: 'true' },
      mc_default_samples: { string_value: '50' },
      mc_max_samples: { string_value: '500' },
      mc_max_work: { string_value: '7000' },
      mc_outputs: { string_value: expect.stringMatching(/^mean,.*std/) },
      interval_methods: { string_value: 'gaussian' },
    });
    for (const p of Object.values(c.parameters)) expect(typeof p.string_value).toBe('string');
  });

  it('no dynamic_batching when BATCH_MAX_ROWS=0; all versions; a graph with a fixed batch has max_batch_size 0 and whole dims', () => {
    const config = loadConfig({ BATCH_MAX_ROWS: '0', MODEL_VERSION_POLICY: 'all' });
    const m = fakeModel('m', 1, { features: 2 });
    const c = encodeModelConfig(m, config);
    expect(c.dynamic_batching).toBeUndefined();
    expect(c.version_policy).toEqual({ all: {} });
    const fixed = { ...m, input: { ...m.input, shape: [4, 2] }, output: { ...m.output, shape: [4] } };
    const f = encodeModelConfig(fixed, loadConfig({}));
    expect([f.max_batch_size, f.input[0]!.dims, f.output[0]!.dims, f.dynamic_batching]).toEqual([
      0,
      [4, 2],
      [4],
      undefined,
    ]);
    // a batch of scalars: Triton's dims [1] reshaped to []
    const scalar = { ...m, output: { ...m.output, shape: [-1] } };
    expect(encodeModelConfig(scalar, loadConfig({})).output[0]).toEqual({
      name: m.output.name,
      data_type: 'TYPE_FP32',
      dims: [1],
      reshape: { shape: [] },
    });
  });
});
