/** GET /v1/models/{name}/report over HTTP: the trainer's page, its type and policy; 404s that name the model. */
import { cpSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { REPORT_CSP } from '../../src/report/report.js';
import { buildApp } from '../../src/server/app.js';
import { reportPath } from '../../src/serving/discovery.js';

let app: FastifyInstance;
let dir: string;
beforeAll(async () => {
  // the shipped models (with their pages), a model without a page, and one whose page is a folder
  dir = mkdtempSync(join(tmpdir(), 'ds-report-'));
  cpSync('models/diabetes', join(dir, 'diabetes'), { recursive: true });
  cpSync('models/wine', join(dir, 'wine'), { recursive: true });
  mkdirSync(join(dir, 'torchnet'));
  cpSync('test/fixtures/torch/legacy_train_op13.onnx', join(dir, 'torchnet', 'model.onnx'));
  mkdirSync(join(dir, 'odd'));
  cpSync('test/fixtures/torch/eval_op13.onnx', join(dir, 'odd', 'model.onnx'));
  mkdirSync(join(dir, 'odd', 'report.html'));
  app = await buildApp({ config: loadConfig({ MODELS_DIR: dir, MC_WORKERS: '0', API_KEY: 'k'.repeat(32) }) });
  await app.loadModels();
  await app.ready();
});
afterAll(() => app.close());

const get = (url: string, auth = true) =>
  app.inject({ method: 'GET', url, headers: auth ? { authorization: `Bearer ${'k'.repeat(32)}` } : {} });

describe('GET /v1/models/{name}/report', () => {
  for (const [name, figure] of [
    ['diabetes', 'fig-calibration'],
    ['wine', 'fig-reliability-after'],
  ] as const) {
    it(`serves models/${name}/report.html as HTML with the page's own policy`, async () => {
      const r = await get(`/v1/models/${name}/report`);
      expect(r.statusCode).toBe(200);
      expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(r.headers['content-security-policy']).toBe(`${REPORT_CSP}; frame-ancestors 'none'`);
      expect(r.headers['content-security-policy']).not.toMatch(/script-src|unsafe-eval/);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.rawPayload.equals(readFileSync(join('models', name, 'report.html')))).toBe(true);
      expect(r.body).toContain(`id="${figure}"`);
      expect(r.body).toContain(`<title>${name} — model report</title>`);
    });
  }

  it('404 naming the model when it has no page, or its page cannot be read', async () => {
    for (const name of ['torchnet', 'odd']) {
      const r = await get(`/v1/models/${name}/report`);
      expect(r.statusCode).toBe(404);
      expect(r.headers['content-type']).toMatch(/^application\/json/);
      // the JSON error keeps the API's policy, not the page's
      expect(r.headers['content-security-policy']).toBe("default-src 'none'; frame-ancestors 'none'");
      expect(r.json()).toMatchObject({ statusCode: 404, code: 'DS_MODEL_NOT_FOUND' });
      expect(r.json().message).toMatch(
        new RegExp(
          `^model "${name}" has no report page \\(report.html beside its model file: E[A-Z]+\\); \`npm run train\` writes one$`,
        ),
      );
      expect(r.body).not.toContain(dir);
    }
  });

  it('404 naming an unknown model; 401 without the key', async () => {
    const r = await get('/v1/models/nope/report');
    expect(r.statusCode).toBe(404);
    expect(r.json().message).toBe('unknown model "nope" (available: diabetes, odd, torchnet, wine)');
    expect((await get('/v1/models/..%2Fdiabetes/report')).statusCode).toBe(404);
    expect((await get('/v1/models/diabetes/report', false)).statusCode).toBe(401);
  });

  it('is in the OpenAPI document as text/html', async () => {
    const doc = (await get('/openapi.json')).json();
    const op = doc.paths['/v1/models/{name}/report'].get;
    expect(Object.keys(op.responses['200'].content)).toEqual(['text/html']);
    expect(Object.keys(op.responses['404'].content)).toEqual(['application/json']);
  });
});

describe('reportPath', () => {
  it('is report.html beside model.<ext>, <stem>.report.html beside <stem>.<ext>', () => {
    expect(reportPath({ name: 'a', file: join('m', 'a', 'model.onnx'), card: null })).toBe(
      join('m', 'a', 'report.html'),
    );
    expect(reportPath({ name: 'b', file: join('x', 'b.onnx'), card: null })).toBe(join('x', 'b.report.html'));
  });
});
