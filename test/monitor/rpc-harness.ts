/** A monitor served over real TCP (in this process), and simulated OSDs that talk to it. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatAddress } from '../../kernel/address.js';
import type { MetaStore } from '../../kernel/contracts/index.js';
import { silentLogger } from '../../kernel/logger.js';
import { AdminCommands } from '../../kernel/rpc/admin-commands.js';
import { serveControl } from '../../kernel/rpc/control.js';
import { RpcServer } from '../../kernel/rpc/rpc-server.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { registerMonitorCommands } from '../../services/monitor/admin.js';
import { MonitorClient } from '../../services/monitor/client.js';
import { Monitor } from '../../services/monitor/monitor.js';
import { serveMonitor } from '../../services/monitor/rpc-service.js';
import { EmbeddedMetaStore } from '../../services/monitor/store/embedded-store.js';
import type { PgReport } from '../../services/monitor/pg-status.js';

export interface ServedMonitor {
  readonly address: string;
  readonly monitor: Monitor;
  readonly store: MetaStore;
  readonly distribution: ReturnType<typeof serveMonitor>['distribution'];
  close(): Promise<void>;
}

export async function serveMonitorOverTcp(times = { downAfterMs: 600, outAfterMs: 1500 }, store?: MetaStore): Promise<ServedMonitor> {
  const transport = new TcpTransport({ source: 'monitor-test', requestTimeoutMs: 5000 }, silentLogger());
  const rpc = new RpcServer();
  const listener = await transport.listen({ host: '127.0.0.1', port: 0 }, rpc);
  const address = formatAddress(listener.address);
  // Without a store of the caller's, an embedded one in a directory of its own, which close() removes.
  const dir = store ? undefined : mkdtempSync(join(tmpdir(), 'fastblock-mon-'));
  const metaStore = store ?? (await EmbeddedMetaStore.open(join(dir!, 'meta.json')));
  const monitor = new Monitor({
    store: metaStore,
    id: address,
    times,
    tickMs: 100,
    leaderBalance: { intervalMs: 0, transfersPerRound: 8 },
    policyLimits: { timeoutMs: 10_000, memoryPages: 1024 },
    logger: silentLogger(),
  });
  const admin = new AdminCommands();
  registerMonitorCommands(admin, monitor);
  serveControl(rpc, () => { throw new Error('no status in this harness'); }, admin);
  const served = serveMonitor(rpc, monitor);
  await monitor.start();
  while (!monitor.isLeader) await new Promise((r) => setTimeout(r, 5));
  return {
    address,
    monitor,
    store: metaStore,
    distribution: served.distribution,
    async close() {
      try {
        served.stop();
        await monitor.stop();
        await listener.close();
        await transport.close();
        await metaStore.close();
      } finally {
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** A pretend OSD: boots, heartbeats on a timer, holds a map subscription. */
export class SimulatedOsd {
  readonly transport = new TcpTransport({ source: 'sim-osd', requestTimeoutMs: 3000, backoffMaxMs: 200 }, silentLogger());
  readonly client: MonitorClient;
  osdId = -1;
  private timer: NodeJS.Timeout | undefined;
  reports: PgReport[] = [];

  constructor(
    monitors: string[],
    readonly index: number,
    readonly host: string,
    /** Where this OSD says it listens (the leader balancer calls it there). */
    readonly address = { host: '127.0.0.1', port: 20000 + index },
  ) {
    this.client = new MonitorClient({ transport: this.transport, monitors, name: `sim-osd-${index}`, requestTimeoutMs: 3000 });
  }

  async boot(): Promise<number> {
    const reply = await this.client.boot({
      osdId: this.osdId,
      uuid: `sim-osd-uuid-${this.index}`,
      address: this.address,
      shards: 2,
      host: this.host,
      failureDomain: '',
      weight: 1,
    });
    this.osdId = reply.osdId;
    return reply.osdId;
  }

  startHeartbeats(everyMs = 100): void {
    this.timer = setInterval(() => {
      this.client.heartbeat({ osdId: this.osdId, epoch: this.client.map?.epoch ?? 0, pgs: this.reports }).catch(() => undefined);
    }, everyMs);
  }

  stopHeartbeats(): void {
    clearInterval(this.timer);
  }

  async close(): Promise<void> {
    this.stopHeartbeats();
    this.client.close();
    await this.transport.close();
  }
}

export async function until(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
