/** An in-process monitor on an embedded store with a hand-driven clock, for lifecycle suites. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { LeaderTransfer, OsdInfo } from '../../kernel/contracts/index.js';
import { AdminCommands } from '../../kernel/rpc/admin-commands.js';
import { registerMonitorCommands } from '../../services/monitor/admin.js';
import { Monitor, type BootRequest } from '../../services/monitor/monitor.js';
import { EmbeddedMetaStore } from '../../services/monitor/store/embedded-store.js';

export interface Harness {
  readonly monitor: Monitor;
  readonly admin: AdminCommands;
  readonly clock: { now: number };
  readonly transfers: { leader: OsdInfo; transfer: LeaderTransfer }[];
  readonly dir: string;
  /** Stops this monitor and starts another on the same directory (the embedded store as it was left). */
  restart(): Promise<Harness>;
  /** Stops the monitor and removes its directory, whether the stop went well or not. */
  close(): Promise<void>;
}

/** A monitor on a fresh directory under the OS temp dir, which close() removes. */
export async function startMonitor(): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-mon-'));
  try {
    return await openMonitor(dir);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function openMonitor(dir: string): Promise<Harness> {
  const clock = { now: 1_000_000 };
  const transfers: Harness['transfers'] = [];
  const store = await EmbeddedMetaStore.open(join(dir, 'meta.json'));
  const monitor = new Monitor({
    store,
    id: '127.0.0.1:1',
    times: { downAfterMs: 10_000, outAfterMs: 60_000 },
    tickMs: 3_600_000,
    leaderBalance: { intervalMs: 0, transfersPerRound: 8 },
    // Short enough that a looping candidate is cut off quickly; the built-ins need ~50 ms here.
    policyLimits: { timeoutMs: 2_000, memoryPages: 1024 },
    logger: pino({ level: 'silent' }),
    transferLeader: async (leader, transfer) => void transfers.push({ leader, transfer }),
    now: () => clock.now,
  });
  await monitor.start();
  while (!monitor.isLeader) await new Promise((r) => setTimeout(r, 5));
  const admin = new AdminCommands();
  registerMonitorCommands(admin, monitor);
  return {
    monitor,
    admin,
    clock,
    transfers,
    dir,
    async restart() {
      await monitor.stop();
      await store.close();
      return openMonitor(dir);
    },
    async close() {
      try {
        await monitor.stop();
        await store.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export function osdBoot(i: number, hosts = 3): BootRequest {
  return {
    osdId: -1,
    uuid: `uuid-${i}`,
    address: { host: '127.0.0.1', port: 9000 + i },
    shards: 2,
    host: `host-${i % hosts}`,
    failureDomain: `host-${i % hosts}`,
    weight: 1,
  };
}

/** Resolves with the rejection message of `fn`, failing the test if it resolves. */
export async function rejection(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected a rejection');
}
