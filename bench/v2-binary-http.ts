/**
 * `npx tsx bench/v2-binary-http.ts [rounds] [seconds] [connections]` (after `npm run build`): the V2
 * binary tensor data extension against JSON over HTTP on loopback, the same server and model
 * (diabetes, 10 features), a 256-row predict infer per request: JSON in and out (application/json) vs
 * binary in and out (tritonclient's framing: no Content-Type, Inference-Header-Content-Length,
 * parameters.binary_data_output). wrk -t1, alternated rounds (the order flips every round), after a
 * warm-up and a check that both answer the same float32 values. Prints req/s (median and best of the
 * rounds, and every round's ratio) and the server's CPU time per request (/proc, less sensitive to other
 * load on a shared machine). Needs wrk and Linux; the server runs from dist/ as `npm start` runs it.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const rounds = Number(process.argv[2] ?? 7);
const seconds = Number(process.argv[3] ?? 4);
const connections = Number(process.argv[4] ?? 16);
const ROWS = 256;
const PORT = 18961;
const tmp = mkdtempSync(join(tmpdir(), 'v2-binary-http-'));

// 256 distinct rows around the diabetes feature ranges
const base = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87];
const x = Float32Array.from({ length: ROWS * 10 }, (_, i) => base[i % 10]! * (1 + 0.2 * Math.sin(i)));
const jsonBody = Buffer.from(
  JSON.stringify({ inputs: [{ name: 'input', shape: [ROWS, 10], datatype: 'FP32', data: Array.from(x) }] }),
);
const head = Buffer.from(
  JSON.stringify({
    inputs: [{ name: 'input', shape: [ROWS, 10], datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }],
    parameters: { binary_data_output: true },
  }),
);
const binaryBody = Buffer.concat([head, Buffer.from(x.buffer)]);

const CASES: { name: string; body: Buffer; headers: Record<string, string> }[] = [
  { name: 'JSON', body: jsonBody, headers: { 'Content-Type': 'application/json' } },
  { name: 'binary', body: binaryBody, headers: { 'Inference-Header-Content-Length': String(head.length) } },
];

/** utime + stime of a process, in clock ticks (100 per second). */
const ticks = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
};

async function start(): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ['--max-semi-space-size=4', 'dist/server/server.js'], {
    env: { ...process.env, LOG_LEVEL: 'warn', HOST: '127.0.0.1', PORT: String(PORT) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (const deadline = Date.now() + 30_000; ; ) {
    if (proc.exitCode !== null) throw new Error(`the server exited with ${proc.exitCode}`);
    try {
      if ((await fetch(`http://127.0.0.1:${PORT}/health/ready`)).ok) return proc;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error('the server did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
}

const url = `http://127.0.0.1:${PORT}/v2/models/diabetes/infer`;

/** The float32 outputs of one request of a case (JSON: data; binary: the bytes after the header). */
async function answer(c: (typeof CASES)[number]): Promise<Float32Array> {
  const r = await fetch(url, { method: 'POST', body: c.body, headers: c.headers });
  if (!r.ok) throw new Error(`${c.name}: ${r.status} ${await r.text()}`);
  const bytes = Buffer.from(await r.arrayBuffer());
  const hlen = r.headers.get('inference-header-content-length');
  if (hlen === null)
    return Float32Array.from((JSON.parse(bytes.toString()) as { outputs: { data: number[] }[] }).outputs[0]!.data);
  return new Float32Array(new Uint8Array(bytes.subarray(Number(hlen))).buffer);
}

function wrk(c: (typeof CASES)[number], pid: number, secs: number): { rps: number; cpuUs: number } {
  const bodyFile = join(tmp, `${c.name}.body`);
  writeFileSync(bodyFile, c.body);
  const script = join(tmp, `${c.name}.lua`);
  const headers = Object.entries(c.headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`);
  writeFileSync(
    script,
    [
      `wrk.method = "POST"`,
      `local f = io.open(${JSON.stringify(bodyFile)}, "rb")`,
      'wrk.body = f:read("*a")',
      'f:close()',
      ...headers,
      '',
    ].join('\n'),
  );
  const t0 = ticks(pid);
  const out = execFileSync('wrk', ['-t1', `-c${connections}`, `-d${secs}s`, '-s', script, url]).toString();
  if (/Non-2xx|Socket errors/.test(out)) throw new Error(`errors under load:\n${out}`);
  const requests = Number(/(\d+) requests in/.exec(out)![1]);
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1]), cpuUs: ((ticks(pid) - t0) * 10_000) / requests };
}

const proc = await start();
try {
  const [a, b] = await Promise.all(CASES.map(answer));
  if (a!.length !== ROWS || Buffer.compare(Buffer.from(a!.buffer), Buffer.from(b!.buffer)) !== 0)
    throw new Error('JSON and binary answers differ');
  for (const c of CASES) wrk(c, proc.pid!, 2); // warm-up
  const rps: number[][] = [[], []];
  const cpu: number[][] = [[], []];
  for (let r = 0; r < rounds; r++) {
    for (const k of r % 2 === 0 ? [0, 1] : [1, 0]) {
      const m = wrk(CASES[k]!, proc.pid!, seconds);
      rps[k]!.push(m.rps);
      cpu[k]!.push(m.cpuUs);
    }
    process.stderr.write(
      `round ${r}: JSON ${rps[0]!.at(-1)!.toFixed(0)} req/s, binary ${rps[1]!.at(-1)!.toFixed(0)} req/s\n`,
    );
  }
  const median = (xs: number[]): number => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
  const ratios = rps[0]!.map((j, i) => rps[1]![i]! / j);
  const [ja, ba] = [await answer(CASES[0]!), await answer(CASES[1]!)].map((v) => v.length);
  process.stdout.write(
    [
      `V2 infer, ${ROWS} rows × 10 features (diabetes predict), wrk -t1 -c${connections}, ${rounds} alternated rounds of ${seconds} s`,
      `request bytes: JSON ${jsonBody.length}, binary ${binaryBody.length}; answers equal (${ja}, ${ba} float32 values)`,
      `req/s binary/JSON: median ${(median(rps[1]!) / median(rps[0]!)).toFixed(2)}× (JSON ${median(rps[0]!).toFixed(0)}, binary ${median(rps[1]!).toFixed(0)}), best ${(Math.max(...rps[1]!) / Math.max(...rps[0]!)).toFixed(2)}×; rounds ${ratios.map((v) => v.toFixed(2)).join(' ')}`,
      `server CPU per request JSON/binary: median ${(median(cpu[0]!) / median(cpu[1]!)).toFixed(2)}× (JSON ${median(cpu[0]!).toFixed(0)} µs, binary ${median(cpu[1]!).toFixed(0)} µs)`,
      '',
    ].join('\n'),
  );
} finally {
  proc.kill('SIGTERM');
}
