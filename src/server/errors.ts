/**
 * The error catalogue (@fastify/error) and the mapping of core errors to HTTP. Every client mistake is
 * a 4xx whose message names the problem; 5xx are real faults, logged, with details hidden.
 */
import createError from '@fastify/error';

export const ModelNotFound = createError<[string, string]>('DS_MODEL_NOT_FOUND', 'unknown model "%s" (available: %s)', 404);
export const NoDropout = createError<[string]>('DS_NO_DROPOUT', '%s', 422);
export const TooLarge = createError<[string]>('DS_TOO_LARGE', '%s', 413);
export const InvalidInput = createError<[string]>('DS_INVALID_INPUT', '%s', 400);
export const Unauthorized = createError('DS_UNAUTHORIZED', 'missing or invalid bearer token (Authorization: Bearer <API_KEY>)', 401);
export const NotReady = createError<[string]>('DS_NOT_READY', '%s', 503);
