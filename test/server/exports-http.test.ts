/**
 * Every PyTorch export habit (test/fixtures/torch: make_habits.py and make_fixtures.py), served from a
 * models folder of the original files by the real server (loader, repository, data plane with a
 * worker thread, both protocols): predict equals torch's model.eval() within 1e-4 at batch 1 and 32,
 * and Monte Carlo means and spreads match torch's own Monte Carlo at batch 1 (/v1, inline, 3 runs of
 * ≤ 4096 tiled rows) and batch 32 (V2 with binary tensors, on the worker, 16 runs). The fixed-batch
 * exports are served and say so in the "model loaded" line; the one that cannot be relaxed is refused
 * with the re-export to make.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/server/app.js';

const fx = 'test/fixtures/torch';
interface McRef {
  row: number;
  outputs: { mean: number[]; std: number[]; kurtosis?: number[] }[];
  mutual_information?: number;
  entropy_each_std?: number;
}
interface Served {
  file: string;
  card?: Record<string, unknown>;
  inputs: number[][];
  /** torch's eval outputs of the served output, per input row. */
  want: number[][];
  task: 'regression' | 'classification';
  /** Dropout rates; [] for an eval-mode export. */
  dropout: number[];
  /** torch's MC reference for the first rows (output index chosen). */
  mc: McRef[];
  /** Samples torch drew for the reference. */
  nt: number;
}

const habits = JSON.parse(readFileSync(join(fx, 'habits.json'), 'utf8')) as {
  mc_samples: number;
  fixtures: Record<
    string,
    { inputs: number[][]; outputs: Record<string, number[][] | number[]>; dropout: number[]; mc: McRef[] }
  >;
};
const expected = JSON.parse(readFileSync(join(fx, 'expected.json'), 'utf8')) as {
  inputs: number[][];
  outputs: Record<string, number[][]>;
  dropout: Record<string, number[]>;
  bn_mc_row0: { mean: number; std: number };
  net_mc_row0: { mean: number[]; std: number[] };
};

const rowsOf = (v: number[][] | number[]): number[][] => v.map((r) => (Array.isArray(r) ? r : [r]));
const models: Record<string, Served> = {};
for (const [file, f] of Object.entries(habits.fixtures)) {
  if (file.includes('concat')) continue;
  const outputs = Object.keys(f.outputs);
  outputs.forEach((output, oi) => {
    const name = file.replace(/\.onnx$/, '') + (oi === 0 ? '' : `_${output}`);
    let card: Record<string, unknown> | undefined;
    try {
      card = JSON.parse(readFileSync(join(fx, file.replace(/\.onnx$/, '.json')), 'utf8')) as Record<string, unknown>;
    } catch {
      card = undefined;
    }
    if (oi > 0) card = { ...card, output };
    models[name] = {
      file,
      card,
      inputs: f.inputs,
      want: rowsOf(f.outputs[output]!),
      task: card?.task === 'classification' ? 'classification' : 'regression',
      dropout: f.dropout,
      mc: f.mc.map((r) => ({ ...r, outputs: [r.outputs[oi]!] })),
      nt: habits.mc_samples,
    };
  });
}
for (const file of Object.keys(expected.outputs)) {
  const ref = file.includes('bn')
    ? { mean: [expected.bn_mc_row0.mean], std: [expected.bn_mc_row0.std] }
    : expected.net_mc_row0;
  models[file.replace(/\.onnx$/, '')] = {
    file,
    inputs: expected.inputs,
    want: expected.outputs[file]!,
    task: 'regression',
    dropout: expected.dropout[file]!,
    mc: [{ row: 0, outputs: [ref] }],
    nt: 20000,
  };
}

let app: FastifyInstance;
const logs: Record<string, unknown>[] = [];
beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ds-exports-http-'));
  for (const [name, m] of Object.entries(models)) {
    mkdirSync(join(dir, name));
    copyFileSync(join(fx, m.file), join(dir, name, 'model.onnx'));
    if (m.card) writeFileSync(join(dir, name, 'model.json'), JSON.stringify(m.card));
  }
  mkdirSync(join(dir, 'concat'));
  copyFileSync(join(fx, 'habit_fixed_batch1_concat_op13.onnx'), join(dir, 'concat', 'model.onnx'));
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n'))
        if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const config = loadConfig({ MODELS_DIR: dir, MODELS_SKIP_INVALID: 'true', MC_WORKERS: '1', BATCH_MAX_ROWS: '0' });
  app = await buildApp({ config, logger: { level: 'info', stream } });
  await app.loadModels();
  await app.ready();
}, 60_000);
afterAll(() => app?.close());

