import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { generateOpenApi, generateOpenApiObject } from '../../src/server/openapi.js';
import type { FastifyReply } from 'fastify';
import { SECURITY_HEADERS, setSecurityHeaders } from '../../src/server/plugins/security-headers.js';
import { DIABETES_ROW, testApp } from '../helpers/app.js';

/** Fastify's symbol of a reply's pending headers (what setSecurityHeaders writes in place). */
const REPLY_HEADERS_FOR_TEST = (createRequire(import.meta.url)('fastify/lib/symbols.js') as { kReplyHeaders: symbol })
  .kReplyHeaders;

describe('OpenAPI', () => {
  it('the committed openapi/openapi.json is what the code generates (run `npm run openapi` after changing a schema)', async () => {
    expect(readFileSync('openapi/openapi.json', 'utf8')).toBe(await generateOpenApi());
  });
  it('is a valid OpenAPI 3.0 document with every route', async () => {
    const doc = await generateOpenApiObject();
    const res = await new Validator().validate(doc as Parameters<Validator['validate']>[0]);
    expect(res.errors).toBeUndefined();
    expect(res.valid).toBe(true);
    expect(Object.keys(doc.paths as object)).toEqual(
      expect.arrayContaining([
        '/v1/models',
        '/v1/models/{name}',
        '/v1/models/{name}/predict',
        '/v1/models/{name}/uncertainty',
        '/v2/models/{name}/infer',
        '/v2/models/{name}/versions/{version}/infer',
        '/health/ready',
        '/metrics',
      ]),
    );
  });
  it('/openapi.json serves it and /docs serves the Swagger UI', async () => {
    const { app } = await testApp();
    const spec = await app.inject('/openapi.json');
    expect(spec.json()).toEqual(JSON.parse(readFileSync('openapi/openapi.json', 'utf8')));
    const docs = await app.inject('/docs/');
    expect(docs.statusCode).toBe(200);
    expect(docs.body).toContain('swagger-ui');
    await app.close();
  });
});

describe('API_KEY bearer auth', () => {
  it('off by default; when set, every route but health and metrics needs the token', async () => {
    const open = (await testApp()).app;
    expect((await open.inject('/v1/models')).statusCode).toBe(200);
    await open.close();
    const key = 'a-long-enough-secret-key';
    const { app } = await testApp({ API_KEY: key });
    for (const url of ['/v1/models', '/v1/models/diabetes', '/v2/models/diabetes', '/v2', '/openapi.json', '/docs/']) {
      const r = await app.inject(url);
      expect(r.statusCode, url).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer');
    }
    const v2 = await app.inject({ method: 'POST', url: '/v2/models/diabetes/infer', payload: {} });
    expect(v2.json()).toEqual({ error: 'missing or invalid bearer token (Authorization: Bearer <API_KEY>)' });
    expect((await app.inject({ url: '/v1/models', headers: { authorization: `Bearer ${key}x` } })).statusCode).toBe(
      401,
    );
    expect((await app.inject({ url: '/v1/models', headers: { authorization: key } })).statusCode).toBe(401);
    expect((await app.inject({ url: '/v1/models', headers: { authorization: `Bearer ${key}` } })).statusCode).toBe(200);
    // the scheme is case-insensitive (RFC 7235 §2.1); the token is not
    for (const scheme of ['bearer', 'BEARER', 'bEaReR']) {
      expect(
        (await app.inject({ url: '/v1/models', headers: { authorization: `${scheme} ${key}` } })).statusCode,
        scheme,
      ).toBe(200);
    }
    expect(
      (await app.inject({ url: '/v1/models', headers: { authorization: `bearer ${key.toUpperCase()}` } })).statusCode,
    ).toBe(401);
    expect((await app.inject({ url: '/v1/models', headers: { authorization: `Basic ${key}` } })).statusCode).toBe(401);
    for (const url of ['/health/live', '/health/ready', '/metrics', '/v2/health/live', '/v2/health/ready']) {
      expect((await app.inject(url)).statusCode, url).toBe(200);
    }
    await app.close();
  });
});

