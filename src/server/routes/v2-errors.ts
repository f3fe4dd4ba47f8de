import { V2Error } from '../schemas/v2.js';

/** The error answers of the V2 model routes, for the OpenAPI document. */
export const V2_ERRORS = {
  400: V2Error,
  401: V2Error,
  404: V2Error,
  413: V2Error,
  422: V2Error,
  503: V2Error,
  504: V2Error,
};

/** A model route answers at /models/{name} and /models/{name}/versions/{version}. */
export const MODEL_PREFIXES = ['/models/:name', '/models/:name/versions/:version'];
