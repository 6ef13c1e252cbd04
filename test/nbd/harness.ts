/**
 * What the NBD suites share: the test gateway (serve-memory.ts) in a child process, its log lines,
 * and running real client tools with a time limit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(here, '..', '..');

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly reason?: string;
  readonly conn?: number;
  readonly [key: string]: unknown;
}

export type VolumeStats = Record<string, Record<string, number>>;

export class TestGateway {
  readonly logs: LogLine[] = [];
  private readonly stdoutLines: string[] = [];
  private lineWaiters: Array<() => void> = [];

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {}

  /**
   * Starts serve-memory.ts with `args` (e.g. ['--volume', 'pool/a:64M']) and waits until it listens.
   * With '--control' among them its stdin is a pipe for control().
   */
  static async start(args: readonly string[]): Promise<TestGateway> {
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'serve-memory.ts'), ...args], {
      cwd: ROOT,
      stdio: [args.includes('--control') ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const stdout = createInterface({ input: child.stdout! });
    const first = await new Promise<string>((resolve, reject) => {
      const failed = (code: number | null): void => reject(new Error(`test gateway exited (${code}) before listening`));
      child.once('exit', failed);
      stdout.once('line', (line) => {
        child.off('exit', failed);
        resolve(line);
      });
    });
    const gateway = new TestGateway(child, (JSON.parse(first) as { port: number }).port);
    stdout.on('line', (line) => gateway.onStdout(line));
    createInterface({ input: child.stderr! }).on('line', (line) => {
      try {
        gateway.logs.push(JSON.parse(line) as LogLine);
      } catch {
        gateway.logs.push({ level: 50, msg: line });
      }
    });
    return gateway;
  }

  uri(exportName = ''): string {
    return `nbd://127.0.0.1:${this.port}/${exportName}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Counters of what reached each memory volume (reads, writes, fuaWrites, allocatedBytes...). */
  async stats(): Promise<VolumeStats> {
    const seen = this.stdoutLines.length;
    this.child.kill('SIGUSR2');
    for (;;) {
      const line = this.stdoutLines.slice(seen).find((l) => l.startsWith('{"stats"'));
      if (line) return (JSON.parse(line) as { stats: VolumeStats }).stats;
      await new Promise<void>((resolve) => this.lineWaiters.push(resolve));
    }
  }

  /** A command of serve-memory's --control ("hold", "release", "held", "ls"); resolves with its reply. */
  async control(command: string): Promise<unknown> {
    const seen = this.stdoutLines.length;
    this.child.stdin!.write(`${command}\n`);
    for (;;) {
      const line = this.stdoutLines.slice(seen).find((l) => l.startsWith('{"reply"'));
      if (line) return (JSON.parse(line) as { reply: unknown }).reply;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`test gateway exited before answering ${command}`);
      await new Promise<void>((resolve) => this.lineWaiters.push(resolve));
    }
  }

  /** SIGKILL, as a crash of the gateway process: nothing is drained or cleaned up. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGKILL');
    await exited;
  }

  /** Waits until a log line matches (the gateway logs asynchronously to the test). */
  async waitForLog(match: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching log line within ${timeoutMs} ms; last lines:\n${this.logs.slice(-8).map((l) => JSON.stringify(l)).join('\n')}`);
      await sleep(20);
    }
  }

  /** Lines logged at error level or above: none should appear whatever a client does. */
  errorLines(): LogLine[] {
    return this.logs.filter((l) => l.level >= 50);
  }

  /** SIGTERM, then waits for the exit; SIGKILL if it does not come. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }

  private onStdout(line: string): void {
    this.stdoutLines.push(line);
    const waiters = this.lineWaiters;
    this.lineWaiters = [];
    for (const wake of waiters) wake();
  }
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a tool to completion (killed after `timeoutMs`); never throws on a nonzero exit. */
export function run(cmd: string, args: readonly string[], options: { timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[harness] ${cmd} killed after ${options.timeoutMs} ms`;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Throws with the tool's output when it failed: test failures then say what the tool said. */
export async function runOk(cmd: string, args: readonly string[], options: { timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  const result = await run(cmd, args, options);
  if (result.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${result.code}\nstdout:\n${result.stdout.slice(-3000)}\nstderr:\n${result.stderr.slice(-3000)}`);
  }
  return result;
}

export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** fio's JSON output, after the nbd engine's "connected" chatter that precedes it. */
export function fioJson(stdout: string): { jobs: Array<{ error: number; read: { iops: number; io_bytes: number }; write: { iops: number; io_bytes: number } }> } {
  return JSON.parse(stdout.slice(stdout.indexOf('{'))) as ReturnType<typeof fioJson>;
}
