import { spawnSync } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { LogRecord } from '../../kernel/contracts/store.js';
import { FaultBdev } from '../../plugins/store-blobstore/bdev/fault-bdev.js';
import { MemoryBdev } from '../../plugins/store-blobstore/bdev/memory-bdev.js';
import type { BlobDiskLog } from '../../plugins/store-blobstore/disk-log.js';
import { JournalLog } from '../../plugins/store-blobstore/journal-log.js';
import { BlobShardStore, type RaftLogMode } from '../../plugins/store-blobstore/shard-store.js';
import { type DeviceKind, type TestDevice, deviceKinds, makeDevice, pattern, rejectsWith } from './devices.js';
import { records, same } from './log-records.js';

const MiB = 1 << 20;
const CLUSTER = 64 * 1024;

/** The DiskLog contract holds in both raft log modes: per-PG log blobs and the shard journal. */
let mode: RaftLogMode = 'per-pg';
const open = (dev: TestDevice): Promise<BlobShardStore> => BlobShardStore.openOn(dev.open(), 0, { create: true, clusterSize: CLUSTER, raftLog: mode });

function suiteFor(kind: DeviceKind, logMode: RaftLogMode): void {
  const test = suite(`disk_log (${logMode}) on ${kind}`);
  test.before(() => {
    mode = logMode;
  });

  test('append, read ranges, maxBytes, and bounds recovered on reopen', async () => {
    const dev = makeDevice(kind, 16 * MiB);
    let store = await open(dev);
    let log = await store.diskLog('1.0');
    assert.is(log.firstIndex, 1);
    assert.is(log.lastIndex, 0);
    const all = [...records(1, 10, 1), ...records(11, 30, 2, 3000)];
    await log.append(all.slice(0, 10));
    await log.append(all.slice(10));
    assert.is(log.lastIndex, 40);
    assert.is(log.termAt(10), 1);
    assert.is(log.termAt(11), 2);
    assert.is(log.termAt(41), undefined);
    same(await log.read(5, 15), all.slice(4, 14));
    const capped = await log.read(11, 41, 7000);
    assert.ok(capped.length >= 1 && capped.length < 30);
    same(capped, all.slice(10, 10 + capped.length));
    assert.is((await log.read(11, 41, 1)).length, 1, 'at least one record');
    await rejectsWith(log.read(0, 5), 'INVALID_ARGUMENT');
    await rejectsWith(log.append(records(50, 1, 2)), 'INVALID_ARGUMENT');
    await store.flush();
    store = await open(dev);
    log = await store.diskLog('1.0');
    assert.is(log.firstIndex, 1);
    assert.is(log.lastIndex, 40);
    same(await log.read(1, 41), all);
    await store.close();
    dev.destroy();
  });

  test('truncate suffix: the truncated records never come back, even with equal bytes appended', async () => {
    const dev = makeDevice(kind, 16 * MiB);
    let store = await open(dev);
    let log = await store.diskLog('1.1');
    // 8 records of exactly 512 bytes end on a page boundary, so nothing pads over old record 9
    // after record 8 is appended again: only its generation tells it apart.
    const first = Array.from({ length: 20 }, (_, i) => ({ index: i + 1, term: 1, type: 0, data: pattern(i + 1, 512 - 48) }));
    await log.append(first);
    await store.flush();
    await log.truncateSuffix(8);
    assert.is(log.lastIndex, 7);
    // The same bytes again at 8: records 9.. of the old run sit right after and would chain.
    await log.append(first.slice(7, 8));
    await store.flush();
    store = await open(dev);
    log = await store.diskLog('1.1');
    assert.is(log.lastIndex, 8);
    same(await log.read(1, 9), first.slice(0, 8));
    await log.truncateSuffix(3);
    await store.flush();
    store = await open(dev);
    log = await store.diskLog('1.1');
    assert.is(log.lastIndex, 2);
    const next = records(3, 5, 4);
    await log.append(next);
    same(await log.read(1, 8), [...first.slice(0, 2), ...next]);
    await store.close();
    dev.destroy();
  });

  test('trim prefix: the ring reuses space instead of growing, across reopens', async () => {
    const dev = makeDevice(kind, 16 * MiB);
    let store = await open(dev);
    let log = await store.diskLog('1.2');
    let next = 1;
    for (let round = 0; round < 60; round++) {
      await log.append(records(next, 10, 1, 1500));
      next += 10;
      await store.flush();
      if (log.lastIndex - log.firstIndex > 30) await log.trimPrefix(log.lastIndex - 20);
      if (round % 20 === 19) {
        store = await open(dev);
        log = await store.diskLog('1.2');
      }
    }
    if (mode === 'per-pg') {
      const logBlob = store.blobstore.openBlob([...store.blobstore.blobIds()].find((id) => new TextDecoder().decode(store.blobstore.openBlob(id).getXattr('kind')) === 'log')!);
      assert.ok(logBlob.clusterCount <= 3, `ring stayed small (600 records written, ~30 live): ${logBlob.clusterCount} clusters`);
    } else {
      const journal = store.journal!;
      assert.ok(journal.stats.usedBytes < journal.capacity, 'the journal wrapped, reusing trimmed space');
    }
    same(await log.read(log.firstIndex, log.lastIndex + 1), records(log.firstIndex, log.lastIndex - log.firstIndex + 1, 1, 1500));
    await log.trimPrefix(log.lastIndex + 6);
    assert.is(log.firstIndex, next + 5);
    assert.is(log.lastIndex, next + 4);
    await store.flush();
    store = await open(dev);
    log = await store.diskLog('1.2');
    assert.is(log.firstIndex, next + 5);
    await log.append(records(next + 5, 2, 3));
    assert.is(log.lastIndex, next + 6);
    await store.close();
    dev.destroy();
  });

  test('a full ring grows (records kept, wrapped ones too) and big records fit', async () => {
    const dev = makeDevice(kind, 32 * MiB);
    let store = await open(dev);
    let log = await store.diskLog('1.3');
    await log.append(records(1, 20, 1, 2000));
    await store.flush();
    await log.trimPrefix(15);
    await store.flush();
    // Wraps in the 60 KiB ring, then overflows it.
    const more = records(21, 60, 2, 2500);
    for (let i = 0; i < more.length; i += 5) await log.append(more.slice(i, i + 5));
    await log.append([{ index: 81, term: 3, type: 1, data: pattern(81, 300_000) }]);
    await store.flush();
    store = await open(dev);
    log = await store.diskLog('1.3');
    assert.is(log.firstIndex, 15);
    assert.is(log.lastIndex, 81);
    same(await log.read(15, 21), records(15, 6, 1, 2000));
    same(await log.read(21, 81), more);
    same(await log.read(81, 82), [{ index: 81, term: 3, type: 1, data: pattern(81, 300_000) }]);
    await store.close();
    dev.destroy();
  });

  test('a damaged record is reported as CORRUPT and ends the log at reopen', async () => {
    const dev = makeDevice(kind, 16 * MiB);
    const bdev = dev.open();
    let store = await BlobShardStore.openOn(bdev, 0, { create: true, clusterSize: CLUSTER, raftLog: mode });
    const log = await store.diskLog('1.4');
    await log.append(records(1, 10, 1, 5000));
    await store.flush();
    const blob = store.blobstore.openBlob([...store.blobstore.blobIds()].find((id) => new TextDecoder().decode(store.blobstore.openBlob(id).getXattr('kind')) === (mode === 'per-pg' ? 'log' : 'journal'))!);
    // Record 6 starts at 5 * (48 + ~5040) bytes into the ring, past the header page.
    const inRing = log instanceof JournalLog ? log.positions[5] : 5 * 5100;
    const ringOffset = 4096 + inRing + 200;
    const device = blob.clusterAt(Math.floor(ringOffset / CLUSTER)) * CLUSTER + (ringOffset % CLUSTER);
    const page = Buffer.alloc(4096);
    const at = Math.floor(device / 4096) * 4096;
    await bdev.read(at, page);
    page[device - at] ^= 1;
    await bdev.write(at, page);
    // The journal serves reads from memory; its check is the replay's.
    if (mode === 'per-pg') await rejectsWith(log.read(1, 11), 'CORRUPT');
    store = await BlobShardStore.openOn(dev.open(), 0, { create: true });
    const reopened = await store.diskLog('1.4');
    assert.ok(reopened.lastIndex >= 5 && reopened.lastIndex < 10, `log ends before the damage: ${reopened.lastIndex}`);
    await store.close();
    dev.destroy();
  });

  test('logs of many PGs, removal', async () => {
    const dev = makeDevice(kind, 16 * MiB);
    let store = await open(dev);
    for (let pg = 0; pg < 8; pg++) await (await store.diskLog(`2.${pg}`)).append(records(1, 3, pg));
    await store.removeDiskLog('2.3');
    await store.flush();
    store = await open(dev);
    assert.is((await store.diskLog('2.3')).lastIndex, 0, 'removed log comes back empty');
    for (const pg of [0, 7]) same(await (await store.diskLog(`2.${pg}`)).read(1, 4), records(1, 3, pg));
    await store.close();
    dev.destroy();
  });

  test("the store's stats name the space its raft logs hold", async () => {
    const dev = makeDevice(kind, 16 * MiB);
    const store = await open(dev);
    const before = store.stats();
    for (let pg = 0; pg < 4; pg++) await (await store.diskLog(`3.${pg}`)).append(records(1, 20, 1, 3000));
    const after = store.stats();
    assert.ok(after.raftLogBytes! > 0 && after.raftLogBytes! <= after.usedBytes, `raft logs ${after.raftLogBytes} of ${after.usedBytes} used`);
    if (logMode === 'per-pg') {
      // Four logs of 60 KB each: a ring cluster or two apiece, nothing before.
      assert.is(before.raftLogBytes, 0);
      assert.ok(after.raftLogBytes! >= 4 * CLUSTER, `${after.raftLogBytes} bytes for four logs`);
      for (let pg = 0; pg < 4; pg++) await store.removeDiskLog(`3.${pg}`);
      assert.is(store.stats().raftLogBytes, 0, 'removed logs hold nothing');
    } else {
      assert.is(after.raftLogBytes, before.raftLogBytes, 'the journal is reserved whole at creation');
    }
    await store.close();
    dev.destroy();
  });

  test.run();
}

