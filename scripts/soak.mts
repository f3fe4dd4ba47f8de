/**
 * `npm run soak`: 60 s (SOAK_SECONDS) of mixed predict / MC / V2 load at 64 connections against the
 * real server in a child process. Passes when there are 0 errors, 0 non-2xx and RSS grows < 10%
 * between the first and the last 10 s. Prints a table; exits 1 on failure.
 * `npm run soak -- reload`: model reloads, hot reload, a corrupted file and unload/load under load
 * (soak-reload.mts).
 */
import { execFileSync } from 'node:child_process';
import autocannon from 'autocannon';
import { rssMb, startServer } from '../bench/lib.js';

if (process.argv[2] === 'reload') await import('./soak-reload.mjs'); // it exits with its verdict

execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' }); // the server runs from dist/, as npm start runs it

const seconds = Number(process.env.SOAK_SECONDS ?? 60);
const ROW = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87];
const WINE = [13, 2, 2.4, 19, 100, 2, 2, 0.3, 1.5, 5, 1, 2.5, 700];
const server = await startServer('src/server/server.ts', {}, 18990);
const rss: { t: number; mb: number }[] = [];
const started = Date.now();
const sampler = setInterval(() => rss.push({ t: (Date.now() - started) / 1000, mb: rssMb(server.pid) }), 1000);

const json = { 'content-type': 'application/json' };
const runs = [
  {
    name: 'predict (v1, 1-4 rows)',
    connections: 24,
    requests: [1, 4].map((n) => ({
      method: 'POST',
      path: '/v1/models/diabetes/predict',
      headers: json,
      body: JSON.stringify({ instances: Array(n).fill(ROW) }),
    })),
  },
  {
    name: 'uncertainty (v1, T=100..1000)',
    connections: 16,
    requests: [100, 1000].map((s) => ({
      method: 'POST',
      path: '/v1/models/wine/uncertainty',
      headers: json,
      body: JSON.stringify({ instances: Array(4).fill(WINE), samples: s }),
    })),
  },
  {
    name: 'infer (v2, predict and MC)',
    connections: 24,
    requests: [undefined, { mc_samples: 200 }].map((parameters) => ({
      method: 'POST',
      path: '/v2/models/diabetes/infer',
      headers: json,
      body: JSON.stringify({
        inputs: [{ name: 'input', shape: [2, 10], datatype: 'FP32', data: [...ROW, ...ROW] }],
        ...(parameters ? { parameters } : {}),
      }),
    })),
  },
];
const results = await Promise.all(
  runs.map((r) =>
    autocannon({ url: server.url, connections: r.connections, duration: seconds, requests: r.requests } as Parameters<
      typeof autocannon
    >[0]),
  ),
);
clearInterval(sampler);
await server.stop();

const window = (from: number, to: number): number => {
  const xs = rss.filter((s) => s.t >= from && s.t < to).map((s) => s.mb);
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
};
const first = window(0, 10);
const last = window(seconds - 10, seconds + 5);
const growth = (last - first) / first;
const errors = results.reduce((a, r) => a + r.errors + r.timeouts, 0);
const non2xx = results.reduce((a, r) => a + r.non2xx, 0);
const lines = [
  `soak: ${seconds} s, 64 connections, server RSS sampled every second`,
  '',
  '| load | connections | requests | req/s | p99 ms | errors | non-2xx |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...runs.map((r, i) => {
    const x = results[i]!;
    return `| ${r.name} | ${r.connections} | ${x.requests.total} | ${x.requests.average.toFixed(0)} | ${x.latency.p99} | ${x.errors + x.timeouts} | ${x.non2xx} |`;
  }),
  '',
  `RSS first 10 s ${first.toFixed(1)} MB, last 10 s ${last.toFixed(1)} MB: growth ${(growth * 100).toFixed(1)}% (limit 10%)`,
];
const ok = errors === 0 && non2xx === 0 && growth < 0.1;
process.stdout.write(`${lines.join('\n')}\n${ok ? 'PASS' : 'FAIL'}\n`);
process.exit(ok ? 0 : 1);
