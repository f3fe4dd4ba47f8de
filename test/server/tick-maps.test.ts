import { describe, expect, it } from 'vitest';
import { pinTickObjectMaps } from '../../src/server/tick-maps.js';

describe('pinTickObjectMaps', () => {
  it("holds one of nextTick's own tick objects, the same on every call", async () => {
    const tick = (await pinTickObjectMaps()) as Record<string | symbol, unknown>;
    expect(tick).toBeDefined();
    const symbols = Object.getOwnPropertySymbols(tick).map((s) => s.description);
    // The literal's keys in order: the maps kept are the ones nextTick's literal transitions through.
    expect([...symbols, ...Object.keys(tick)]).toEqual([
      'async_id_symbol',
      'trigger_async_id_symbol',
      'callback',
      'args',
    ]);
    expect(typeof tick.callback).toBe('function');
    expect(await pinTickObjectMaps()).toBe(tick);
  });
});
