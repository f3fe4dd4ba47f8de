/**
 * A request whose client has already gone when its body has been read is dropped before validation and
 * before the handler: under a burst, bodies that arrived before their clients reset would otherwise
 * each be validated and decoded on the main thread after the client left (50 aborted requests of 1000
 * rows kept the main thread busy 128–506 ms after the resets, the bench's abort probe). Once a request
 * is admitted, the data plane's client link (request-context.ts) cancels its queued and running work.
 */
import { ClientGoneError } from '../../serving/errors.js';
import { appPlugin } from './app-plugin.js';

export const clientGone = appPlugin(async (app) => {
  // a callback-style hook: it runs on every request with a body, and an async one costs a promise each
  app.addHook('preValidation', (req, _reply, done) => {
    if ((req.raw.socket as { destroyed?: boolean } | null)?.destroyed === true) return done(new ClientGoneError());
    done();
  });
});
