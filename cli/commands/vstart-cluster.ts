/**
 * A whole cluster on this machine, as real fastblockd processes: one monitor (embedded store),
 * N OSDs on files, one NBD gateway. `fastblock vstart` runs one; the cluster tests and
 * bench/cluster drive one to kill, restart and measure its processes.
 *
 * Everything lives in one directory: the monitor's store, each OSD's data, the logs, and
 * vstart.json (ports and, when detached, pids), so a restart on the same directory comes back
 * with the same ports, the same OSD ids and the same data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync, closeSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterMap } from '../../kernel/contracts/cluster-map.js';
import { ErrorCode, FastblockError, isFastblockError } from '../../kernel/errors.js';
import { silentLogger } from '../../kernel/logger.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { MonitorClient } from '../../services/monitor/client.js';
import { DAEMON_NODE_FLAGS } from '../daemon-node-flags.js';

/** The tree we run from: the source root under tsx, dist/ when built. */
const TREE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FROM_SOURCES = extname(fileURLToPath(import.meta.url)) === '.ts';

export interface LocalClusterOptions {
  readonly dir: string;
  readonly osds?: number;
  readonly monitorPort?: number;
  readonly osdBasePort?: number;
  readonly nbdPort?: number;
  readonly storeSizeMb?: number;
  readonly pool?: { readonly name: string; readonly size: number; readonly pgNum: number };
  readonly image?: { readonly name: string; readonly sizeBytes: number };
  /** Children outlive this process (vstart --detach). */
  readonly detached?: boolean;
  readonly logLevel?: string;
  /** Extra `--set key=value` for the monitor (e.g. shorter down/out times in tests). */
  readonly monitorSettings?: Readonly<Record<string, string | number>>;
  readonly osdSettings?: Readonly<Record<string, string | number>>;
  /** More images in the pool, created with the first (bench/vhost serves two). */
  readonly extraImages?: readonly { readonly name: string; readonly sizeBytes: number }[];
  /** Extra `--set key=value` for the gateway (e.g. vhost.controllers in bench/vhost). */
  readonly gatewaySettings?: Readonly<Record<string, string | number>>;
  readonly gateway?: boolean;
  /**
   * Frontends the gateway serves besides NBD. Off by default so that clusters of the test suites,
   * which run side by side, do not contend for the NVMe/TCP port; vstart turns both on.
   */
  readonly frontends?: { readonly vhost?: boolean; readonly nvmf?: boolean };
  readonly nvmfPort?: number;
  /** The store plugin of the OSDs (default: blobstore). */
  readonly storePlugin?: string;
  /**
   * Serve /metrics from every daemon: the monitor on this port, the gateway on port + 1, OSD i on
   * port + 10 + i. Absent: no metrics.
   */
  readonly metricsBasePort?: number;
}

export interface VstartState {
  readonly monitorPort: number;
  readonly osdBasePort: number;
  readonly nbdPort: number;
  /** Absent in state files written before the gateway served NVMe/TCP. */
  readonly nvmfPort?: number;
  readonly osds: number;
  readonly pids: Record<string, number>;
  /** Absent: the daemons serve no metrics. */
  readonly metricsBasePort?: number;
}

export interface DaemonHandle {
  readonly name: string;
  readonly pid: number;
  readonly child?: ChildProcess;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitForPath(path: string, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new FastblockError(ErrorCode.TIMEOUT, `${what} did not appear at ${path} within ${timeoutMs} ms`, { path });
    await sleep(100);
  }
}