const power = suite('disk_log power loss');

power('trimmed ring space is reused only after the trim is durable', async () => {
  const medium = new MemoryBdev(16 * MiB);
  let store = await BlobShardStore.openOn(new FaultBdev(medium), 0, { create: true, clusterSize: CLUSTER, raftLog: 'per-pg' });
  const log = await store.diskLog('1.0');
  const first = Array.from({ length: 10 }, (_, i) => ({ index: i + 1, term: 1, type: 0, data: pattern(i, 5000) }));
  await log.append(first);
  await store.flush();
  await store.close();
  // Reopen on a device whose power fails later, losing the log header page and nothing else.
  const header = (id: number): number => store.blobstore.openBlob(id).clusterAt(0) * CLUSTER;
  let headerOffset = -1;
  const fault = new FaultBdev(medium.reopen(), { survives: (offset) => offset !== headerOffset });
  store = await BlobShardStore.openOn(fault, 0, { create: false });
  const reopened = await store.diskLog('1.0');
  headerOffset = header(store.blobstore.blobIds().find((id) => new TextDecoder().decode(store.blobstore.openBlob(id).getXattr('kind')) === 'log')!);
  await reopened.trimPrefix(9);
  // Wraps over records 1..3: only allowed once the header naming head 9 is durable.
  const more = Array.from({ length: 3 }, (_, i) => ({ index: 11 + i, term: 1, type: 0, data: pattern(20 + i, 5000) }));
  await reopened.append(more);
  fault.crash();
  store = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false });
  const after = await store.diskLog('1.0');
  assert.ok(after.lastIndex >= 10, `durable records 9..10 survive: last ${after.lastIndex}`);
  same(await after.read(Math.max(after.firstIndex, 9), 11), first.slice(8));
});

