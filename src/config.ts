/**
 * Configuration from the environment: the only module that reads process.env. Every variable is
 * validated; a bad value stops the start with a message naming the variable.
 */
import { availableParallelism } from 'node:os';
import { z } from 'zod';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const int = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, { message: 'expected an integer' })
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(min, { message: `expected an integer ≥ ${min}` })
        .max(max, { message: `expected an integer ≤ ${max}` }),
    );

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' }))
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const nonEmpty = z.string().trim().min(1, { message: 'must not be empty' });

const EnvSchema = z.object({
  PORT: int(0, 65535).default(8080),
  HOST: nonEmpty.default('0.0.0.0'),
  MODELS_DIR: nonEmpty.default('models'),
  MODEL_PATH: nonEmpty.optional(),
  MODELS_SKIP_INVALID: bool.default(false),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      message: 'expected fatal, error, warn, info, debug, trace or silent',
    })
    .default('info'),
  MC_DEFAULT_SAMPLES: int(1, 1_000_000).default(100),
  MC_MAX_SAMPLES: int(1, 1_000_000).default(10000),
  MC_MAX_WORK: int(1, 1_000_000_000).default(1_000_000),
  /** Tensor models: the largest rows × samples × the model's activation bytes of one row in one pass (runBytesPerRow). */
  MC_MAX_WORK_BYTES: int(1, 2 ** 50).default(64 * 1024 ** 3),
  /** Tensor models: the largest activation bytes of one MC run (RuntimeOptions.maxRunBytes); samples are chunked to fit. */
  MC_MAX_RUN_BYTES: int(1 << 20, 2 ** 40).default(256 * 1024 ** 2),
  MAX_BATCH_ROWS: int(1, 1_000_000).default(1024),
  BODY_LIMIT_BYTES: int(1024, 1024 ** 3).default(1_048_576),
  API_KEY: z.string().min(16, { message: 'must be at least 16 characters' }).optional(),
  SHUTDOWN_GRACE_MS: int(0, 3_600_000).default(10000),
  ORT_INTRA_OP_THREADS: int(0, 256).default(1),
  MC_MAX_RUN_ROWS: int(1, 10_000_000).default(4096),
  /** Run the layers before the first dropout once per row, not once per sample. */
  MC_SHARED_PREFIX: bool.default(true),
  /** Coalesce concurrent small MC requests (same sample count, one run each) into one run. */
  MC_COALESCE: bool.default(true),
  /**
   * Largest coalesced run handed to a worker, in tiled rows: smaller batches keep the main thread and
   * the workers busy at the same time (bench). Inline runs may reach MC_MAX_RUN_ROWS.
   */
  MC_COALESCE_MAX_ROWS: int(1, 10_000_000).default(800),
  /** Worker threads for large Monte Carlo runs (0 = run everything on the main thread). */
  MC_WORKERS: int(0, 64).default(Math.max(1, Math.min(4, availableParallelism() - 1))),
  /** Rows × samples at or above which an MC request goes to a worker. */
  MC_WORKER_MIN_WORK: int(0, 1_000_000_000).default(20_000),
  /** Dynamic batching of predict requests: rows per coalesced run (0 = off) and the longest wait. */
  BATCH_MAX_ROWS: int(0, 1_000_000).default(256),
  BATCH_MAX_WAIT_US: int(0, 1_000_000).default(500),
  CORS_ORIGIN: nonEmpty.optional(),
  RATE_LIMIT_MAX: int(0, 1_000_000_000).default(0),
  RATE_LIMIT_WINDOW_MS: int(1, 86_400_000).default(60_000),
  /** Bearer key of the model management routes (/v2/repository/…); unset: those routes answer 404. */
  ADMIN_API_KEY: z.string().min(16, { message: 'must be at least 16 characters' }).optional(),
  /** Which versions of a model (`<name>/<version>/model.onnx`) are served: the N highest, or all. */
  MODEL_VERSION_POLICY: z
    .string()
    .trim()
    .regex(/^(all|latest:[1-9]\d{0,5})$/, { message: 'expected latest:N (N ≥ 1) or all' })
    .transform((v): VersionPolicy => (v === 'all' ? { kind: 'all' } : { kind: 'latest', count: Number(v.slice(7)) }))
    .default({ kind: 'latest', count: 1 }),
  /** Hot reload: poll the models' files and load new or changed ones, unload removed ones. */
  MODELS_WATCH: bool.default(false),
  /** How often the hot reload polls (a file must look the same in two polls in a row to be loaded). */
  MODELS_POLL_MS: int(100, 3_600_000).default(1000),
  /**
   * Admission control: requests that may wait for a Monte Carlo runner (and, separately, for a predict
   * run); beyond it, 503 with Retry-After. docs/operating.md "Under overload" says how the default was sized.
   */
  MAX_QUEUE: int(1, 1_000_000).default(128),
  /** The longest deadline of a request (x-request-timeout and V2 parameters.timeout are capped by it). */
  MAX_REQUEST_MS: int(1, 3_600_000).default(30_000),
  /** Time to receive a whole request, headers and body (Node's requestTimeout: 408, then closed). */
  REQUEST_TIMEOUT_MS: int(1, 3_600_000).default(10_000),
  /** A connection with no traffic for this long is closed; must exceed MAX_REQUEST_MS (a request's answer may take that long). */
  CONNECTION_TIMEOUT_MS: int(1, 3_600_000).default(60_000),
  /** Inputs far outside the training range (card feature_stats): flag them in the response, reject (422), or off. */
  OUT_OF_RANGE: z.enum(['flag', 'reject', 'off'], { message: 'expected flag, reject or off' }).default('flag'),
  /** "Far outside": below min − k·std or above max + k·std of the training rows, k = OUT_OF_RANGE_STDS. */
  OUT_OF_RANGE_STDS: z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, { message: 'expected a non-negative number' })
    .transform(Number)
    .default(3),
  /** Request bodies being received at once, in bytes (declared lengths); beyond it 503 before the body is read (0 = no limit). */
  MAX_BODY_BYTES_IN_FLIGHT: int(0, 1024 ** 4).default(16 * 1024 * 1024),
  /** CPU priority of the MC worker threads (Linux nice, 0..19): the main thread (HTTP, health, predict) wins the CPU from them. */
  MC_WORKER_NICE: int(0, 19).default(0),
  /** A Monte Carlo request is also refused when the work queued ahead of it would take longer than this (estimated from the recent rate; 0 = no bound). */
  MAX_QUEUE_WAIT_MS: int(0, 3_600_000).default(1000),
  /** After a burst, at the first quiet second, two full garbage collections when the heap + external memory grew 16 MB, and 6 s after the last activity when the committed heap grew 2 MB (plugins/idle-gc.ts). */
  IDLE_GC: bool.default(true),
});

