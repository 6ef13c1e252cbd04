/**
 * A real etcd cluster on loopback for tests: `members` etcd-server processes on free ports with data
 * under a temp dir, started and stopped by PID. Returns null (and the suite prints SKIP) when the
 * etcd binary is missing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { freePort } from '../support/ports.js';

export { freePort };

export function etcdAvailable(): boolean {
  return spawnSync('etcd', ['--version']).status === 0;
}

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  process: ChildProcess | undefined;
}

export class EtcdCluster {
  private constructor(
    readonly dir: string,
    readonly members: EtcdMember[],
    private readonly args: Map<string, string[]>,
  ) {}

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  static async start(size = 3): Promise<EtcdCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'fastblock-etcd-'));
    const ports = await Promise.all(Array.from({ length: size * 2 }, () => freePort()));
    const names = Array.from({ length: size }, (_, i) => `m${i}`);
    const peer = (i: number): string => `http://127.0.0.1:${ports[size + i]}`;
    const initial = names.map((n, i) => `${n}=${peer(i)}`).join(',');
    const members: EtcdMember[] = [];
    const args = new Map<string, string[]>();
    for (let i = 0; i < size; i++) {
      const clientUrl = `http://127.0.0.1:${ports[i]}`;
      args.set(names[i], [
        '--name', names[i], '--data-dir', join(dir, names[i]),
        '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i),
        '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', 'fastblock-test',
        '--heartbeat-interval', '50', '--election-timeout', '500', '--logger', 'zap', '--log-level', 'error',
      ]);
      members.push({ name: names[i], clientUrl, process: undefined });
    }
    const cluster = new EtcdCluster(dir, members, args);
    try {
      for (const m of members) cluster.startMember(m.name);
      await cluster.waitHealthy();
    } catch (err) {
      // Kills the members that started and removes the directory.
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  startMember(name: string): void {
    const member = this.members.find((m) => m.name === name)!;
    member.process = spawn('etcd', this.args.get(name)!, { stdio: 'ignore' });
  }

  /** SIGKILLs one member by PID. */
  kill(name: string): void {
    const member = this.members.find((m) => m.name === name)!;
    if (member.process?.pid !== undefined && member.process.exitCode === null) process.kill(member.process.pid, 'SIGKILL');
    member.process = undefined;
  }

  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    const client = new Etcd3({ hosts: this.endpoints });
    const deadline = Date.now() + timeoutMs;
    try {
      for (;;) {
        try {
          await client.put('fastblock-test/health').value('ok');
          return;
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`etcd cluster not healthy after ${timeoutMs} ms: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } finally {
      client.close();
    }
  }

  async stop(): Promise<void> {
    const exits = this.members
      .filter((m) => m.process && m.process.exitCode === null)
      .map((m) => new Promise<void>((resolve) => {
        m.process!.once('exit', () => resolve());
        process.kill(m.process!.pid!, 'SIGKILL');
      }));
    await Promise.all(exits);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
