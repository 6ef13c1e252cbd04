import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterClient } from '../../client/cluster-client.js';
import { StaticMapSource } from '../../client/map-source.js';
import { DataOp, MAX_DATA_LENGTH, MAX_EXTENTS } from '../../client/data-protocol.js';
import { mapRange } from '../../client/striping.js';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { FakeCluster } from './fake-osd-cluster.js';

const KiB = 1024;

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

async function setup(options: Partial<ConstructorParameters<typeof FakeCluster>[0]> = {}, retry = {}) {
  const cluster = new FakeCluster({ osds: 4, pgNum: 16, objectSize: 64 * KiB, imageSize: 4 * 1024 * KiB, ...options });
  await cluster.start();
  const maps = new StaticMapSource(cluster.map);
  const client = new ClusterClient(cluster.network.transport(), maps, { maxInFlight: 8, retry: { opTimeoutMs: 2000, attemptTimeoutMs: 200, ...retry } });
  const image = await client.openImage('rbd/disk');
  return { cluster, maps, client, image };
}

test('striping splits a range at object boundaries', () => {
  const extents = mapRange(60 * KiB, 72 * KiB, 64 * KiB);
  assert.equal(extents, [
    { objectIndex: 0, offset: 60 * KiB, length: 4 * KiB, rangeOffset: 0 },
    { objectIndex: 1, offset: 0, length: 64 * KiB, rangeOffset: 4 * KiB },
    { objectIndex: 2, offset: 0, length: 4 * KiB, rangeOffset: 68 * KiB },
  ]);
});

test('a write across objects reads back, from a scatter list', async () => {
  const { image, client } = await setup();
  const data = pattern(200 * KiB, 7);
  await image.write(50 * KiB, [data.subarray(0, 3000), data.subarray(3000)]);
  assert.equal(await image.read(50 * KiB, 200 * KiB), data);
  assert.equal(await image.read(0, 4 * KiB), new Uint8Array(4 * KiB));
  await client.close();
});

test('NOT_LEADER hints are followed and cached', async () => {
  const { image, cluster, client } = await setup();
  for (const pg of cluster.map.pgs) cluster.leaders.set(`1.${pg.index}`, pg.replicas[2].osd);
  await image.write(0, [pattern(256 * KiB, 1)]);
  const notLeader = client.io.stats.notLeader;
  assert.ok(notLeader > 0, 'the first guess (replica 0) was wrong');
  await image.write(0, [pattern(256 * KiB, 2)]);
  assert.is(client.io.stats.notLeader, notLeader, 'hints were cached');
  assert.equal(await image.read(0, 256 * KiB), pattern(256 * KiB, 2));
  await client.close();
});

test('a black-holed leader: the write is retried (same bytes) on the new leader', async () => {
  const { image, cluster, client } = await setup();
  const victim = cluster.map.osds[cluster.leaderOf(1, client.router.pgOf(1, 'img1.0000000000000000'))];
  cluster.network.setFault(victim.address, 'blackhole');
  // The cluster elects another leader a little later.
  setTimeout(() => {
    for (const pg of cluster.map.pgs) if (cluster.leaderOf(1, pg.index) === victim.id) cluster.leaders.set(`1.${pg.index}`, pg.replicas.find((r) => r.osd !== victim.id)!.osd);
  }, 300);
  await image.write(0, [pattern(64 * KiB, 3)]);
  assert.ok(client.io.stats.timeouts > 0);
  assert.equal(await image.read(0, 64 * KiB), pattern(64 * KiB, 3));
  await client.close();
});

test('STALE_EPOCH makes the client fetch a newer map', async () => {
  const { image, cluster, maps, client } = await setup();
  await image.write(0, [pattern(4 * KiB, 4)]);
  // Move every PG to OSDs 1..3 in epoch 2; the client still holds epoch 1 until it refreshes.
  cluster.map = {
    ...cluster.map,
    epoch: 2,
    pgs: cluster.map.pgs.map((m) => ({ ...m, replicas: [1, 2, 3].map((osd) => ({ osd, shard: 0 })), epoch: 2 })),
  };
  for (const pg of cluster.map.pgs) cluster.leaders.set(`1.${pg.index}`, 3);
  let refreshed = 0;
  maps.refresh = async () => {
    refreshed++;
    maps.update(cluster.map);
    return cluster.map;
  };
  assert.equal(await image.read(0, 4 * KiB), pattern(4 * KiB, 4));
  await image.write(0, [pattern(128 * KiB, 5)]);
  assert.equal(await image.read(0, 128 * KiB), pattern(128 * KiB, 5));
  assert.ok(refreshed > 0);
  assert.is(client.router.epoch, 2);
  await client.close();
});

