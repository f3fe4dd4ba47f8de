/** A problem with the user's data: cli.ts prints the message (naming file, line and column) and exits 1. */
export class DataError extends Error {
  override name = 'DataError';
}