export async function waitForPort(port: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolveOk) => {
      const socket = createConnection({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolveOk(true);
      });
      socket.on('error', () => resolveOk(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new FastblockError(ErrorCode.TIMEOUT, `${what} did not listen on port ${port} within ${timeoutMs} ms`, { port });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function readState(dir: string): VstartState | undefined {
  const path = join(dir, 'vstart.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as VstartState) : undefined;
}

export class LocalCluster {
  readonly dir: string;
  readonly state: VstartState;
  readonly daemons = new Map<string, DaemonHandle>();
  private transport: TcpTransport | undefined;
  private monitorClient: MonitorClient | undefined;

  private constructor(
    private readonly options: LocalClusterOptions,
    state: VstartState,
  ) {
    this.dir = resolve(options.dir);
    this.state = state;
  }

  /** Starts (or restarts, on the same directory) the whole cluster and waits until I/O can flow. */
  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const dir = resolve(options.dir);
    mkdirSync(join(dir, 'logs'), { recursive: true });
    const previous = readState(dir);
    if (previous && Object.values(previous.pids).some(processAlive)) {
      throw new FastblockError(ErrorCode.BUSY, `a cluster is already running in ${dir} (run \`fastblock vstart stop --dir ${options.dir}\`)`, { dir });
    }
    const state: VstartState = {
      monitorPort: previous?.monitorPort ?? options.monitorPort ?? 7700,
      osdBasePort: previous?.osdBasePort ?? options.osdBasePort ?? 7800,
      nbdPort: previous?.nbdPort ?? options.nbdPort ?? 10809,
      nvmfPort: previous?.nvmfPort ?? options.nvmfPort ?? 4420,
      osds: Math.max(previous?.osds ?? 0, options.osds ?? 3),
      pids: {},
      metricsBasePort: previous?.metricsBasePort ?? options.metricsBasePort,
    };
    const cluster = new LocalCluster(options, state);
    try {
      await cluster.startMonitor();
      for (let i = 0; i < state.osds; i++) cluster.startOsd(i);
      await cluster.waitForOsds(state.osds, 60_000);
      await cluster.ensurePoolAndImage();
      await cluster.waitForActive(60_000);
      if (options.gateway !== false) await cluster.startGateway();
      cluster.saveState();
      return cluster;
    } catch (err) {
      await cluster.stop().catch(() => undefined);
      throw err;
    }
  }

  get monitorAddress(): string {
    return `127.0.0.1:${this.state.monitorPort}`;
  }

  /** "pool/image" of the cluster's image. */
  get volume(): string {
    return `${this.options.pool?.name ?? 'rbd'}/${this.options.image?.name ?? 'disk'}`;
  }

  get nbdUri(): string {
    return `nbd://127.0.0.1:${this.state.nbdPort}/${this.volume}`;
  }

  /** The vhost-user-blk socket of the image, when the gateway serves vhost. */
  get vhostSocket(): string | undefined {
    return this.options.frontends?.vhost ? join(this.dir, `vhost-${this.volume.replace('/', '-')}.sock`) : undefined;
  }

  /** Where hosts reach the image over NVMe/TCP, when the gateway serves it (the target's default NQN). */
  get nvmf(): { address: string; port: number; nqn: string } | undefined {
    if (!this.options.frontends?.nvmf) return undefined;
    return { address: '127.0.0.1', port: this.state.nvmfPort ?? 4420, nqn: `nqn.2024-01.io.fastblock:${this.volume.replace('/', ':')}` };
  }

  /** Each daemon's /metrics URL, when the cluster serves metrics. */
  get metricsUrls(): Record<string, string> {
    const urls: Record<string, string> = {};
    for (const name of ['mon', ...Array.from({ length: this.state.osds }, (_, i) => `osd${i}`), ...(this.options.gateway === false ? [] : ['gateway'])]) {
      const port = this.metricsPort(name);
      if (port !== undefined) urls[name] = `http://127.0.0.1:${port}/metrics`;
    }
    return urls;
  }

  private metricsPort(name: string): number | undefined {
    const base = this.state.metricsBasePort;
    if (base === undefined) return undefined;
    if (name === 'mon') return base;
    if (name === 'gateway') return base + 1;
    return base + 10 + Number(name.slice('osd'.length));
  }

  osdPort(i: number): number {
    return this.state.osdBasePort + i * 10;
  }

  private daemonCommand(): string[] {
    // FASTBLOCK_DAEMON_NODE_ARGS: extra node flags for every daemon (e.g. --cpu-prof when profiling).
    const extra = (process.env.FASTBLOCK_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean);
    return [...DAEMON_NODE_FLAGS, ...extra, ...this.entry()];
  }

  private entry(): string[] {
    // Daemons run in the cluster directory, so the loader is named by its resolved URL, not by package name.
    return FROM_SOURCES ? ['--import', import.meta.resolve('tsx'), join(TREE, 'cli', 'fastblockd.ts')] : [join(TREE, 'cli', 'fastblockd.js')];
  }

  private spawnDaemon(name: string, args: string[]): DaemonHandle {
    const log = openSync(join(this.dir, 'logs', `${name}.log`), 'a');
    const metricsPort = this.metricsPort(name);
    const metrics = metricsPort === undefined ? [] : ['--set', `metrics.listen=127.0.0.1:${metricsPort}`];
    const child = spawn(process.execPath, [...this.daemonCommand(), '--name', name, '--log-level', this.options.logLevel ?? 'info', ...metrics, ...args], {
      stdio: ['ignore', log, log],
      detached: this.options.detached ?? false,
      cwd: this.dir,
    });
    closeSync(log);
    if (this.options.detached) child.unref();
    const handle: DaemonHandle = { name, pid: child.pid!, child };
    this.daemons.set(name, handle);
    this.saveState();
    return handle;
  }

  private sets(settings: Readonly<Record<string, string | number>> | undefined): string[] {
    return Object.entries(settings ?? {}).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  }

  async startMonitor(): Promise<void> {
    this.spawnDaemon('mon', [
      '--plugins', 'tcp,monitor',
      '--listen', this.monitorAddress,
      '--set', `monitor.dataDir=${join(this.dir, 'mon')}`,
      ...this.sets(this.options.monitorSettings),
    ]);
    await waitForPort(this.state.monitorPort, 30_000, 'the monitor');
  }

  startOsd(i: number): DaemonHandle {
    return this.spawnDaemon(`osd${i}`, [
      '--plugins', `tcp,${this.options.storePlugin ?? 'blobstore'},osd`,
      '--set', `osd.storePlugin=${this.options.storePlugin ?? ''}`,
      '--listen', '127.0.0.1:0',
      '--set', `osd.monitors=${this.monitorAddress}`,
      '--set', `osd.listen=127.0.0.1:${this.osdPort(i)}`,
      '--set', `osd.dataDir=${join(this.dir, `osd${i}`)}`,
      '--set', `osd.host=host${i}`,
      '--set', `osd.storeSizeMb=${this.options.storeSizeMb ?? 2048}`,
      ...this.sets(this.options.osdSettings),
    ]);
  }

  async startGateway(): Promise<void> {
    const plugins = ['tcp', 'client', 'nbd'];
    const settings = ['--set', `client.monitors=${this.monitorAddress}`, '--set', `nbd.port=${this.state.nbdPort}`];
    const socket = this.vhostSocket;
    if (socket) {
      plugins.push('vhost');
      settings.push('--set', `vhost.controllers=${this.volume}=${socket}:2`);
    }
    const nvmf = this.nvmf;
    if (nvmf) {
      plugins.push('nvmf');
      settings.push('--set', `nvmf.port=${nvmf.port}`, '--set', `nvmf.exports=${this.volume}`);
    }
    this.spawnDaemon('gateway', ['--plugins', plugins.join(','), '--listen', '127.0.0.1:0', ...settings, ...this.sets(this.options.gatewaySettings)]);
    await waitForPort(this.state.nbdPort, 30_000, 'the NBD gateway');
    if (nvmf) await waitForPort(nvmf.port, 30_000, 'the NVMe/TCP target');
    if (socket) await waitForPath(socket, 30_000, 'the vhost-user-blk socket');
  }

  /** The monitor's admin commands (pool create, osd out, pg ls, ...). */
  async admin<T = unknown>(command: string, args: Readonly<Record<string, unknown>> = {}): Promise<T> {
    if (!this.monitorClient) {
      this.transport = new TcpTransport({ source: 'vstart' }, silentLogger());
      this.monitorClient = new MonitorClient({ transport: this.transport, monitors: [this.monitorAddress], name: 'vstart' });
    }
    return (await this.monitorClient.admin(command, args)) as T;
  }

  async map(): Promise<ClusterMap> {
    return this.admin<ClusterMap>('map get');
  }

  async waitForOsds(count: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const osds = await this.admin<Array<{ up: boolean; in: boolean }>>('osd ls').catch(() => []);
      if (osds.filter((o) => o.up && o.in).length >= count) return;
      if (Date.now() > deadline) throw new FastblockError(ErrorCode.TIMEOUT, `only ${osds.filter((o) => o.up).length} of ${count} OSDs came up within ${timeoutMs} ms (logs in ${join(this.dir, 'logs')})`, {});
      await sleep(250);
    }
  }

  private async ensurePoolAndImage(): Promise<void> {
    const pool = this.options.pool ?? { name: 'rbd', size: 3, pgNum: 32 };
    const image = this.options.image ?? { name: 'disk', sizeBytes: 1024 ** 3 };
    const pools = await this.admin<Array<{ name: string }>>('pool ls');
    if (!pools.some((p) => p.name === pool.name)) await this.admin('pool create', { name: pool.name, size: pool.size, pgNum: pool.pgNum, failureDomain: 'host' });
    for (const { name, sizeBytes } of [image, ...(this.options.extraImages ?? [])]) {
      try {
        await this.admin('image create', { pool: pool.name, name, sizeBytes });
      } catch (err) {
        if (!isFastblockError(err, ErrorCode.ALREADY_EXISTS) && !String((err as Error).message).includes('already exists')) throw err;
      }
    }
  }

  /** PG states as the monitor sees them. */
  async pgs(): Promise<Array<{ pg: string; state: string; leader: number; replicas: Array<{ osd: number }> }>> {
    return this.admin('pg ls');
  }

  /** Waits until every PG reports a leader and the membership the map asks for. */
  async waitForActive(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const pgs = await this.pgs().catch(() => []);
      if (pgs.length > 0 && pgs.every((p) => p.state === 'active' && p.leader >= 0)) return;
      if (Date.now() > deadline) {
        const states: Record<string, number> = {};
        for (const p of pgs) states[p.state] = (states[p.state] ?? 0) + 1;
        throw new FastblockError(ErrorCode.TIMEOUT, `PGs not active within ${timeoutMs} ms: ${JSON.stringify(states)} (logs in ${join(this.dir, 'logs')})`, { states });
      }
      await sleep(250);
    }
  }

  kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): void {
    const handle = this.daemons.get(name);
    if (!handle) throw new FastblockError(ErrorCode.NOT_FOUND, `no daemon ${name}`, { name });
    try {
      process.kill(handle.pid, signal);
    } catch {
      // already gone
    }
  }

  /** Waits for a daemon this process started to exit. */
  async exited(name: string): Promise<void> {
    const child = this.daemons.get(name)?.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise((r) => child.once('exit', r));
  }

  private saveState(): void {
    const pids: Record<string, number> = {};
    for (const [name, handle] of this.daemons) pids[name] = handle.pid;
    writeFileSync(join(this.dir, 'vstart.json'), JSON.stringify({ ...this.state, pids }, null, 2) + '\n');
  }

  /** Lets go of a detached cluster: closes our monitor connection, leaves the daemons running. */
  async release(): Promise<void> {
    this.monitorClient?.close();
    await this.transport?.close();
    this.monitorClient = undefined;
    this.transport = undefined;
  }

  /** Stops the gateway, the OSDs, then the monitor (SIGTERM, then SIGKILL after a grace). */
  async stop(): Promise<void> {
    this.monitorClient?.close();
    await this.transport?.close();
    const order = [...this.daemons.keys()].sort((a, b) => rank(a) - rank(b));
    for (const group of [order.filter((n) => rank(n) === 0), order.filter((n) => rank(n) === 1), order.filter((n) => rank(n) === 2)]) {
      await Promise.all(group.map((name) => stopPid(this.daemons.get(name)!.pid)));
    }
    this.daemons.clear();
    this.saveState();
  }
}

function rank(name: string): number {
  return name === 'gateway' ? 0 : name.startsWith('osd') ? 1 : 2;
}

export async function stopPid(pid: number, graceMs = 10_000): Promise<void> {
  if (!processAlive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (processAlive(pid) && Date.now() < deadline) await sleep(100);
  if (processAlive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** `fastblock vstart stop`: stops a detached cluster from its vstart.json. */
export async function stopDetached(dir: string): Promise<string[]> {
  const state = readState(resolve(dir));
  if (!state) throw new FastblockError(ErrorCode.NOT_FOUND, `no vstart cluster in ${resolve(dir)} (vstart.json missing)`, { dir });
  const names = Object.keys(state.pids).sort((a, b) => rank(a) - rank(b));
  for (const r of [0, 1, 2]) await Promise.all(names.filter((n) => rank(n) === r).map((n) => stopPid(state.pids[n])));
  writeFileSync(join(resolve(dir), 'vstart.json'), JSON.stringify({ ...state, pids: {} }, null, 2) + '\n');
  return names;
}