test('no success is reported that did not happen: unreachable cluster -> TIMEOUT within the bound', async () => {
  const { image, cluster, client } = await setup({}, { opTimeoutMs: 600 });
  for (const osd of cluster.map.osds) cluster.network.setFault(osd.address, 'refuse');
  const started = Date.now();
  try {
    await image.write(0, [pattern(4 * KiB, 6)]);
    assert.unreachable('the write must fail');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.TIMEOUT), String(err));
  }
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 550 && elapsed < 1500, `bounded in time (${elapsed} ms)`);
  await client.close();
});

test('object I/Os in flight stay within the image limit', async () => {
  const { image, cluster, client } = await setup({ objectSize: 4 * KiB });
  cluster.delayMs = 5;
  await Promise.all(Array.from({ length: 16 }, (_, i) => image.write(i * 64 * KiB, [pattern(64 * KiB, i)])));
  assert.ok(cluster.maxInFlight <= 8, `max in flight ${cluster.maxInFlight}`);
  assert.ok(cluster.maxInFlight >= 4, 'and they do run in parallel');
  assert.equal(await image.read(64 * KiB, 64 * KiB), pattern(64 * KiB, 1));
  await client.close();
});

test('discard and write-zeroes read back as zeroes; bad ranges are refused', async () => {
  const { image, client } = await setup();
  await image.write(0, [pattern(192 * KiB, 8)]);
  await image.discard(4 * KiB, 100 * KiB);
  await image.writeZeroes(150 * KiB, 10 * KiB);
  const expected = pattern(192 * KiB, 8);
  expected.fill(0, 4 * KiB, 104 * KiB);
  expected.fill(0, 150 * KiB, 160 * KiB);
  assert.equal(await image.read(0, 192 * KiB), expected);
  try {
    await image.read(image.size - 1, 2);
    assert.unreachable();
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.INVALID_ARGUMENT));
  }
  await client.close();
});

test('flush waits for the writes in flight when it is called, not for later ones', async () => {
  const { image, cluster, client } = await setup();
  let releaseEarly!: () => void;
  let releaseLate!: () => void;
  const early = new Promise<void>((resolve) => (releaseEarly = resolve));
  const late = new Promise<void>((resolve) => (releaseLate = resolve));
  cluster.gate = (request) => (request.op !== DataOp.WRITE ? undefined : request.offset === 0 ? early : late);
  const settled: string[] = [];
  const first = image.write(0, [pattern(4 * KiB, 1)]).then(() => settled.push('first write'));
  const flushed = image.flush().then(() => settled.push('flush'));
  const second = image.write(8 * KiB, [pattern(4 * KiB, 2)]).then(() => settled.push('second write'));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(settled, [], 'the flush waits for the write before it');
  releaseEarly();
  await flushed;
  assert.equal(settled, ['first write', 'flush'], 'and not for the write after it');
  releaseLate();
  await Promise.all([first, second]);
  await image.flush(); // nothing in flight: resolves at once
  await client.close();
});

test('a write over two objects whose first piece fails settles once its other piece has, and a flush after it waits for that piece', async () => {
  const { image, cluster, client } = await setup();
  let releaseSecond!: () => void;
  const second = new Promise<void>((resolve) => (releaseSecond = resolve));
  // Object size 64 KiB: the write below is two pieces, the first refused at once, the second held.
  cluster.gate = (request) => {
    if (request.op !== DataOp.WRITE) return undefined;
    if (request.offset !== 0) return Promise.reject(new Error('refused'));
    return second;
  };
  const events: string[] = [];
  const write = image.write(60 * KiB, [pattern(8 * KiB, 1)]).then(
    () => events.push('write ok'),
    () => events.push('write failed'),
  );
  const flush = image.flush().then(() => events.push('flush'));
  await new Promise((resolve) => setTimeout(resolve, 300));
  // Settling earlier would hand the caller back a buffer a piece still sends, and let a flush
  // return with that piece in flight.
  assert.equal(events, [], 'nothing settles while a piece is in flight');
  releaseSecond();
  await Promise.all([write, flush]);
  assert.equal(events, ['write failed', 'flush']);
  cluster.gate = undefined;
  await client.close();
});

