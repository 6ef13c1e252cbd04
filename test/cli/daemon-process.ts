/** Runs the real fastblockd and fastblock (from sources, under tsx) as child processes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const FASTBLOCKD = `${ROOT}cli/fastblockd.ts`;
export const FASTBLOCK = `${ROOT}cli/fastblock.ts`;
// By URL, so that a child running in another folder (an operator's project) still finds tsx.
const TSX = import.meta.resolve('tsx');

export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Running {
  readonly child: ChildProcess;
  /** Log lines so far (stdout is pino JSON). */
  readonly lines: Record<string, unknown>[];
  readonly stderr: () => string;
  /** Resolves with the first log line whose msg matches. */
  waitFor(msg: RegExp, timeoutMs?: number): Promise<Record<string, unknown>>;
  readonly exit: Promise<Finished>;
}

export function start(script: string, args: readonly string[], options: { cwd?: string; env?: Record<string, string> } = {}): Running {
  const child = spawn(process.execPath, ['--import', TSX, script, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let stdout = '';
  let stderr = '';
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // Not a log line (e.g. --print-config output).
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<Finished>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return {
    child,
    lines,
    stderr: () => stderr,
    exit,
    async waitFor(msg, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const line = lines.find((l) => msg.test(String(l.msg)));
        if (line) return line;
        if (child.exitCode !== null) throw new Error(`process exited (${child.exitCode}) before logging ${msg}: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`no log line matching ${msg}; stderr: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
  };
}

export function run(script: string, args: readonly string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Finished> {
  return start(script, args, options).exit;
}
