/** Run the real server entry point as a child process (start-up faults, signals). */
import { type ChildProcess, spawn } from 'node:child_process';

export interface Proc {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

export function startServerProcess(env: Record<string, string>): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server/server.ts'], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', LOG_LEVEL: 'info', MC_WORKERS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += String(d)));
  child.stderr!.on('data', (d) => (err += String(d)));
  const started = Date.now();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - started })),
  );
  return { child, stderr: () => err, stdout: () => out, exited };
}

export async function waitReady(url: string, proc: Proc, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`server exited ${proc.child.exitCode}: ${proc.stderr()}`);
    try {
      if ((await fetch(`${url}/health/ready`)).ok) return;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error('server not ready in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Wait until the child has written a line matching `re` to stdout: its pipe may deliver a log line after
 * an HTTP answer that the child sent later (the two travel on different channels).
 */
export async function waitForOutput(proc: Proc, re: RegExp, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (!re.test(proc.stdout())) {
    if (Date.now() > deadline) throw new Error(`no output matching ${re} in time; stdout so far:\n${proc.stdout()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return proc.stdout();
}

let nextPort = 19300 + Math.floor(Math.random() * 500);
export const freePort = (): number => nextPort++;
