/**
 * Three OSD shards in one process over real TCP, with raft and the data service, objects in
 * memory: the client's writes are replicated, read back, and survive the loss of a leader.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pino from 'pino';
import { ClusterClient } from '../../client/cluster-client.js';
import { StaticMapSource } from '../../client/map-source.js';
import { DATA_METHOD_IO, DataOp, DataStatus, decodeDataReply, encodeDataRequest, type DataReply, type DataRequest } from '../../client/data-protocol.js';
import { objectName } from '../../client/striping.js';
import type { TransportConnection } from '../../kernel/contracts/transport.js';
import type { ClusterMap } from '../../kernel/contracts/cluster-map.js';
import type { ObjectStore } from '../../kernel/contracts/store.js';
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
  return { nodes, map, client, clientTransport, stopAll };
}

/** Asserts two byte arrays are equal, naming the first differing byte (uvu's diff of a MiB array takes minutes). */
function sameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (Buffer.compare(actual, expected) === 0) return;
  let at = 0;
  while (at < Math.min(actual.length, expected.length) && actual[at] === expected[at]) at++;
  assert.unreachable(`${what}: ${actual.length} bytes for ${expected.length}, first difference at ${at} (${actual[at]} for ${expected[at]})`);
}

/**
 * Sends one raw data request for `object` to its PG's leader (found by trying the replicas and
 * following NOT_LEADER hints, as the client does) and returns the reply with the connection used.
 */
