/**
 * The HTTP cases the paired server benchmarks send (bench/ab-http.ts, bench/alloc.ts, bench/callgrind.ts):
 * one diabetes row as predict, as MC T=100 on /v1 and on V2, and a closed-loop client for a fixed count.
 */
import { Agent, request } from 'node:http';

export const ROW = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87];

/** [name, path, body] of each case, in the order the `*_CASES` variables number them. */
export const ALL_CASES: [string, string, unknown][] = [
  ['predict', '/v1/models/diabetes/predict', { instances: [ROW] }],
  ['MC T=100 (/v1)', '/v1/models/diabetes/uncertainty', { instances: [ROW], samples: 100 }],
  [
    'MC T=100 (V2)',
    '/v2/models/diabetes/infer',
    { inputs: [{ name: 'input', shape: [1, 10], datatype: 'FP32', data: ROW }], parameters: { mc_samples: 100 } },
  ],
];

/** The cases a comma list of case numbers names (all when it is absent). */
export const selectCases = (list: string | undefined): [string, string, unknown][] =>
  list ? list.split(',').map((i) => ALL_CASES[Number(i)]!) : ALL_CASES;

/** One POST; resolves on 200 (any other status is an error: the count would not be the path's). */
function post(agent: Agent, port: number, path: string, body: string): Promise<void> {
  return new Promise((res, rej) => {
    const req = request(
      { agent, host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/json' } },
      (r) => {
        r.resume();
        r.on('end', () => (r.statusCode === 200 ? res() : rej(new Error(`${path}: status ${r.statusCode}`))));
      },
    );
    req.on('error', rej);
    req.end(body);
  });
}

/** `n` requests over `connections` connections, each sending its next request when answered. */
export async function closedLoop(
  port: number,
  path: string,
  body: string,
  n: number,
  connections: number,
): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  let left = n;
  const lane = async (): Promise<void> => {
    while (left-- > 0) await post(agent, port, path, body);
  };
  await Promise.all(Array.from({ length: connections }, lane));
  agent.destroy();
}
