/**
 * Three OSD shards over TCP on the real blobstore (files, O_DIRECT) with durable raft storage:
 * writes through the client are replicated, survive a restart of every shard from its files,
 * and a replica whose log was compacted away catches up by snapshot (objects pulled).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { ClusterClient } from '../../client/cluster-client.js';
import { StaticMapSource } from '../../client/map-source.js';
import type { ClusterMap } from '../../kernel/contracts/cluster-map.js';
import type { ShardStore } from '../../kernel/contracts/store.js';
import { BlobShardStore, type BlobShardStoreTuning } from '../../plugins/store-blobstore/shard-store.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { DiskRaftStorage } from '../../services/osd/disk-raft-storage.js';
import { Shard } from '../../services/osd/shard.js';

const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' });
const KiB = 1024;
const MiB = 1024 * KiB;
const dir = mkdtempSync(join(tmpdir(), 'fastblock-osd-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 29 + seed * 11 + (i >> 10)) & 0xff;
  return out;
}

interface Node {
  osd: number;
  transport: TcpTransport;
  store: ShardStore;
  shard: Shard;
  port: number;
}

async function startNode(osd: number, port: number, compactAfterEntries?: number, tuning: BlobShardStoreTuning & { file?: string } = {}): Promise<Node> {
  const transport = new TcpTransport({ source: `osd.${osd}` }, logger);
  const store = await BlobShardStore.open({ shard: 0, path: join(dir, tuning.file ?? `osd${osd}.blob`), sizeBytes: 256 * MiB, create: true, logger, ...tuning });
  const shard = new Shard({ osd, shard: 0, listen: { host: '127.0.0.1', port }, transport, store, raftStorage: new DiskRaftStorage(store), logger, tickMs: 50, compactAfterEntries });
  const address = await shard.start();
  return { osd, transport, store, shard, port: address.port };
}

async function stopNode(node: Node): Promise<void> {
  await node.shard.stop();
  await node.transport.close();
  await node.store.close();
}

function mapFor(nodes: Node[], pgNum = 4): ClusterMap {
  return {
    epoch: 1,
    osds: nodes.map((n) => ({ id: n.osd, address: { host: '127.0.0.1', port: n.port }, shards: 1, host: `h${n.osd}`, failureDomain: `h${n.osd}`, weight: 1, up: true, in: true, lastHeartbeatMs: 0 })),
    pools: [{ id: 1, name: 'rbd', size: 3, minSize: 2, pgNum, failureDomain: 'host' }],
    pgs: Array.from({ length: pgNum }, (_, index) => ({ pool: 1, index, epoch: 1, replicas: [0, 1, 2].map((k) => ({ osd: (index + k) % 3, shard: 0 })) })),
    images: [{ id: 'img', pool: 1, name: 'disk', sizeBytes: 64 * MiB, objectSizeBytes: 1 * MiB, createdMs: 0 }],
    policies: [],
  };
}

function client(map: ClusterMap) {
  const transport = new TcpTransport({ source: 'client' }, logger);
  return { transport, client: new ClusterClient(transport, new StaticMapSource(map), { retry: { opTimeoutMs: 30_000, attemptTimeoutMs: 2000 } }) };
}

test('replicated writes survive a restart of every OSD from its files', async () => {
  let nodes = [await startNode(0, 0), await startNode(1, 0), await startNode(2, 0)];
  const map = mapFor(nodes);
  for (const n of nodes) n.shard.setMap(map);
  let c = client(map);
  const data = pattern(6 * MiB + 3000, 5);
  const image = await c.client.openImage('rbd/disk');
  await image.write(3 * MiB - 1500, [data]);
  assert.equal(await image.read(3 * MiB - 1500, data.length), data);
  await c.client.close();
  await c.transport.close();
  for (const n of nodes) await stopNode(n);

  nodes = await Promise.all(nodes.map((n) => startNode(n.osd, n.port)));
  for (const n of nodes) n.shard.setMap(map);
  c = client(map);
  try {
    const reopened = await c.client.openImage('rbd/disk');
    assert.equal(await reopened.read(3 * MiB - 1500, data.length), data);
  } finally {
    await c.client.close();
    await c.transport.close();
    for (const n of nodes) await stopNode(n);
  }
});

test("the shard journal's space bounds the raft logs: they are compacted by it, and the journal keeps its size", async () => {
  // A 16 MiB journal and 4 PGs: with the default 4 MiB bound per PG log and checkpoints only by
  // time (5 s) or volume (64 MiB applied), 40 MiB of writes leave the logs' live records past two
  // thirds of the ring, and the journal grows. Compacting by the journal's space keeps them within it.
  const journalBytes = 16 * MiB;
  const nodes = [0, 1, 2];
  const started: Node[] = [];
  for (const osd of nodes) started.push(await startNode(osd, 0, undefined, { file: `osd${osd}-journal.blob`, raftLog: 'journal', journalBytes }));
  const map = mapFor(started);
  for (const n of started) n.shard.setMap(map);
  const c = client(map);
  const capacity = (started[0]!.store as BlobShardStore).journal!.stats.capacityBytes;
  try {
    const image = await c.client.openImage('rbd/disk');
    const chunk = 64 * KiB;
    let maxLive = 0;
    const writes: Promise<void>[] = [];
    for (let i = 0; i < (40 * MiB) / chunk; i++) {
      writes.push(image.write((i * chunk) % (16 * MiB), [pattern(chunk, i)]));
      if (writes.length === 8) {
        await Promise.all(writes.splice(0));
        for (const n of started) maxLive = Math.max(maxLive, n.store.stats().raftLogSpace!.liveBytes);
      }
    }
    await Promise.all(writes);
    for (let i = (40 * MiB) / chunk - 256; i < (40 * MiB) / chunk; i += 37) {
      assert.equal(await image.read((i * chunk) % (16 * MiB), chunk), pattern(chunk, i));
    }
    for (const n of started) {
      const journal = (n.store as BlobShardStore).journal!;
      assert.is(journal.stats.grows, 0, `osd.${n.osd}: the journal did not grow`);
      assert.is(journal.stats.capacityBytes, capacity);
    }
    assert.ok(maxLive <= (capacity * 2) / 3, `the logs' live records stayed within two thirds of the ring (at most ${maxLive} bytes)`);
  } finally {
    await c.client.close();
    await c.transport.close();
    for (const n of started) await stopNode(n).catch(() => undefined);
  }
});

test('a replica behind the compacted log catches up by snapshot', async () => {
  rmSync(join(dir, 'osd0.blob'), { force: true });
  rmSync(join(dir, 'osd1.blob'), { force: true });
  rmSync(join(dir, 'osd2.blob'), { force: true });
  const nodes = [await startNode(0, 0, 8), await startNode(1, 0, 8), await startNode(2, 0, 8)];
  const map = mapFor(nodes, 1);
  for (const n of nodes) n.shard.setMap(map);
  const c = client(map);
  try {
    const image = await c.client.openImage('rbd/disk');
    await image.write(0, [pattern(64 * KiB, 1)]);
    // One follower goes away; the others go on and compact their logs past it.
    const leaderOf = (pg: Node['shard']) => pg.reports()[0];
    const follower = nodes.find((n) => !leaderOf(n.shard).leader)!;
    const port = follower.port;
    await stopNode(follower);
    for (let i = 0; i < 40; i++) await image.write((i % 16) * 64 * KiB, [pattern(64 * KiB, 100 + i)]);
    for (const n of nodes) if (n !== follower) await n.shard.checkpoint();
    const back = await startNode(follower.osd, port, 8);
    nodes[nodes.indexOf(follower)] = back;
    back.shard.setMap(map);
    // Wait for the snapshot pull and the log after it.
    const expected = await image.read(0, 16 * 64 * KiB);
    const deadline = Date.now() + 20_000;
    let caughtUp = false;
    while (Date.now() < deadline && !caughtUp) {
      await new Promise((r) => setTimeout(r, 300));
      const report = back.shard.reports()[0];
      if (report && report.state !== 'recovering') {
        const local = await back.store.objects.read('1.0', 'img.0000000000000000', 0, 16 * 64 * KiB).catch(() => undefined);
        caughtUp = local !== undefined && Buffer.compare(local, expected) === 0;
      }
    }
    assert.ok(caughtUp, 'the returning replica holds the same bytes as the leader');
  } finally {
    await c.client.close();
    await c.transport.close();
    for (const n of nodes) await stopNode(n).catch(() => undefined);
  }
});

test.run();
