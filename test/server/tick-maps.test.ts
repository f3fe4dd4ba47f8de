import { executionAsyncResource } from 'node:async_hooks';
import { describe, expect, it } from 'vitest';
import { pinTickObjectMaps } from '../../src/server/tick-maps.js';

/** A tick object's keys in order, symbols by description (Node 24 adds kAsyncContextFrame to Node 20's four). */
const keysOf = (o: object): (string | undefined)[] => [
  ...Object.getOwnPropertySymbols(o).map((s) => s.description),
  ...Object.keys(o),
];

/** Another tick object of this Node, caught the way tick-maps.ts catches its own. */
const freshTick = (): Promise<object> =>
  new Promise((resolve) => process.nextTick(() => resolve(executionAsyncResource())));

describe('pinTickObjectMaps', () => {
  it("holds one of nextTick's own tick objects, the same on every call", async () => {
    const tick = (await pinTickObjectMaps()) as Record<string | symbol, unknown>;
    // the literal's keys in order: the maps kept are the ones nextTick's literal transitions through
    const keys = keysOf(tick);
    expect(keys).toEqual(keysOf(await freshTick()));
    expect(keys.slice(0, 2)).toEqual(['async_id_symbol', 'trigger_async_id_symbol']);
    expect(keys.slice(-2)).toEqual(['callback', 'args']);
    expect(typeof tick.callback).toBe('function');
    expect(await pinTickObjectMaps()).toBe(tick);
  });
});
