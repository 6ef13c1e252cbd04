/**
 * Three OSD shards in one process over real TCP, with raft and the data service, objects in
 * memory: the client's writes are replicated, read back, and survive the loss of a leader.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pino from 'pino';
import { ClusterClient } from '../../client/cluster-client.js';
import { StaticMapSource } from '../../client/map-source.js';
import type { ClusterMap } from '../../kernel/contracts/cluster-map.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { Shard } from '../../services/osd/shard.js';
import { MemoryRaftStorage, MemoryShardStore } from './memory-store.js';

const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' });
const KiB = 1024;

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 13 + seed * 7 + (i >> 12)) & 0xff;
  return out;
}

async function cluster(osds = 3, pgNum = 8) {
  const nodes: Array<{ osd: number; transport: TcpTransport; store: MemoryShardStore; shard: Shard; address: { host: string; port: number }; stopped: boolean }> = [];
  for (let osd = 0; osd < osds; osd++) {
    const transport = new TcpTransport({ source: `osd.${osd}` }, logger);
    const store = new MemoryShardStore();
    const shard = new Shard({ osd, shard: 0, listen: { host: '127.0.0.1', port: 0 }, transport, store, raftStorage: new MemoryRaftStorage(), logger, tickMs: 50 });
    const address = await shard.start();
    nodes.push({ osd, transport, store, shard, address, stopped: false });
  }
  const map: ClusterMap = {
    epoch: 1,
    osds: nodes.map((n) => ({ id: n.osd, address: n.address, shards: 1, host: `h${n.osd}`, failureDomain: `h${n.osd}`, weight: 1, up: true, in: true, lastHeartbeatMs: 0 })),
    pools: [{ id: 1, name: 'rbd', size: 3, minSize: 2, pgNum, failureDomain: 'host' }],
    pgs: Array.from({ length: pgNum }, (_, index) => ({ pool: 1, index, epoch: 1, replicas: [0, 1, 2].map((k) => ({ osd: (index + k) % osds, shard: 0 })) })),
    images: [{ id: 'img', pool: 1, name: 'disk', sizeBytes: 64 * 1024 * KiB, objectSizeBytes: 1024 * KiB, createdMs: 0 }],
    policies: [],
  };
  for (const n of nodes) n.shard.setMap(map);
  const clientTransport = new TcpTransport({ source: 'client' }, logger);
  const client = new ClusterClient(clientTransport, new StaticMapSource(map), { retry: { opTimeoutMs: 20_000, attemptTimeoutMs: 1000 } });
  const stopAll = async () => {
    await client.close();
    await clientTransport.close();
    for (const n of nodes) {
      if (n.stopped) continue;
      await n.shard.stop();
      await n.transport.close();
    }
  };
  return { nodes, map, client, stopAll };
}

test('writes are replicated to every replica and read back', async () => {
  const { nodes, client, stopAll } = await cluster();
  try {
    const image = await client.openImage('rbd/disk');
    const data = pattern(3 * 1024 * KiB + 5000, 1);
    await image.write(512 * KiB - 100, [data]);
    assert.equal(await image.read(512 * KiB - 100, data.length), data);
    await image.writeZeroes(600 * KiB, 8 * KiB);
    const zeroed = await image.read(600 * KiB, 8 * KiB);
    assert.ok(zeroed.every((b) => b === 0));
    // Every replica applied the same objects (give followers a moment to apply the last commit).
    await new Promise((r) => setTimeout(r, 300));
    const objectsOf = (n: (typeof nodes)[number]) => [...n.store.objects.pgs.values()].reduce((sum, pg) => sum + pg.size, 0);
    assert.ok(objectsOf(nodes[0]) > 0);
    assert.is(objectsOf(nodes[1]), objectsOf(nodes[0]));
    assert.is(objectsOf(nodes[2]), objectsOf(nodes[0]));
  } finally {
    await stopAll();
  }
});

test('losing a leader: I/O goes on at the new leaders', async () => {
  const { nodes, client, stopAll } = await cluster();
  try {
    const image = await client.openImage('rbd/disk');
    await image.write(0, [pattern(4 * 1024 * KiB, 2)]);
    const victim = nodes[0];
    await victim.shard.stop();
    await victim.transport.close();
    victim.stopped = true;
    const started = Date.now();
    await image.write(0, [pattern(4 * 1024 * KiB, 3)]);
    const pauseMs = Date.now() - started;
    assert.equal(await image.read(0, 4 * 1024 * KiB), pattern(4 * 1024 * KiB, 3));
    assert.ok(pauseMs < 15_000, `failover took ${pauseMs} ms`);
  } finally {
    await stopAll();
  }
});

test.run();
