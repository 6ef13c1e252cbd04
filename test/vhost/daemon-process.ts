/**
 * Starts test/vhost/daemon.ts as a child process and talks to it: wait for READY, send runtime
 * management commands, SIGKILL it. Its log (stderr) is kept for assertions.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DaemonSpec } from './daemon.js';

const script = join(dirname(fileURLToPath(import.meta.url)), 'daemon.ts');

export class VhostDaemon {
  log = '';
  private readonly replies: ((line: string) => void)[] = [];
  private readonly lines: Interface;
  readonly exited: Promise<void>;

  private constructor(private readonly child: ChildProcess) {
    child.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    this.lines = createInterface({ input: child.stdout! });
    this.lines.on('line', (line) => this.replies.shift()?.(line));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  static async start(spec: DaemonSpec): Promise<VhostDaemon> {
    const child = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'pipe'] });
    const daemon = new VhostDaemon(child);
    const ready = await Promise.race([daemon.nextLine(), daemon.exited.then(() => 'EXITED')]);
    if (ready !== 'READY') throw new Error(`vhost test daemon did not start: ${daemon.log}`);
    return daemon;
  }

  private nextLine(): Promise<string> {
    return new Promise((resolve) => this.replies.push(resolve));
  }

  async command(op: Record<string, unknown>): Promise<{ ok: boolean; result?: unknown; error?: string }> {
    const reply = this.nextLine();
    this.child.stdin!.write(`${JSON.stringify(op)}\n`);
    return JSON.parse(await reply) as { ok: boolean; result?: unknown; error?: string };
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** SIGKILL: no cleanup runs, as in a crash. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) process.kill(this.pid, 'SIGKILL');
    await this.exited;
  }

  /** Orderly stop: stdin closes, the daemon removes its controllers and exits. */
  async stop(): Promise<void> {
    this.child.stdin!.end();
    const timer = setTimeout(() => void this.kill(), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}