describe('a real port', () => {
  it('listens and answers fetch', async () => {
    const { app } = await testApp();
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    const r = await fetch(`${address}/v1/models/diabetes/uncertainty`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instances: [DIABETES_ROW], samples: 50, seed: 1 }),
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-request-id')).toBeTruthy();
    const body = (await r.json()) as { predictions: { epistemic_std: number }[] };
    expect(body.predictions[0]!.epistemic_std).toBeGreaterThan(0);
    await app.close();
  });
  it('close drains an in-flight request, then refuses new ones and releases the models', async () => {
    const { app } = await testApp({ MC_MAX_WORK: '100000000', MC_MAX_SAMPLES: '1000000' });
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    const slow = fetch(`${address}/v1/models/wine/uncertainty`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', connection: 'close' },
      body: JSON.stringify({
        instances: Array(64).fill([13, 2, 2.4, 19, 100, 2, 2, 0.3, 1.5, 5, 1, 2.5, 700]),
        samples: 20000,
      }),
    });
    await new Promise((r) => setTimeout(r, 50));
    app.repository.state = 'closing';
    const closing = app.close();
    const res = await slow;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { predictions: unknown[] }).predictions).toHaveLength(64);
    await closing;
    expect(app.repository.list()).toHaveLength(0);
    await expect(fetch(`${address}/health/live`)).rejects.toThrow();
  });
});

describe('security headers, CORS and rate limiting', () => {
  it('API responses, errors included, carry the security headers; /docs gets a CSP that lets Swagger UI run', async () => {
    const { app } = await testApp();
    for (const r of [
      await app.inject('/v1/models'),
      await app.inject('/v1/models/nope'),
      await app.inject({ method: 'POST', url: '/v2/models/diabetes/infer', payload: {} }),
    ]) {
      expect(r.headers['content-security-policy']).toBe("default-src 'none'; frame-ancestors 'none'");
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['x-frame-options']).toBe('DENY');
      expect(r.headers['cache-control']).toBe('no-store');
      expect(r.headers['strict-transport-security']).toBe('max-age=31536000');
      expect(r.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
      expect(r.headers['access-control-allow-origin']).toBeUndefined(); // CORS off unless configured
    }
    // set in place of the reply's empty header object, or through reply.headers() when it has one
    const reply = (headers: Record<string, string>) => {
      const set: Record<string, unknown> = {};
      const pending: Record<string, unknown> = { ...headers };
      const r = {
        [REPLY_HEADERS_FOR_TEST]: pending,
        headers(h: Record<string, unknown>) {
          Object.assign(pending, h);
          Object.assign(set, h);
          return this;
        },
        header(k: string, v: unknown) {
          pending[k] = v;
          set[k] = v;
          return this;
        },
      } as unknown as FastifyReply & Record<symbol, Record<string, unknown>>;
      return { r, set };
    };
    const empty = reply({});
    setSecurityHeaders(empty.r, 'id-1');
    expect(empty.r[REPLY_HEADERS_FOR_TEST]).toEqual({ ...SECURITY_HEADERS, 'x-request-id': 'id-1' });
    expect(empty.set).toEqual({});
    const busy = reply({ vary: 'origin' });
    setSecurityHeaders(busy.r, 'id-2');
    expect(busy.r[REPLY_HEADERS_FOR_TEST]).toEqual({ vary: 'origin', ...SECURITY_HEADERS, 'x-request-id': 'id-2' });
    expect(busy.set).toEqual({ ...SECURITY_HEADERS, 'x-request-id': 'id-2' });
    const docs = await app.inject('/docs/static/index.html');
    expect(docs.headers['content-security-policy']).toMatch(/script-src 'self'/);
    expect(docs.headers['content-security-policy']).not.toMatch(/upgrade-insecure-requests/);
    await app.close();
  });
  it('CORS_ORIGIN allows the listed origins', async () => {
    const { app } = await testApp({ CORS_ORIGIN: 'https://a.example, https://b.example' });
    const ok = await app.inject({
      method: 'OPTIONS',
      url: '/v1/models',
      headers: { origin: 'https://b.example', 'access-control-request-method': 'POST' },
    });
    expect(ok.headers['access-control-allow-origin']).toBe('https://b.example');
    const other = await app.inject({ url: '/v1/models', headers: { origin: 'https://evil.example' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    await app.close();
  });
  it('RATE_LIMIT_MAX answers 429 past the limit, in each API shape; health is exempt', async () => {
    const { app } = await testApp({ RATE_LIMIT_MAX: '2' });
    expect((await app.inject('/v1/models')).statusCode).toBe(200);
    expect((await app.inject('/v1/models')).statusCode).toBe(200);
    const limited = await app.inject('/v1/models');
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({ statusCode: 429, code: 'DS_RATE_LIMITED' });
    expect((await app.inject({ method: 'POST', url: '/v2/models/diabetes/infer', payload: {} })).json()).toEqual({
      error: 'rate limit: at most 2 requests per 1 minute; retry later',
    });
    for (let i = 0; i < 5; i++) expect((await app.inject('/health/ready')).statusCode).toBe(200);
    await app.close();
  });
});
