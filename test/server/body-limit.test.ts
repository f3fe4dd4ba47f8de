/** A body over BODY_LIMIT_BYTES: a 413 that names the limit and, for JSON, the binary tensor extension. */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIABETES_ROW, testApp } from '../helpers/app.js';

let app: FastifyInstance;
beforeAll(async () => {
  ({ app } = await testApp({ BODY_LIMIT_BYTES: '4096' }));
});
afterAll(async () => {
  await app.close();
});

const ADVICE =
  'tensors travel without the cost of JSON in the V2 binary tensor data extension (POST /v2/models/{name}/infer: a JSON header, its length in Inference-Header-Content-Length, then the raw tensor bytes)';

describe('a body over BODY_LIMIT_BYTES', () => {
  it('JSON on /v1 and V2: 413 naming the limit and its variable, and the binary tensor extension', async () => {
    const rows = Array(200).fill(DIABETES_ROW);
    const v1 = await app.inject({ method: 'POST', url: '/v1/models/diabetes/predict', payload: { instances: rows } });
    expect(v1.statusCode).toBe(413);
    expect(v1.json()).toEqual({
      statusCode: 413,
      error: 'Payload Too Large',
      message: `body: more than BODY_LIMIT_BYTES=4096 bytes; ${ADVICE}`,
      code: 'FST_ERR_CTP_BODY_TOO_LARGE',
    });
    const v2 = await app.inject({
      method: 'POST',
      url: '/v2/models/diabetes/infer',
      payload: { inputs: [{ name: 'input', shape: [200, 10], datatype: 'FP32', data: rows.flat() }] },
    });
    expect(v2.statusCode).toBe(413);
    expect(v2.json()).toEqual({ error: `body: more than BODY_LIMIT_BYTES=4096 bytes; ${ADVICE}` });
  });

  it('a binary body: 413 naming the limit, without the advice it already follows', async () => {
    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'input', shape: [200, 10], datatype: 'FP32', parameters: { binary_data_size: 8000 } }],
      }),
    );
    const r = await app.inject({
      method: 'POST',
      url: '/v2/models/diabetes/infer',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
      payload: Buffer.concat([header, Buffer.alloc(8000)]),
    });
    expect(r.statusCode).toBe(413);
    expect(r.json()).toEqual({ error: 'body: more than BODY_LIMIT_BYTES=4096 bytes' });
  });
});
