/** Start-up faults and shutdown, on the real entry point (src/server/server.ts) in a child process. */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DIABETES_ROW, WINE_ROW } from '../helpers/app.js';
import { freePort, startServerProcess, waitForOutput, waitReady } from '../helpers/process.js';

function modelsDir(setup: (dir: string) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'ds-start-'));
  setup(dir);
  return dir;
}
const copyModel = (dir: string, name: string, from = `models/${name}`) =>
  cpSync(from, join(dir, name), { recursive: true });

describe('start-up faults: a clear message naming the file or variable, exit code ≠ 0, never up-but-broken', () => {
  const onnx = readFileSync('models/diabetes/model.onnx');
  const cases: [string, () => Record<string, string>, RegExp][] = [
    [
      'missing models folder',
      () => ({ MODELS_DIR: '/nonexistent/models' }),
      /\/nonexistent\/models: cannot read the models folder \(ENOENT\)/,
    ],
    ['empty models folder', () => ({ MODELS_DIR: modelsDir(() => undefined) }), /no models found/],
    [
      'truncated ONNX',
      () => ({
        MODELS_DIR: modelsDir(
          (d) => (mkdirSync(join(d, 'cut')), writeFileSync(join(d, 'cut', 'model.onnx'), onnx.subarray(0, 700))),
        ),
      }),
      /cut\/model.onnx: (not an ONNX model|onnxruntime cannot load)/,
    ],
    [
      'a file that is not ONNX',
      () => ({
        MODELS_DIR: modelsDir(
          (d) => (
            mkdirSync(join(d, 'txt')), writeFileSync(join(d, 'txt', 'model.onnx'), 'just some text\n'.repeat(10))
          ),
        ),
      }),
      /txt\/model.onnx: not an ONNX model/,
    ],
    [
      'a card that contradicts the graph',
      () => ({
        MODELS_DIR: modelsDir((d) => {
          copyModel(d, 'diabetes');
          const card = JSON.parse(readFileSync('models/diabetes/model.json', 'utf8'));
          writeFileSync(
            join(d, 'diabetes', 'model.json'),
            JSON.stringify({ ...card, features: card.features.slice(0, 5) }),
          );
        }),
      }),
      /diabetes\/model.onnx: the card lists 5 features but the graph input "input" has 10/,
    ],
    ['an invalid env value', () => ({ PORT: 'eighty' }), /PORT="eighty": expected an integer/],
    [
      'a MODEL_PATH that does not exist',
      () => ({ MODEL_PATH: '/nope/model.onnx' }),
      /\/nope\/model.onnx: cannot read the file \(ENOENT\)/,
    ],
    [
      'one bad model among good ones (default: stop)',
      () => ({
        MODELS_DIR: modelsDir(
          (d) => (
            copyModel(d, 'diabetes'), mkdirSync(join(d, 'bad')), writeFileSync(join(d, 'bad', 'model.onnx'), 'garbage')
          ),
        ),
      }),
      /bad\/model.onnx: not an ONNX model/,
    ],
  ];
  it.each(cases)('%s', async (_name, env, message) => {
    const p = startServerProcess({ PORT: String(freePort()), ...env() });
    const { code } = await p.exited;
    expect(code).not.toBe(0);
    expect(p.stderr()).toMatch(message);
    expect(p.stderr()).not.toMatch(/\n\s+at /); // a message, not a stack trace
  });

  it('MODELS_SKIP_INVALID=true serves the good models and logs the bad one', async () => {
    const dir = modelsDir(
      (d) => (
        copyModel(d, 'diabetes'), mkdirSync(join(d, 'bad')), writeFileSync(join(d, 'bad', 'model.onnx'), 'garbage')
      ),
    );
    const port = freePort();
    const p = startServerProcess({ PORT: String(port), MODELS_DIR: dir, MODELS_SKIP_INVALID: 'true' });
    const url = `http://127.0.0.1:${port}`;
    await waitReady(url, p);
    expect(await (await fetch(`${url}/health/ready`)).json()).toEqual({ status: 'ready', models: ['diabetes'] });
    await waitForOutput(p, /model skipped \(MODELS_SKIP_INVALID\)/);
    p.child.kill('SIGTERM');
    expect((await p.exited).code).toBe(0);
  });
});

describe('shutdown', () => {
  it('SIGTERM with MC requests in flight: every accepted request completes with 200, new ones are refused, exit 0 within the grace period', async () => {
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    const p = startServerProcess({
      PORT: String(port),
      MC_MAX_WORK: '100000000',
      MC_MAX_SAMPLES: '100000',
      SHUTDOWN_GRACE_MS: '20000',
      MC_WORKERS: '1',
      MC_WORKER_MIN_WORK: '1000',
    });
    await waitReady(url, p);
    const heavy = () =>
      fetch(`${url}/v1/models/wine/uncertainty`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ instances: Array(64).fill(WINE_ROW), samples: 8000 }),
      });
    const inflight = [heavy(), heavy(), heavy()];
    await new Promise((r) => setTimeout(r, 200));
    const signalled = Date.now();
    p.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    // a request after the signal: refused (503 on a kept-alive connection, or the connection is refused)
    const late = await fetch(`${url}/v1/models/diabetes/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instances: [DIABETES_ROW] }),
    }).then(
      (r) => r.status,
      () => 'refused',
    );
    expect([503, 'refused']).toContain(late);
    const statuses = await Promise.all(inflight.map((r) => r.then((x) => x.status)));
    expect(statuses).toEqual([200, 200, 200]);
    const { code } = await p.exited;
    expect(code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(20000);
    expect(p.stdout()).toMatch(/shutting down/);
  });

  it('a second signal exits at once', async () => {
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    const p = startServerProcess({
      PORT: String(port),
      MC_MAX_WORK: '1000000000',
      MC_MAX_SAMPLES: '1000000',
      SHUTDOWN_GRACE_MS: '60000',
    });
    await waitReady(url, p);
    const slow = fetch(`${url}/v1/models/wine/uncertainty`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instances: Array(64).fill(WINE_ROW), samples: 200000 }),
    }).catch(() => 'aborted');
    await new Promise((r) => setTimeout(r, 300));
    p.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    const second = Date.now();
    p.child.kill('SIGTERM');
    await p.exited;
    expect(Date.now() - second).toBeLessThan(3000);
    await slow;
  });
});