/** 5 standard errors of the difference of two independent estimates (ours over T samples, torch's over NT). */
const meanTol = (sd: number, T: number, NT: number): number => 5 * sd * Math.sqrt(1 / T + 1 / NT);
/** Relative, from Var(s²) ≈ σ⁴(κ − 1)/n; κ = 5 where torch's kurtosis was not recorded. */
const stdTol = (kurtosis: number | undefined, T: number, NT: number): number =>
  5 * Math.sqrt((((kurtosis ?? 5) - 1) / 4) * (1 / T + 1 / NT));

/** 32 rows: the fixture's first rows (those with a torch MC reference) first, then the others cycled. */
const batch32 = (inputs: number[][]): number[][] => Array.from({ length: 32 }, (_, i) => inputs[i % inputs.length]!);

const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });

/** A binary V2 request (tritonclient's framing) asking for binary outputs; returns outputs by name as float32. */
async function inferBinary(
  name: string,
  input: string,
  rows: number[][],
  parameters: Record<string, unknown>,
): Promise<Record<string, Float32Array>> {
  const x = Float32Array.from(rows.flat());
  const head = Buffer.from(
    JSON.stringify({
      inputs: [
        {
          name: input,
          shape: [rows.length, rows[0]!.length],
          datatype: 'FP32',
          parameters: { binary_data_size: x.byteLength },
        },
      ],
      parameters: { ...parameters, binary_data_output: true },
    }),
  );
  const r = await app.inject({
    method: 'POST',
    url: `/v2/models/${name}/infer`,
    payload: Buffer.concat([head, Buffer.from(x.buffer)]),
    headers: { 'inference-header-content-length': String(head.length) },
  });
  expect(r.statusCode, r.body.slice(0, 300)).toBe(200);
  const hlen = Number(r.headers['inference-header-content-length']);
  const header = JSON.parse(r.rawPayload.subarray(0, hlen).toString()) as {
    outputs: { name: string; parameters: { binary_data_size: number } }[];
  };
  const out: Record<string, Float32Array> = {};
  let at = hlen;
  for (const o of header.outputs) {
    out[o.name] = new Float32Array(
      new Uint8Array(r.rawPayload.subarray(at, at + o.parameters.binary_data_size)).buffer,
    );
    at += o.parameters.binary_data_size;
  }
  return out;
}

