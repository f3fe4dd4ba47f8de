import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { INFERENCE_HEADER_CONTENT_LENGTH } from '../plugins/v2-body.js';
import * as v2 from '../protocol/v2.js';
import { withContext } from '../request-context.js';
import { v2InferFastPath, v2ParamsFastPath, withFastPath } from '../schemas/fast-path.js';
import { V2InferRequest, V2InferResponse, V2Params } from '../schemas/v2.js';
import { MODEL_PREFIXES, V2_ERRORS as errors } from './v2-errors.js';

// zod parsed every V2 body (15–50 µs a request, more than the rest of the route): the common ones skip it
const InferParams = withFastPath(V2Params, v2ParamsFastPath);
const InferBody = withFastPath(V2InferRequest, v2InferFastPath);

/** An encoded infer response: JSON, or JSON + binary outputs with Inference-Header-Content-Length. */
function sendInfer(reply: FastifyReply, r: ReturnType<typeof v2.encodeInferBody>): FastifyReply {
  reply.header('content-type', r.contentType);
  if (r.headerLength !== null) reply.header(INFERENCE_HEADER_CONTENT_LENGTH, r.headerLength);
  return reply.send(r.body);
}

/** POST /v2/models/{name}[/versions/{v}]/infer: eval-mode inference, or Monte Carlo dropout with parameters.mc_samples. */
export const v2InferRoutes: FastifyPluginAsyncZod = async (app) => {
  for (const prefix of MODEL_PREFIXES) {
    app.post(
      `${prefix}/infer`,
      {
        schema: {
          tags: ['v2'],
          summary: 'Inference; Monte Carlo dropout with parameters.mc_samples',
          params: InferParams,
          body: InferBody,
          response: { 200: V2InferResponse, ...errors },
        },
      },
      async (req, reply) => {
        const { params, body, v2Binary } = req;
        // the header's deadline and parameters.timeout: the sooner counts (withContext)
        const out = v2.isSampleRequest(body)
          ? v2.encodeSample(
              body,
              await app.dataPlane.sample(withContext(v2.sampleRequest(params, body, v2Binary), req, reply)),
            )
          : v2.encodePredict(
              body,
              await app.dataPlane.predict(withContext(v2.predictRequest(params, body, v2Binary), req, reply)),
            );
        return sendInfer(reply, v2.encodeInferBody(body, out));
      },
    );
  }
};