test('writeMany over two objects whose first request fails settles once the other request has', async () => {
  const { image, cluster, client } = await setup();
  let releaseSecond!: () => void;
  const second = new Promise<void>((resolve) => (releaseSecond = resolve));
  // Object size 64 KiB: one write in object 0 (refused at once), one in object 1 (held).
  cluster.gate = (request) => {
    if (request.op !== DataOp.WRITE) return undefined;
    return request.object.endsWith('0000000000000000') ? Promise.reject(new Error('refused')) : second;
  };
  const events: string[] = [];
  const written = image
    .writeMany([
      { offset: 0, data: [pattern(4 * KiB, 1)] },
      { offset: 64 * KiB, data: [pattern(4 * KiB, 2)] },
    ])
    .then(
      () => events.push('ok'),
      () => events.push('failed'),
    );
  await new Promise((resolve) => setTimeout(resolve, 300));
  // A caller retrying now could race the request still in flight.
  assert.equal(events, [], 'nothing settles while a request is in flight');
  releaseSecond();
  await written;
  assert.equal(events, ['failed']);
  cluster.gate = undefined;
  await client.close();
});

test('writeMany: one request per object (WRITE_EXTENTS, or WRITE for one range), adjacent writes merged; all read back', async () => {
  const { image, cluster, client } = await setup();
  assert.is(image.writeGroupBytes, 64 * KiB);
  const o = (index: number) => index * 64 * KiB;
  const writes = [
    // Object 0: three separate blocks and two adjacent ones (one extent), given out of order.
    { offset: o(0) + 36 * KiB, data: [pattern(4 * KiB, 5)] },
    { offset: o(0) + 8 * KiB, data: [pattern(1000, 2), pattern(3096, 3)] },
    { offset: o(0), data: [pattern(4 * KiB, 1)] },
    { offset: o(0) + 20 * KiB, data: [pattern(4 * KiB, 4)] },
    { offset: o(0) + 32 * KiB, data: [pattern(4 * KiB, 6)] },
    // Object 1: one block alone, a plain WRITE.
    { offset: o(1) + 4 * KiB, data: [pattern(4 * KiB, 7)] },
    // Objects 2 and 3: a write across their boundary, and another block in object 3.
    { offset: o(3) - 2 * KiB, data: [pattern(6 * KiB, 8)] },
    { offset: o(3) + 16 * KiB, data: [pattern(4 * KiB, 9)] },
    // A write of nothing is no request.
    { offset: o(5), data: [] },
  ];
  const expected = new Uint8Array(o(5));
  for (const w of writes) expected.set(Buffer.concat(w.data), w.offset);
  const before = cluster.requests;
  await image.writeMany(writes);
  assert.is(cluster.requests - before, 4, 'one request per object');
  assert.is(cluster.served.get(DataOp.WRITE_EXTENTS), 2, 'objects 0 and 3');
  assert.is(cluster.served.get(DataOp.WRITE), 2, 'objects 1 and 2');
  assert.equal(cluster.extentLists.map((e) => [...e]).sort((a, b) => b.length - a.length), [
    [0, 4 * KiB, 8 * KiB, 4 * KiB, 20 * KiB, 4 * KiB, 32 * KiB, 8 * KiB],
    [0, 4 * KiB, 16 * KiB, 4 * KiB],
  ]);
  assert.equal(await image.read(0, o(5)), expected);
  await client.close();
});

test('writeMany splits an object group past MAX_EXTENTS or MAX_DATA_LENGTH into several requests', async () => {
  const MiB = 1024 * KiB;
  const { image, cluster, client } = await setup({ objectSize: 8 * MiB, imageSize: 16 * MiB });
  // MAX_EXTENTS + 10 blocks of 1 KiB, 2 KiB apart: two requests to object 0.
  const count = MAX_EXTENTS + 10;
  const small = Array.from({ length: count }, (_, i) => ({ offset: i * 2 * KiB, data: [pattern(KiB, i)] }));
  await image.writeMany(small);
  assert.equal(cluster.extentLists.map((e) => e.length / 2), [MAX_EXTENTS, 10]);
  for (const w of [small[0], small[MAX_EXTENTS - 1], small[MAX_EXTENTS], small[count - 1]]) assert.equal(await image.read(w.offset, KiB), w.data[0]);
  // Five 1 MiB writes, 1.5 MiB apart, in object 1: more than one request may carry.
  const big = Array.from({ length: 5 }, (_, i) => ({ offset: 8 * MiB + i * 1.5 * MiB, data: [pattern(MiB, 50 + i)] }));
  cluster.extentLists.length = 0;
  await image.writeMany(big);
  assert.equal(cluster.extentLists.map((e) => e.length / 2), [4]);
  assert.ok(cluster.extentLists.every((e) => e.filter((_, i) => i % 2 === 1).reduce((a, b) => a + b, 0) <= MAX_DATA_LENGTH));
  assert.is(cluster.served.get(DataOp.WRITE), 1, 'the fifth write alone, as a WRITE');
  for (const w of big) assert.equal(await image.read(w.offset, MiB), w.data[0]);
  await client.close();
});

