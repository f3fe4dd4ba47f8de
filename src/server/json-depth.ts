/**
 * A nesting-depth limit checked on the raw JSON bytes before JSON.parse. A 600 KB body of 300 000 `[`
 * cost 209–247 ms of main-thread JSON.parse each (issue 14); this scan stops at the first bracket over
 * the limit, and otherwise costs about a fifth of JSON.parse on the same body (600 KB of rows: 1.3–1.7
 * ms against 6.5–8 ms, measured side by side; a byte table, no allocation). No valid request comes
 * close to the limit: a /v1 body nests 3 deep, a V2 one 3 + its tensor's rank (at most 8).
 */

/** Deeper bodies are refused with a 400 before they are parsed. */
export const MAX_JSON_DEPTH = 32;

/** 1: opens, 2: closes, 3: a quote (a string starts); 0: anything else. */
const KIND = new Uint8Array(256);
KIND[0x5b] = 1; // [
KIND[0x7b] = 1; // {
KIND[0x5d] = 2; // ]
KIND[0x7d] = 2; // }
KIND[0x22] = 3; // "

/** What scanJson found: nothing to fear, nesting past the limit, or a string that may be a forbidden key. */
export const JSON_PLAIN = 0;
export const JSON_TOO_DEEP = 1;
export const JSON_SUSPECT = 2;
export type JsonScan = typeof JSON_PLAIN | typeof JSON_TOO_DEEP | typeof JSON_SUSPECT;

/**
 * One pass over the UTF-8 JSON text `bytes`: JSON_TOO_DEEP when it nests arrays and objects deeper than
 * `max`; else JSON_SUSPECT when a string starts with `_`, `c` or a backslash (it may be a `__proto__` or
 * `constructor` key, which secure-json-parse looks for with two regular expressions over the whole
 * text, so such a body is left to it); else JSON_PLAIN (JSON.parse alone is then as safe). Brackets
 * inside strings do not count (escapes are honoured; bytes of multi-byte characters are ≥ 0x80 and
 * never match); the text need not be valid JSON (JSON.parse judges that afterwards).
 */
export function scanJson(bytes: Uint8Array, max = MAX_JSON_DEPTH): JsonScan {
  let depth = 0;
  let suspect = false;
  const n = bytes.length;
  for (let i = 0; i < n; i++) {
    const k = KIND[bytes[i]!]!;
    if (k === 0) continue;
    if (k === 1) {
      if (++depth > max) return JSON_TOO_DEEP;
    } else if (k === 2) {
      depth--;
    } else {
      const first = bytes[i + 1];
      if (first === 0x5f || first === 0x63 || first === 0x5c) suspect = true;
      for (i++; i < n; i++) {
        const c = bytes[i]!;
        if (c === 0x5c) i++;
        else if (c === 0x22) break;
      }
    }
  }
  return suspect ? JSON_SUSPECT : JSON_PLAIN;
}

/** Whether the UTF-8 JSON text `bytes` nests arrays and objects deeper than `max` (scanJson). */
export function exceedsJsonDepth(bytes: Uint8Array, max = MAX_JSON_DEPTH): boolean {
  return scanJson(bytes, max) === JSON_TOO_DEEP;
}