async function toLeader(
  env: Awaited<ReturnType<typeof cluster>>,
  object: string,
  request: Omit<DataRequest, 'pool' | 'pg' | 'object' | 'epoch'>,
  payload: Uint8Array,
): Promise<{ reply: DataReply; connection: TransportConnection; pg: number }> {
  const pg = env.client.router.pgOf(1, object);
  const mapping = env.map.pgs.find((m) => m.index === pg)!;
  const deadline = Date.now() + 10_000;
  for (let k = 0; Date.now() < deadline; k++) {
    const osd = env.map.osds[mapping.replicas[k % 3].osd];
    const connection = env.clientTransport.connect({ address: osd.address, shard: 0 });
    const header = encodeDataRequest({ ...request, pool: 1, pg, object, epoch: env.map.epoch });
    const reply = decodeDataReply((await connection.request(DATA_METHOD_IO, header, [payload])).header);
    if (reply.status !== DataStatus.NOT_LEADER) return { reply, connection, pg };
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no leader for ${object}`);
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

test('a WRITE_EXTENTS goes through a 3-replica PG: each extent and the bytes between read back, every replica holds the same', async () => {
  const env = await cluster();
  const { nodes, client, stopAll } = env;
  try {
    const image = await client.openImage('rbd/disk');
    // Object 1 of the image (1 MiB objects) holds a known pattern first: the extents overwrite part of it and grow it.
    const base = pattern(512 * KiB, 5);
    await image.write(1024 * KiB, [base]);
    const extents = [0, 4 * KiB, 64 * KiB + 100, 3000, 300 * KiB, 8 * KiB, 700 * KiB, 4 * KiB];
    let total = 0;
    for (let i = 1; i < extents.length; i += 2) total += extents[i];
    const payload = pattern(total, 9);
    const object = objectName('img', 1);
    const { reply } = await toLeader(env, object, { op: DataOp.WRITE_EXTENTS, offset: 0, length: total, extents }, payload);
    assert.is(reply.status, DataStatus.OK, reply.message);

    const expected = new Uint8Array(1024 * KiB);
    expected.set(base);
    for (let i = 0, at = 0; i < extents.length; at += extents[i + 1], i += 2) expected.set(payload.subarray(at, at + extents[i + 1]), extents[i]);
    sameBytes(await image.read(1024 * KiB, 1024 * KiB), expected, 'extents and the untouched bytes around them');
    // The object grew to the last extent's end and no further.
    const objectEnd = extents[6] + extents[7];
    const pg = client.router.pgOf(1, object);
    const replicaBytes = async () => {
      const out: Uint8Array[] = [];
      for (const n of nodes) out.push(await n.store.objects.read(`1.${pg.toString(16)}`, object, 0, 1024 * KiB));
      return out;
    };
    const deadline = Date.now() + 5000;
    let held = await replicaBytes();
    // Followers may apply the last commit a moment after the leader answered.
    while (!held.every((b) => Buffer.compare(b, expected) === 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      held = await replicaBytes();
    }
    for (const [i, bytes] of held.entries()) sameBytes(bytes, expected, `osd.${i} holds the same bytes`);
    for (const n of nodes) assert.is(n.store.objects.pgs.get(`1.${pg.toString(16)}`)!.get(object)!.length, objectEnd);
  } finally {
    await stopAll();
  }
});

test('a malformed WRITE_EXTENTS gets INVALID_ARGUMENT, nothing is written, and the connection keeps serving', async () => {
  const env = await cluster();
  const { nodes, client, stopAll } = env;
  try {
    const image = await client.openImage('rbd/disk');
    await image.write(0, [new Uint8Array(64 * KiB).fill(1)]);
    const object = objectName('img', 0);
    const bad: [string, Omit<DataRequest, 'pool' | 'pg' | 'object' | 'epoch'>, Uint8Array][] = [
      ['overlapping extents', { op: DataOp.WRITE_EXTENTS, offset: 0, length: 8 * KiB, extents: [0, 4 * KiB, 2 * KiB, 4 * KiB] }, new Uint8Array(8 * KiB).fill(2)],
      ['an empty extent', { op: DataOp.WRITE_EXTENTS, offset: 0, length: 4 * KiB, extents: [0, 4 * KiB, 8 * KiB, 0] }, new Uint8Array(4 * KiB).fill(2)],
      ['lengths not the payload', { op: DataOp.WRITE_EXTENTS, offset: 0, length: 8 * KiB, extents: [0, 4 * KiB, 8 * KiB, 4 * KiB] }, new Uint8Array(4 * KiB).fill(2)],
      ['no extents', { op: DataOp.WRITE_EXTENTS, offset: 0, length: 4 * KiB }, new Uint8Array(4 * KiB).fill(2)],
    ];
    // The leader's connection: a read through it succeeds before and after each bad request.
    const pg = client.router.pgOf(1, object);
    const { reply: first, connection } = await toLeader(env, object, { op: DataOp.READ, offset: 0, length: 8 * KiB }, new Uint8Array(0));
    assert.is(first.status, DataStatus.OK);
    const header = (request: Omit<DataRequest, 'pool' | 'pg' | 'object' | 'epoch'>) => encodeDataRequest({ ...request, pool: 1, pg, object, epoch: env.map.epoch });
    for (const [what, request, payload] of bad) {
      const reply = decodeDataReply((await connection.request(DATA_METHOD_IO, header(request), [payload])).header);
      assert.is(reply.status, DataStatus.INVALID_ARGUMENT, `${what}: ${reply.message}`);
      assert.match(reply.message, /WRITE_EXTENTS/, what);
      const read = await connection.request(DATA_METHOD_IO, header({ op: DataOp.READ, offset: 0, length: 8 * KiB }));
      assert.is(decodeDataReply(read.header).status, DataStatus.OK, what);
      sameBytes(read.payload, new Uint8Array(8 * KiB).fill(1), `${what}: nothing was written`);
    }
    assert.is(connection.state, 'connected');
    // The client's own I/O on the OSDs goes on as well.
    await image.write(0, [new Uint8Array(4 * KiB).fill(3)]);
    assert.equal(await image.read(0, 4 * KiB), new Uint8Array(4 * KiB).fill(3));
    void nodes;
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

test('writes marked cachedAbove (a writeback export keeps them) reach the leader\'s store without keepCached; other writes with it', async () => {
  const { nodes, client, stopAll } = await cluster();
  try {
    // What each replica's store was asked to keep cached, per object.
    const kept = new Map<string, boolean[]>();
    for (const n of nodes) {
      const objects: ObjectStore = n.store.objects;
      const write = objects.write.bind(objects);
      objects.write = (pg, object, offset, data, options) => {
        if (!kept.has(object)) kept.set(object, []);
        kept.get(object)!.push(options?.keepCached === true);
        return write(pg, object, offset, data, options);
      };
    }
    const image = await client.openImage('rbd/disk');
    // 1 MiB objects: a WRITE in object 0; one across objects 2 and 3 (two requests); a WRITE_EXTENTS in object 4.
    await image.write(4 * KiB, [pattern(4 * KiB, 1)], { cachedAbove: true });
    await image.write(3 * 1024 * KiB - 4 * KiB, [pattern(8 * KiB, 2)], { cachedAbove: true });
    await image.writeMany!([{ offset: 4 * 1024 * KiB, data: [pattern(4 * KiB, 3)] }, { offset: 4 * 1024 * KiB + 64 * KiB, data: [pattern(4 * KiB, 4)] }], { cachedAbove: true });
    // Unmarked: object 5 by write, object 6 by writeMany.
    await image.write(5 * 1024 * KiB, [pattern(4 * KiB, 5)]);
    await image.writeMany!([{ offset: 6 * 1024 * KiB, data: [pattern(4 * KiB, 6)] }, { offset: 6 * 1024 * KiB + 64 * KiB, data: [pattern(4 * KiB, 7)] }]);
    for (const index of [0, 2, 3, 4]) {
      const asked = kept.get(objectName('img', index));
      assert.ok(asked !== undefined && asked.length > 0, `object ${index} written`);
      assert.ok(asked!.every((keep) => !keep), `object ${index}: no replica kept it cached`);
    }
    for (const index of [5, 6]) assert.ok(kept.get(objectName('img', index))?.includes(true), `object ${index}: its leader kept it cached`);
    sameBytes(await image.read(4 * 1024 * KiB + 64 * KiB, 4 * KiB), pattern(4 * KiB, 4), 'a NOCACHE write reads back');
  } finally {
    await stopAll();
  }
});

test.run();