test('writeMany: overlapping or out-of-range writes are refused before anything is sent; flush covers a writeMany', async () => {
  const { image, cluster, client } = await setup();
  const before = cluster.requests;
  for (const [what, writes, code] of [
    ['overlapping', [{ offset: 0, data: [pattern(4 * KiB, 1)] }, { offset: 100 * KiB, data: [pattern(4 * KiB, 1)] }, { offset: 2 * KiB, data: [pattern(4 * KiB, 2)] }], ErrorCode.INVALID_ARGUMENT],
    ['the same block twice', [{ offset: 8 * KiB, data: [pattern(4 * KiB, 1)] }, { offset: 8 * KiB, data: [pattern(4 * KiB, 2)] }], ErrorCode.INVALID_ARGUMENT],
    ['past the end', [{ offset: 0, data: [pattern(4 * KiB, 1)] }, { offset: image.size - 2 * KiB, data: [pattern(4 * KiB, 2)] }], ErrorCode.INVALID_ARGUMENT],
    ['negative', [{ offset: -4096, data: [pattern(4 * KiB, 1)] }], ErrorCode.INVALID_ARGUMENT],
  ] as const) {
    try {
      await image.writeMany(writes);
      assert.unreachable(what);
    } catch (err) {
      assert.ok(isFastblockError(err, code), `${what}: ${String(err)}`);
    }
  }
  assert.is(cluster.requests, before, 'nothing was sent');
  assert.equal(await image.read(0, 8 * KiB), new Uint8Array(8 * KiB));

  // flush() called right after writeMany waits for every one of its requests.
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  cluster.gate = (request) => (request.op === DataOp.WRITE_EXTENTS || request.op === DataOp.WRITE ? gate : undefined);
  const settled: string[] = [];
  const writes = Array.from({ length: 40 }, (_, i) => ({ offset: i * 24 * KiB, data: [pattern(4 * KiB, i)] }));
  const objects = new Set(writes.map((w) => Math.floor(w.offset / (64 * KiB)))).size;
  const servedWrites = () => (cluster.served.get(DataOp.WRITE) ?? 0) + (cluster.served.get(DataOp.WRITE_EXTENTS) ?? 0);
  let servedAtFlush = -1;
  const many = image.writeMany(writes).then(() => settled.push('writeMany'));
  const flushed = image.flush().then(() => {
    settled.push('flush');
    servedAtFlush = servedWrites();
  });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(settled, [], 'the flush waits for the writeMany');
  release();
  await Promise.all([many, flushed]);
  assert.is(servedAtFlush, objects, 'every request of the writeMany was served before the flush resolved');
  assert.equal(await image.read(39 * 24 * KiB, 4 * KiB), pattern(4 * KiB, 39));
  await client.close();
});

test('writeMany requests are retried as writes are: NOT_LEADER hints followed, in-flight limit kept', async () => {
  const { image, cluster, client } = await setup();
  for (const pg of cluster.map.pgs) cluster.leaders.set(`1.${pg.index}`, pg.replicas[1].osd);
  cluster.delayMs = 2;
  const writes = Array.from({ length: 64 }, (_, i) => ({ offset: (i % 32) * 64 * KiB + (i < 32 ? 0 : 8 * KiB), data: [pattern(4 * KiB, i)] }));
  await image.writeMany(writes);
  assert.ok(client.io.stats.notLeader > 0);
  assert.ok(cluster.maxInFlight <= 8, `max in flight ${cluster.maxInFlight}`);
  assert.is(cluster.served.get(DataOp.WRITE_EXTENTS), 32);
  for (const w of writes) assert.equal(await image.read(w.offset, 4 * KiB), w.data[0]);
  await client.close();
});

test('a resize in a newer map reaches an image already open', async () => {
  const { image, cluster, maps, client } = await setup({ imageSize: 256 * KiB });
  assert.is(image.size, 256 * KiB);
  try {
    await image.write(256 * KiB, [pattern(4 * KiB, 3)]);
    assert.unreachable('past the end before the resize');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.INVALID_ARGUMENT), String(err));
  }
  const images = cluster.map.images.map((i) => ({ ...i, sizeBytes: 512 * KiB }));
  maps.update({ ...cluster.map, epoch: cluster.map.epoch + 1, images });
  assert.is(image.size, 512 * KiB);
  await image.write(256 * KiB, [pattern(4 * KiB, 3)]);
  assert.equal(await image.read(256 * KiB, 4 * KiB), pattern(4 * KiB, 3));
  await client.close();
});

test.run();
