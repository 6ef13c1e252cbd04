import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FaultBdev } from '../../plugins/store-blobstore/bdev/fault-bdev.js';
import { MemoryBdev } from '../../plugins/store-blobstore/bdev/memory-bdev.js';
import { BlobShardStore } from '../../plugins/store-blobstore/shard-store.js';
import { pattern, rejectsWith } from './devices.js';

const MiB = 1 << 20;
const CLUSTER = 64 * 1024;

test('failed reads and writes surface as IO_ERROR and leave the rest of the store working', async () => {
  const medium = new MemoryBdev(16 * MiB);
  const fault = new FaultBdev(medium);
  const store = await BlobShardStore.openOn(fault, 0, { create: true, clusterSize: CLUSTER });
  await store.objects.write('1.0', 'good', 0, [pattern(1, 8192)]);
  await store.flush();
  fault.failWrites = true;
  await rejectsWith(store.objects.write('1.0', 'bad', 0, [pattern(2, 8192)]), 'IO_ERROR');
  // A per-PG log writes its header when created; a journal view is memory until its first append.
  if (store.raftLog === 'per-pg') await rejectsWith(store.diskLog('1.0'), 'IO_ERROR');
  fault.failWrites = false;
  fault.failReads = true;
  await rejectsWith(store.objects.read('1.0', 'good', 0, 8192), 'IO_ERROR');
  fault.failReads = false;
  assert.ok(Buffer.from(await store.objects.read('1.0', 'good', 0, 8192)).equals(pattern(1, 8192)));
  await store.objects.write('1.0', 'bad', 0, [pattern(2, 8192)]);
  const log = await store.diskLog('1.0');
  await log.append([{ index: 1, term: 1, type: 0, data: pattern(3, 100) }]);
  fault.failWrites = true;
  await rejectsWith(log.append([{ index: 2, term: 1, type: 0, data: pattern(4, 100) }]), 'IO_ERROR');
  fault.failWrites = false;
  assert.is(log.lastIndex, 1, 'a failed append leaves the log as it was');
  await log.append([{ index: 2, term: 1, type: 0, data: pattern(4, 100) }]);
  await store.flush();
  assert.ok((await store.blobstore.fsck()).ok);
  await store.close();
});

test('a flush that fails part-way is reported, and a later flush completes the same state', async () => {
  const medium = new MemoryBdev(16 * MiB);
  const fault = new FaultBdev(medium);
  let store = await BlobShardStore.openOn(fault, 0, { create: true, clusterSize: CLUSTER });
  for (let i = 0; i < 5; i++) await store.objects.write('1.0', `o${i}`, 0, [pattern(i, 3 * CLUSTER)]);
  await store.objects.remove('1.0', 'o0');
  // Fail the md page writes of this round (the md region sits past the masks, in cluster 0).
  const mdRegion = (offset: number): boolean => offset >= store.blobstore.geometry.mdStart * 4096 && offset < CLUSTER;
  fault.failWrites = mdRegion;
  await rejectsWith(store.flush(), 'IO_ERROR');
  fault.failWrites = false;
  await store.flush();
  const report = await store.blobstore.fsck();
  assert.ok(report.ok, report.errors.join('; '));
  fault.crash();
  store = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false });
  assert.equal(await store.objects.list('1.0'), ['o1', 'o2', 'o3', 'o4']);
  for (let i = 1; i < 5; i++) assert.ok(Buffer.from(await store.objects.read('1.0', `o${i}`, 0, 3 * CLUSTER)).equals(pattern(i, 3 * CLUSTER)));
  assert.ok((await store.blobstore.fsck()).ok);
  await store.close();
});

test('crash before any flush: the device comes back as formatted, nothing half-made', async () => {
  const medium = new MemoryBdev(16 * MiB);
  const fault = new FaultBdev(medium);
  const store = await BlobShardStore.openOn(fault, 0, { create: true, clusterSize: CLUSTER });
  await store.objects.write('1.0', 'o', 0, [pattern(1, 100)]);
  fault.crash();
  const again = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false });
  assert.equal(await again.objects.list('1.0'), []);
  assert.ok((await again.blobstore.fsck()).ok);
  await again.close();
});

test('a crash keeps the durable writes that completed, in order with the others, and drops the rest of the cache', async () => {
  const medium = new MemoryBdev(1024 * 1024);
  const fault = new FaultBdev(medium);
  const page = (fill: number) => new Uint8Array(4096).fill(fill);
  await fault.write(0, page(1));
  await fault.write(4096, page(2), 'none', true);
  // A later cached write over the durable page: it may be lost, but never brings back what came before.
  await fault.write(4096, page(3));
  await fault.write(8192, page(4), 'none', true);
  fault.crash();
  const back = new Uint8Array(3 * 4096);
  await medium.reopen().read(0, back);
  assert.ok(back.subarray(0, 4096).every((b) => b === 0), 'a cached write is lost');
  assert.ok(back.subarray(4096, 8192).every((b) => b === 2), 'the durable write survived (the cached one after it did not)');
  assert.ok(back.subarray(8192).every((b) => b === 4), 'the last durable write survived');
});

test.run();