describe('export habits over HTTP, from their original files', () => {
  it('every fixture is served; the fixed batches say what was relaxed; the one that cannot be relaxed is refused with the re-export', () => {
    const loaded = logs.filter((l) => l.msg === 'model loaded');
    expect(loaded.map((l) => l.model).sort()).toEqual(Object.keys(models).sort());
    for (const l of loaded) {
      if (String(l.model).startsWith('habit_fixed_batch1'))
        expect(l.batch_relaxed).toMatch(
          /^input "x" was exported with a fixed batch of 1 \(\[1, 8\]\); serving any batch size/,
        );
      else expect(l.batch_relaxed).toBeUndefined();
    }
    const skipped = logs.filter((l) => l.msg === 'model skipped (MODELS_SKIP_INVALID)');
    expect(skipped).toHaveLength(1);
    expect(skipped[0]!.model).toBe('concat');
    expect(skipped[0]!.error).toMatch(
      /node "\/Concat" \(Concat\) joins the rows with the constant .* Re-export with a dynamic batch: torch\.onnx\.export\(\.\.\., input_names=\["x"\], output_names=\["y"\], dynamic_axes=/,
    );
  });

  for (const [name, m] of Object.entries(models)) {
    it(`${name}: predict within 1e-4 of torch at batch 1 and 32 (/v1 and V2)${m.dropout.length ? '; MC mean and spread match torch at batch 1 (/v1) and 32 (V2 binary, chunked, on the worker)' : '; no MC (422)'}`, async () => {
      const K = m.want[0]!.length;
      const close = (got: number[], want: number[], what: string) => {
        expect(got.length, what).toBe(want.length);
        got.forEach((v, k) => {
          expect(Math.abs(v - want[k]!), `${what}[${k}]: ${v} vs torch ${want[k]}`).toBeLessThan(1e-4);
        });
      };
      const asRow = (p: unknown): number[] =>
        m.task === 'classification'
          ? Object.values((p as { probabilities: Record<string, number> }).probabilities)
          : Array.isArray(p)
            ? (p as number[])
            : [p as number];
      // /v1 at batch 1 and 32
      for (const rows of [[m.inputs[0]!], batch32(m.inputs)]) {
        const r = await post(`/v1/models/${name}/predict`, { instances: rows });
        expect(r.statusCode, r.body.slice(0, 300)).toBe(200);
        (r.json().predictions as unknown[]).forEach((p, i) => {
          close(asRow(p), m.want[i % m.inputs.length]!, `/v1 row ${i}`);
        });
      }
      // V2 JSON at batch 32: the served tensor (probabilities for the classifier), flat
      const meta = (await app.inject(`/v2/models/${name}`)).json() as {
        inputs: { name: string }[];
        outputs: { name: string }[];
      };
      const v2 = await post(`/v2/models/${name}/infer`, {
        inputs: [
          {
            name: meta.inputs[0]!.name,
            shape: [32, m.inputs[0]!.length],
            datatype: 'FP32',
            data: batch32(m.inputs).flat(),
          },
        ],
      });
      expect(v2.statusCode).toBe(200);
      const flat = (v2.json().outputs as { data: number[] }[])[0]!.data;
      for (let i = 0; i < 32; i++) close(flat.slice(i * K, (i + 1) * K), m.want[i % m.inputs.length]!, `V2 row ${i}`);

      if (m.dropout.length === 0) {
        const r = await post(`/v1/models/${name}/uncertainty`, { instances: [m.inputs[0]], samples: 10 });
        expect(r.statusCode).toBe(422);
        return;
      }
      // Monte Carlo: batch 1 on /v1 (10000 samples: 3 runs inline), batch 32 on V2 with binary tensors
      // (2000 samples: 64000 tiled rows ≥ MC_WORKER_MIN_WORK, on the worker thread, 16 runs)
      const one = (
        await post(`/v1/models/${name}/uncertainty`, {
          instances: [m.inputs[0]],
          samples: 10000,
          seed: 5,
          return_samples: false,
        })
      ).json() as { predictions: Record<string, unknown>[] };
      const many = await inferBinary(name, meta.inputs[0]!.name, batch32(m.inputs), { mc_samples: 2000, seed: 6 });
      const runs = [
        { T: 10000, rows: 1, get: (r: number) => one.predictions[r]! },
        { T: 2000, rows: Math.min(3, m.mc.length), get: (r: number) => ({ v2: r }) },
      ];
      for (const run of runs) {
        for (let r = 0; r < run.rows; r++) {
          const ref = m.mc[r]!;
          expect(ref.row).toBe(r);
          const o = ref.outputs[0]!;
          const p = run.get(r) as Record<string, unknown>;
          const fromV2 = 'v2' in p;
          if (m.task === 'regression') {
            const mean = fromV2 ? Array.from(many.mean!.subarray(r * K, (r + 1) * K)) : asRow(p.mean);
            const sd = fromV2 ? Array.from(many.epistemic_std!.subarray(r * K, (r + 1) * K)) : asRow(p.epistemic_std);
            for (let k = 0; k < K; k++) {
              expect(sd[k]).toBeGreaterThan(0.005);
              expect(Math.abs(mean[k]! - o.mean[k]!), `mean row ${r}[${k}] T=${run.T}`).toBeLessThan(
                meanTol(o.std[k]!, run.T, m.nt),
              );
              expect(Math.abs(sd[k]! / o.std[k]! - 1), `spread row ${r}[${k}] T=${run.T}`).toBeLessThan(
                stdTol(o.kurtosis?.[k], run.T, m.nt),
              );
            }
          } else {
            const probs = fromV2 ? Array.from(many.probabilities!.subarray(r * K, (r + 1) * K)) : asRow(p);
            const mi = fromV2 ? many.mutual_information![r]! : (p.mutual_information as number);
            let gradTerm = 0;
            for (let k = 0; k < K; k++) {
              expect(Math.abs(probs[k]! - o.mean[k]!), `probability row ${r}[${k}] T=${run.T}`).toBeLessThan(
                meanTol(o.std[k]!, run.T, m.nt),
              );
              gradTerm += Math.abs(Math.log(o.mean[k]!) + 1) * o.std[k]!;
            }
            // MI = H(p̄) − mean H(p_t): linearised, its error is at most the sum of the two terms' errors
            expect(mi).toBeGreaterThan(0.005);
            expect(Math.abs(mi - ref.mutual_information!)).toBeLessThan(
              5 * Math.sqrt(1 / run.T + 1 / m.nt) * (ref.entropy_each_std! + gradTerm),
            );
          }
        }
      }
    });
  }

  it('the 32-row Monte Carlo requests ran on the worker thread, which loaded every model through the same loader', async () => {
    expect(logs.find((l) => l.msg === 'MC worker pool ready')).toMatchObject({ threads: 1, min_work: 20000 });
    const stats = (await app.inject('/v2/models/stats')).json() as {
      model_stats: { name: string; mode_stats: { mc: { batch_stats: { batch_size: number }[] } } }[];
    };
    const withMc = stats.model_stats.filter((s) => models[s.name]!.dropout.length > 0);
    expect(withMc.length).toBeGreaterThan(8);
    for (const s of withMc) expect(s.mode_stats.mc.batch_stats.map((b) => b.batch_size)).toEqual([1, 32]);
  });
});
