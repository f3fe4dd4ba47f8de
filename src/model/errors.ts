/**
 * Errors of the model runtime. The HTTP layer maps them to status codes (InputError → 400,
 * NoDropoutError → 422, ModelLoadError → start-up failure); messages are written for the client.
 */
export class InputError extends Error {
  override name = 'InputError';
}

export class NoDropoutError extends Error {
  override name = 'NoDropoutError';
  constructor(model: string) {
    super(`model "${model}" has no Dropout node, so Monte Carlo dropout is not available; use predict`);
  }
}

export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}
