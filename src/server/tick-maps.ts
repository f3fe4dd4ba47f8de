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
 * The object is caught through the public async_hooks API: a hook with only `init`, enabled for one
 * `nextTick` call (synchronous), then disabled. Call this before anything that may collect: the first
 * import of the server's entry point.
 */
import { createHook } from 'node:async_hooks';

let pinned: object | undefined;

/** The pinned tick object (the same one on every call; undefined if Node gave none). */
export function pinTickObjectMaps(): object | undefined {
  if (pinned !== undefined) return pinned;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject' && pinned === undefined) pinned = resource as object;
    },
  });
  hook.enable();
  try {
    process.nextTick(() => {});
  } finally {
    hook.disable();
  }
  return pinned;
}

pinTickObjectMaps();