power.run();

/**
 * Filesystem extents of `path` by 4 KiB block (filefrag -v): true for a block of written data,
 * false for one in an unwritten extent; absent for a hole. Undefined with the reason when the
 * filesystem cannot tell (no FIEMAP, no filefrag).
 */
function writtenBlocks(path: string): Map<number, boolean> | string {
  const run = spawnSync('filefrag', ['-v', '-b4096', path], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } });
  if (run.error !== undefined || run.status !== 0) return `filefrag cannot map ${path}: ${run.error?.message ?? run.stderr.trim()}`;
  const blocks = new Map<number, boolean>();
  for (const line of run.stdout.split('\n')) {
    const extent = /^\s*\d+:\s+(\d+)\.\.\s*(\d+):/.exec(line);
    if (extent === null) continue;
    for (let block = Number(extent[1]); block <= Number(extent[2]); block++) blocks.set(block, !line.includes('unwritten'));
  }
  return blocks;
}

const ring = suite('disk_log ring on a file');

ring('every allocated block of a log ring is written data: appends neither allocate nor convert extents', async () => {
  const kind = deviceKinds().find((k) => k === 'uring' || k === 'fs');
  if (kind === undefined) {
    console.log('SKIP disk_log ring on a file: no file device in FASTBLOCK_STORE_DEVICES');
    return;
  }
  const dev = makeDevice(kind, 16 * MiB);
  const store = await BlobShardStore.openOn(dev.open(), 0, { create: true, clusterSize: CLUSTER, raftLog: 'per-pg' });
  const log = (await store.diskLog('1.0')) as BlobDiskLog;
  // Grows twice: one cluster, then at least two more.
  for (let index = 1; log.blob.clusterCount < 4; index += 5) await log.append(records(index, 5, 1, 3000));
  const blocks = writtenBlocks(dev.path!);
  if (typeof blocks === 'string') {
    console.log(`SKIP disk_log ring on a file: ${blocks}`);
  } else {
    let allocated = 0;
    for (let i = 0; i < log.blob.clusterCount; i++) {
      if (log.blob.clusterAt(i) === 0) continue;
      allocated++;
      const first = (log.blob.clusterAt(i) * CLUSTER) / 4096;
      for (let block = first; block < first + CLUSTER / 4096; block++) {
        assert.is(blocks.get(block), true, `ring cluster ${i}: device block ${block} is ${blocks.has(block) ? 'an unwritten extent' : 'a hole'}`);
      }
    }
    assert.ok(allocated >= 2, `the grown ring holds records in ${allocated} clusters`);
  }
  await store.close();
  dev.destroy();
});

ring.run();

for (const kind of deviceKinds()) {
  suiteFor(kind, 'per-pg');
  suiteFor(kind, 'journal');
}
