import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      PORT: 8080,
      HOST: '0.0.0.0',
      MODELS_DIR: 'models',
      LOG_LEVEL: 'info',
      MC_DEFAULT_SAMPLES: 100,
      MC_MAX_SAMPLES: 10000,
      MC_MAX_WORK: 1_000_000,
      MAX_BATCH_ROWS: 1024,
      BODY_LIMIT_BYTES: 1_048_576,
      SHUTDOWN_GRACE_MS: 10000,
      MAX_QUEUE: 128,
      MAX_QUEUE_WAIT_MS: 1000,
      MAX_REQUEST_MS: 30_000,
      MC_WORKER_NICE: 0,
      IDLE_GC: true,
    });
    expect(c.MODEL_PATH).toBeUndefined();
    expect(c.API_KEY).toBeUndefined();
  });
  it('reads values and treats empty strings as unset', () => {
    const c = loadConfig({
      PORT: '9000',
      MODEL_PATH: '/m/x.onnx',
      API_KEY: 'k'.repeat(20),
      LOG_LEVEL: 'warn',
      MODELS_SKIP_INVALID: 'true',
      HOST: '',
    });
    expect([c.PORT, c.MODEL_PATH, c.API_KEY, c.LOG_LEVEL, c.MODELS_SKIP_INVALID, c.HOST]).toEqual([
      9000,
      '/m/x.onnx',
      'k'.repeat(20),
      'warn',
      true,
      '0.0.0.0',
    ]);
  });
  it('names the variable of every bad value', () => {
    const msg = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error('expected a ConfigError');
    };
    expect(msg({ PORT: 'abc' })).toMatchInlineSnapshot(`"invalid configuration: PORT="abc": expected an integer"`);
    expect(msg({ PORT: '70000' })).toMatchInlineSnapshot(
      `"invalid configuration: PORT="70000": expected an integer ≤ 65535"`,
    );
    expect(msg({ MC_MAX_SAMPLES: '0' })).toMatchInlineSnapshot(
      `"invalid configuration: MC_MAX_SAMPLES="0": expected an integer ≥ 1"`,
    );
    expect(msg({ LOG_LEVEL: 'loud' })).toMatchInlineSnapshot(
      `"invalid configuration: LOG_LEVEL="loud": expected fatal, error, warn, info, debug, trace or silent"`,
    );
    expect(msg({ API_KEY: 'short' })).toMatchInlineSnapshot(
      `"invalid configuration: API_KEY="short": must be at least 16 characters"`,
    );
    expect(msg({ MODELS_SKIP_INVALID: 'maybe' })).toMatchInlineSnapshot(
      `"invalid configuration: MODELS_SKIP_INVALID="maybe": expected true or false"`,
    );
    expect(msg({ MC_DEFAULT_SAMPLES: '500', MC_MAX_SAMPLES: '100' })).toMatchInlineSnapshot(
      `"invalid configuration: MC_DEFAULT_SAMPLES=500 exceeds MC_MAX_SAMPLES=100"`,
    );
  });
  it('model management: ADMIN_API_KEY (apart from API_KEY), MODEL_VERSION_POLICY, MODELS_WATCH, MODELS_POLL_MS', () => {
    expect(loadConfig({}).ADMIN_API_KEY).toBeUndefined();
    expect(loadConfig({})).toMatchObject({
      MODEL_VERSION_POLICY: { kind: 'latest', count: 1 },
      MODELS_WATCH: false,
      MODELS_POLL_MS: 1000,
    });
    const c = loadConfig({
      ADMIN_API_KEY: 'a'.repeat(16),
      MODEL_VERSION_POLICY: 'latest:3',
      MODELS_WATCH: 'true',
      MODELS_POLL_MS: '250',
    });
    expect([c.ADMIN_API_KEY, c.MODEL_VERSION_POLICY, c.MODELS_WATCH, c.MODELS_POLL_MS]).toEqual([
      'a'.repeat(16),
      { kind: 'latest', count: 3 },
      true,
      250,
    ]);
    expect(loadConfig({ MODEL_VERSION_POLICY: ' all ' }).MODEL_VERSION_POLICY).toEqual({ kind: 'all' });
    const msg = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('expected a ConfigError');
    };
    expect(msg({ MODEL_VERSION_POLICY: 'latest:0' })).toMatchInlineSnapshot(
      `"invalid configuration: MODEL_VERSION_POLICY="latest:0": expected latest:N (N ≥ 1) or all"`,
    );
    expect(msg({ MODEL_VERSION_POLICY: 'newest' })).toMatchInlineSnapshot(
      `"invalid configuration: MODEL_VERSION_POLICY="newest": expected latest:N (N ≥ 1) or all"`,
    );
    expect(msg({ ADMIN_API_KEY: 'short' })).toMatchInlineSnapshot(
      `"invalid configuration: ADMIN_API_KEY="short": must be at least 16 characters"`,
    );
    expect(msg({ ADMIN_API_KEY: 'k'.repeat(20), API_KEY: 'k'.repeat(20) })).toMatchInlineSnapshot(
      `"invalid configuration: ADMIN_API_KEY must differ from API_KEY"`,
    );
    expect(msg({ MODELS_POLL_MS: '10' })).toMatchInlineSnapshot(
      `"invalid configuration: MODELS_POLL_MS="10": expected an integer ≥ 100"`,
    );
  });
});
