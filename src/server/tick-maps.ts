/**
 * Keeps one of `process.nextTick`'s tick objects alive for the life of the process, so that V8 never
 * collects the hidden classes (maps) of Node's tick object literal,
 * `{ [async_id_symbol], [trigger_async_id_symbol], callback, args }`.
 *
 * Why: V8 adds a literal's Symbol-keyed properties one at a time, and the optimised code of `nextTick`
 * does it inline only while each site's feedback names one map (monomorphic). Feedback holds maps
 * weakly, and a map lives only while an object or a descendant map uses it. A full collection at a
 * moment when no tick object is alive (the idle collector's after the models load, or one during a
 * load) frees them; the next tick object gets new maps, the sites' feedback turns megamorphic for
 * good, and from then on every tick object (several per request: `onwrite`, `resOnFinish`, streams)
 * calls V8's runtime per property (`Runtime_DefineKeyedOwnPropertyInLiteral`, `JSObject::MigrateToMap`).
 * Measured in docs/benchmarks.md ("Two builds under the same load", the v8 paragraph).
 *
 * The object is caught without async hooks: inside a tick's callback, `executionAsyncResource()` is that
 * tick object. (A first version caught it with an `init` async hook enabled for one call: predict's
 * server CPU per request 1.35× in the A/B against the merge base, docs/benchmarks.md; our reading, not
 * verified: the hook sets V8's promise hooks, and V8 then drops its promise fast paths for good.) The tick queue holds the object until its
 * callback runs, so its maps are never unheld from the call on: make it the first import of the
 * server's entry point, before anything may collect.
 */
import { executionAsyncResource } from 'node:async_hooks';

let pinned: object | undefined;

/** Resolves to the pinned tick object (the same one on every call). */
export function pinTickObjectMaps(): Promise<object> {
  return new Promise((resolve) =>
    process.nextTick(() => {
      pinned ??= executionAsyncResource();
      resolve(pinned);
    }),
  );
}

void pinTickObjectMaps();
