// @slow
/**
 * How full each OSD is, end to end on a real local cluster: OSDs sum their shards' blobstore
 * figures into their heartbeats, the leader monitor keeps them, `fastblock osd ls --json` and
 * `fastblock status --json` show them, and an OSD past monitor.nearFullRatio turns the health to
 * HEALTH_WARN naming it. Then bad figures in a heartbeat are refused without touching the table.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { connect } from '../../client/connect.js';
import { silentLogger } from '../../kernel/logger.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { MonitorClient } from '../../services/monitor/client.js';
import { FASTBLOCK, run, type Finished } from '../cli/daemon-process.js';
import { startTestCluster, storePlugin } from '../cluster/harness/test-cluster.js';

const MiB = 1024 * 1024;
const STORE_MB = 256;
const NEAR_FULL = 0.4;

interface OsdRow {
  id: number;
  usage: { capacityBytes: number; usedBytes: number; usedRatio: number; commitLatencyMs: number | null; reportedMs: number } | null;
}

const cli = (addr: string, ...args: string[]): Promise<Finished> => run(FASTBLOCK, [...args, '--addr', addr]);

async function cliJson<T>(addr: string, ...args: string[]): Promise<T> {
  const run = await cli(addr, ...args, '--json');
  assert.is(run.code, 0, `fastblock ${args.join(' ')}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

if (!storePlugin()) {
  console.log('SKIP capacity: the blobstore plugin is not in the tree');
} else {
  test('osd ls and status show store usage; writes raise it; past nearFullRatio the cluster warns', async () => {
    const { cluster, cleanup } = await startTestCluster({
      name: 'capacity',
      gateway: false,
      storeSizeMb: STORE_MB,
      pool: { name: 'rbd', size: 3, pgNum: 8 },
      image: { name: 'disk', sizeBytes: 256 * MiB },
      osdSettings: { 'osd.heartbeatMs': 300 },
      // Health here is about space: under the suite's load a flush can pass slowCommitMs and warn.
      monitorSettings: { 'monitor.nearFullRatio': NEAR_FULL, 'monitor.slowCommitMs': 0 },
      logLevel: 'warn',
    });
    let failure: unknown;
    const client = await connect({ monitors: [cluster.monitorAddress] });
    try {
      const addr = cluster.monitorAddress;
      const before = await until('every OSD to report its usage', async () => {
        const rows = await cliJson<OsdRow[]>(addr, 'osd', 'ls');
        return rows.length === 3 && rows.every((r) => r.usage) ? rows : undefined;
      });
      for (const row of before) {
        // The blobstore's own metadata (cluster 0 and its regions) is not capacity.
        assert.ok(row.usage!.capacityBytes <= STORE_MB * MiB && row.usage!.capacityBytes > 0.95 * STORE_MB * MiB, `osd.${row.id}: one shard of ${STORE_MB} MiB (${row.usage!.capacityBytes} bytes)`);
        assert.ok(row.usage!.usedBytes > 0 && row.usage!.usedBytes < NEAR_FULL * row.usage!.capacityBytes, `osd.${row.id} starts nearly empty`);
      }
      const quiet = await cliJson<{ cluster: { health: string; usage: { capacityBytes: number; osdsReporting: number } } }>(addr, 'status');
      assert.is(quiet.cluster.health, 'HEALTH_OK');
      assert.is(quiet.cluster.usage.capacityBytes, before.reduce((sum, r) => sum + r.usage!.capacityBytes, 0));
      assert.is(quiet.cluster.usage.osdsReporting, 3);

      // Size 3 on 3 OSDs: every OSD stores every byte, so each grows by at least what was written.
      // While the writes run, every OSD's heartbeats carry its commit latency (a heartbeat whose
      // interval saw no log write carries none), so the writes go on until each has shown one.
      const written = 64 * MiB;
      const image = await client.openImage('rbd/disk');
      const chunk = randomBytes(MiB);
      const latencies = new Map<number, number>();
      let writing = true;
      const writes = (async () => {
        for (let i = 0; i * chunk.length < written || writing; i++) await image.write((i * chunk.length) % written, [chunk]);
      })();
      try {
        await until('every OSD to report a commit latency', async () => {
          for (const r of await cliJson<OsdRow[]>(addr, 'osd', 'ls')) if (r.usage?.commitLatencyMs) latencies.set(r.id, r.usage.commitLatencyMs);
          return latencies.size === 3 ? true : undefined;
        });
      } finally {
        writing = false;
      }
      await writes;
      for (const [osd, ms] of latencies) assert.ok(ms > 0 && ms < 5_000, `osd.${osd}: commit latency ${ms} ms`);
      const after = await until('usage to reflect the writes', async () => {
        const rows = await cliJson<OsdRow[]>(addr, 'osd', 'ls');
        return rows.every((r) => r.usage!.usedBytes >= before.find((b) => b.id === r.id)!.usage!.usedBytes + written) ? rows : undefined;
      });
      const status = await until('the near-full warning', async () => {
        const s = await cliJson<{ cluster: { health: string; problems: string[]; usage: { usedBytes: number; nearFull: { osd: number; ratio: number }[] } } }>(addr, 'status');
        return s.cluster.usage.nearFull.length === 3 ? s : undefined;
      });
      assert.is(status.cluster.health, 'HEALTH_WARN');
      for (const row of after) {
        const percent = Math.floor((row.usage!.usedBytes / row.usage!.capacityBytes) * 100);
        assert.ok(status.cluster.problems.some((p) => new RegExp(`^osd\\.${row.id} is \\d+% full$`).test(p)), `a problem names osd.${row.id} (${percent}%): ${status.cluster.problems.join('; ')}`);
      }
      const table = await cli(addr, 'osd', 'ls');
      assert.match(table.stdout, /USED\s+SIZE\s+%USE\s+COMMIT/);
      assert.match(table.stdout, /\d+\.\d MiB\s+2\d\d\.\d MiB\s+\d+%/);
      const human = await cli(addr, 'status');
      assert.match(human.stdout, /health\s+HEALTH_WARN \(.*osd\.\d+ is \d+% full/);
      assert.match(human.stdout, /usage\s+[\d.]+ MiB used of 7\d\d\.\d MiB \(\d+%\) over 3 OSD\(s\)/);

      // A heartbeat claiming more used than capacity is refused, and the table keeps what it had.
      const transport = new TcpTransport({ source: 'capacity-test' }, silentLogger());
      const monitors = new MonitorClient({ transport, monitors: [addr], name: 'capacity-test' });
      try {
        const osd = after[0].id;
        await monitors.heartbeat({ osdId: osd, epoch: 0, pgs: [], capacityBytes: MiB, usedBytes: 2 * MiB }).then(
          () => assert.unreachable('an impossible usage must be refused'),
          (err: Error) => assert.match(err.message, /usage out of range/),
        );
        const rows = await monitors.osdUsage();
        assert.is(rows.find((r) => r.osd === osd)!.capacityBytes, after[0].usage!.capacityBytes);
      } finally {
        monitors.close();
        await transport.close();
      }
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      await client.close();
      await cleanup(failure);
    }
  });
}

test.run();
