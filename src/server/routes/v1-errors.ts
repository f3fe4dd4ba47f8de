import { ErrorBody } from '../schemas/v1.js';

/** The error answers of the /v1 model routes, for the OpenAPI document. */
export const V1_ERRORS = {
  400: ErrorBody,
  401: ErrorBody,
  404: ErrorBody,
  413: ErrorBody,
  422: ErrorBody,
  503: ErrorBody,
  504: ErrorBody,
};
