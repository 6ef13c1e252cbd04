// @slow
// Real etcd (3 members on loopback) and 3 monitor processes (fastblockd --plugins tcp,monitor).
// SIGKILL the leader monitor while changes are being made: another takes over, every acknowledged
// change is in the map, epochs continue one by one, the stored policy stays in force. Then SIGKILL
// one etcd member: the monitors go on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ClusterMap } from '../../kernel/contracts/index.js';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { silentLogger } from '../../kernel/logger.js';
import { call } from '../../kernel/rpc/rpc-client.js';
import { parseAddress } from '../../kernel/address.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { builtinPolicyPath } from '../../plugins/placement/builtin.js';
import { MonitorClient } from '../../services/monitor/client.js';
import { readClusterMap } from '../../services/monitor/map-reader.js';
import { MonitorMethods } from '../../services/monitor/protocol.js';
import { EtcdMetaStore } from '../../services/monitor/store/etcd-store.js';
import { EtcdCluster, etcdAvailable, freePort } from './etcd-cluster.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

interface MonitorProcess {
  readonly address: string;
  child: ChildProcess;
}

let etcd: EtcdCluster;
const monitors: MonitorProcess[] = [];
const transport = new TcpTransport({ source: 'failover-test', requestTimeoutMs: 2000, backoffMaxMs: 200 }, silentLogger());
let client: MonitorClient;

async function startMonitor(): Promise<MonitorProcess> {
  const address = `127.0.0.1:${await freePort()}`;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'cli/fastblockd.ts', '--plugins', 'tcp,monitor', '--listen', address, '--log-level', 'warn',
      '--set', `monitor.etcd=${etcd.endpoints.join(',')}`, '--set', 'monitor.electionTtlS=1', '--set', 'monitor.leaderBalanceIntervalMs=0'],
    { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return { address, child };
}

async function whoLeads(address: string): Promise<{ leader: string; thisMonitorLeads: boolean; epoch: number } | undefined> {
  try {
    return (await call(transport.connect({ address: parseAddress(address), shard: 0 }), MonitorMethods.WhoLeads, {}, undefined, { timeoutMs: 1000 })).response;
  } catch {
    return undefined;
  }
}

async function leader(live: MonitorProcess[], timeoutMs = 20_000): Promise<MonitorProcess> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const m of live) if ((await whoLeads(m.address))?.thisMonitorLeads) return m;
    if (Date.now() > deadline) throw new Error('no monitor leads');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Creates an image, retrying through a failover; true once the monitor acknowledged it. */
async function createImage(name: string, deadlineMs = 20_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      await client.admin('image create', { pool: 'rbd', name, sizeBytes: 1 << 30 });
      return;
    } catch (err) {
      // A retry of an attempt that did commit: the image is there, which is what we wanted.
      if (isFastblockError(err, ErrorCode.ALREADY_EXISTS)) return;
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

if (!etcdAvailable()) {
  console.log('SKIP monitor failover: the etcd binary is not installed');
} else {
  test.before(async () => {
    etcd = await EtcdCluster.start(3);
    for (let i = 0; i < 3; i++) monitors.push(await startMonitor());
    client = new MonitorClient({ transport, monitors: monitors.map((m) => m.address), name: 'failover-test', requestTimeoutMs: 2000 });
  });

  test.after(async () => {
    client?.close();
    for (const m of monitors) if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGKILL');
    await transport.close();
    await etcd?.stop();
  });

  test('one monitor leads; changes and a stored policy go through it', async () => {
    await leader(monitors, 30_000);
    await client.admin('pool create', { name: 'rbd', pgNum: 64 });
    for (let i = 0; i < 6; i++) await client.admin('osd set', { flag: i % 2 === 0 ? 'noout' : 'noout' }).catch(() => undefined);
    const wasm = readFileSync(builtinPolicyPath('placement')).toString('base64');
    const dry = (await client.admin('policy set', { kind: 'placement', name: 'calc-v1', wasm })) as { dryRun: boolean; pgsMoved: number };
    assert.ok(dry.dryRun);
    assert.is(dry.pgsMoved, 0, 'the same calculator moves nothing');
    const applied = (await client.admin('policy set', { kind: 'placement', name: 'calc-v1', wasm, apply: true })) as { version: number };
    assert.is(applied.version, 1);
    await createImage('before');
  });

  test('SIGKILL the leader monitor: another takes over, no epoch or change lost', async () => {
    const subscriber = new MonitorClient({ transport, monitors: monitors.map((m) => m.address), name: 'watcher', requestTimeoutMs: 2000 });
    const epochs: number[] = [];
    subscriber.onMap((m) => epochs.push(m.epoch));
    await subscriber.subscribe();
    const first = await leader(monitors);
    const startEpoch = (await whoLeads(first.address))!.epoch;
    const acked: string[] = [];
    const writer = (async () => {
      for (let i = 0; i < 12; i++) {
        await createImage(`img-${i}`);
        acked.push(`img-${i}`);
      }
    })();
    while (acked.length < 3) await new Promise((r) => setTimeout(r, 10));
    first.child.kill('SIGKILL');
    await writer;
    const survivors = monitors.filter((m) => m !== first);
    const second = await leader(survivors);
    assert.is.not(second.address, first.address);

    const map = (await client.admin('map get')) as ClusterMap;
    const names = new Set(map.images.map((i) => i.name));
    for (const name of acked) assert.ok(names.has(name), `acknowledged image ${name} lost`);
    // Twelve changes, each exactly one epoch (a retried create that had committed adds none).
    assert.is(map.epoch, startEpoch + 12);
    const store = new EtcdMetaStore({ endpoints: etcd.endpoints });
    assert.equal(await readClusterMap(store), map, 'etcd holds exactly the map the monitors serve');
    await store.close();
    const policies = (await client.admin('policy ls', { kind: 'placement' })) as { version: number; active: boolean }[];
    assert.is(policies.find((p) => p.active)?.version, 1, 'the stored policy survives failover');

    await subscriber.waitForEpoch(map.epoch);
    assert.equal(subscriber.map, map);
    for (let i = 1; i < epochs.length; i++) assert.ok(epochs[i] > epochs[i - 1], `subscriber epochs went ${epochs[i - 1]} -> ${epochs[i]}`);
    subscriber.close();
  });

  test('SIGKILL one etcd member: the monitors go on', async () => {
    const before = ((await client.admin('map get')) as ClusterMap).epoch;
    etcd.kill('m0');
    for (let i = 0; i < 3; i++) await createImage(`after-etcd-${i}`, 30_000);
    const map = (await client.admin('map get')) as ClusterMap;
    assert.ok(map.epoch >= before + 3, `epoch ${map.epoch} after ${before}`);
    // Followers catch up too, even those whose etcd watch went through the dead member.
    for (const m of monitors.filter((x) => x.child.exitCode === null && x.child.signalCode === null)) {
      const deadline = Date.now() + 10_000;
      while ((await whoLeads(m.address))!.epoch < map.epoch && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.ok((await whoLeads(m.address))!.epoch >= map.epoch, `monitor ${m.address} stuck behind`);
    }
    assert.ok(map.images.some((i) => i.name === 'after-etcd-2'));
  });

  test.run();
}