/** MODEL_VERSION_POLICY: serve the `count` highest versions of each model, or all of them. */
export type VersionPolicy = { kind: 'latest'; count: number } | { kind: 'all' };

export type Config = z.output<typeof EnvSchema>;

/** Parse a config from an environment (process.env by default). Empty strings count as unset. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const relevant: Record<string, string> = {};
  for (const key of Object.keys(EnvSchema.shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') relevant[key] = v;
  }
  const parsed = EnvSchema.safeParse(relevant);
  if (!parsed.success) {
    const messages = parsed.error.issues.map((i) => {
      const key = String(i.path[0]);
      return `${key}=${JSON.stringify(relevant[key] ?? '')}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration: ${messages.join('; ')}`);
  }
  const c = parsed.data;
  if (c.CONNECTION_TIMEOUT_MS <= c.MAX_REQUEST_MS)
    throw new ConfigError(
      `invalid configuration: CONNECTION_TIMEOUT_MS=${c.CONNECTION_TIMEOUT_MS} must exceed MAX_REQUEST_MS=${c.MAX_REQUEST_MS} (an answer may take that long)`,
    );
  if (c.MC_DEFAULT_SAMPLES > c.MC_MAX_SAMPLES)
    throw new ConfigError(
      `invalid configuration: MC_DEFAULT_SAMPLES=${c.MC_DEFAULT_SAMPLES} exceeds MC_MAX_SAMPLES=${c.MC_MAX_SAMPLES}`,
    );
  if (c.ADMIN_API_KEY !== undefined && c.ADMIN_API_KEY === c.API_KEY)
    throw new ConfigError('invalid configuration: ADMIN_API_KEY must differ from API_KEY');
  return c;
}
