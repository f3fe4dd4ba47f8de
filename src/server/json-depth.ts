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

/**
 * Bodies up to this many bytes are parsed first and checked on their value (checkParsed), not scanned
 * byte by byte: the scan costs 25–28 instructions a byte (callgrind: 1.6 k a 56-byte predict body, 4.3
 * k a V2 Monte Carlo one, the largest cost the first release did not have), checkParsed about 2.1 k for
 * either (it grows with the values, not the bytes; below about 75 bytes the scan is the cheaper). Deep nesting costs JSON.parse about 0.4 µs a byte (issue 14: 600 KB of `[`, 209–247
 * ms), so a body this small costs at most about 0.2 ms however it nests; larger ones are scanned first.
 */
export const PARSE_FIRST_MAX_BYTES = 512;

/**
 * A parsed JSON value (JSON.parse's: plain objects, arrays, scalars) as scanJson would judge its
 * text: JSON_TOO_DEEP when arrays and objects nest deeper than `max`, else JSON_SUSPECT when an object
 * has a `__proto__` or `constructor` key (JSON.parse makes `__proto__` an own key; an escaped one is
 * decoded by then), else JSON_PLAIN.
 */
export function checkParsed(value: unknown, max = MAX_JSON_DEPTH): JsonScan {
  if (typeof value !== 'object' || value === null) return JSON_PLAIN;
  const found = { suspect: false };
  return walk(value, 1, max, found) ? JSON_TOO_DEEP : found.suspect ? JSON_SUSPECT : JSON_PLAIN;
}

const isContainer = (x: unknown): boolean => typeof x === 'object' && x !== null;

/** Whether the container `v`, at nesting depth `depth`, or one inside it is deeper than `max`. */
function walk(v: object, depth: number, max: number, found: { suspect: boolean }): boolean {
  if (depth > max) return true;
  if (Array.isArray(v)) {
    // an array of numbers (most) is passed by some(), a builtin: an indexed load that saw both arrays of
    // numbers and arrays of arrays made optimised code turn each array of numbers into one of boxed
    // values (a TransitionElementsKind per request, ~2.4 k instructions, and slower reads of the rows
    // afterwards), and for-of called the array iterator's next() per element (~120 instructions each)
    if (!v.some(isContainer)) return false;
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (typeof x === 'object' && x !== null && walk(x, depth + 1, max, found)) return true;
    }
    return false;
  }
  const o = v as Record<string, unknown>;
  for (const k in o) {
    if (k === '__proto__' || k === 'constructor') found.suspect = true;
    const x = o[k];
    if (typeof x === 'object' && x !== null && walk(x, depth + 1, max, found)) return true;
  }
  return false;
}
