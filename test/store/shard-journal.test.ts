/**
 * The shard journal (plugins/store-blobstore/shard-journal.ts): every PG's raft log in one ring.
 * The DiskLog contract itself runs against the journal in disk-log.test.ts; here: batching, replay,
 * head advance and reuse, wrap, relocation, RESET, torn tails, backpressure and the mode choice.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { LogRecord } from '../../kernel/contracts/store.js';
import type { Bdev, Buffers, WriteCaching } from '../../plugins/store-blobstore/bdev/bdev.js';
import { FaultBdev } from '../../plugins/store-blobstore/bdev/fault-bdev.js';
import { MemoryBdev } from '../../plugins/store-blobstore/bdev/memory-bdev.js';
import { crc32c } from '../../plugins/store-blobstore/crc32c.js';
import { BlobShardStore, type BlobShardStoreTuning, DEFAULT_RAFT_LOG } from '../../plugins/store-blobstore/shard-store.js';
import { deviceKinds, makeDevice, pattern, rejectsWith } from './devices.js';
import { records, same } from './log-records.js';
import { Random } from '../sim/random.js';

const MiB = 1 << 20;
const KiB = 1024;
const CLUSTER = 64 * KiB;

/** A device that counts the writes reaching it. */
class CountingBdev implements Bdev {
  writes = 0;
  constructor(readonly inner: Bdev) {}
  get name(): string {
    return this.inner.name;
  }
  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }
  get blockSize(): number {
    return this.inner.blockSize;
  }
  read(offset: number, buffers: Buffers, cache?: boolean): Promise<void> {
    return this.inner.read(offset, buffers, cache);
  }
  write(offset: number, buffers: Buffers, cache?: WriteCaching): Promise<void> {
    this.writes++;
    return this.inner.write(offset, buffers, cache);
  }
  writeZeroes(offset: number, length: number): Promise<void> {
    return this.inner.writeZeroes(offset, length);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const tuning = (journalBytes: number, extra: BlobShardStoreTuning = {}): BlobShardStoreTuning & { create: boolean } => ({
  create: true,
  clusterSize: CLUSTER,
  raftLog: 'journal',
  journalBytes,
  ...extra,
});

const test = suite('shard journal');

test('appends of many PGs issued in one turn go out as one device write', async () => {
  const counting = new CountingBdev(new MemoryBdev(16 * MiB));
  const store = await BlobShardStore.openOn(counting, 0, tuning(1 * MiB));
  const logs = await Promise.all(Array.from({ length: 9 }, (_, pg) => store.diskLog(`1.${pg.toString(16)}`)));
  await store.flush();
  for (let round = 0; round < 5; round++) {
    const before = counting.writes;
    const batches = store.journal!.stats.batches;
    await Promise.all(logs.map((log, pg) => log.append(records(round * 2 + 1, 2, 1, 4000 + pg))));
    assert.is(counting.writes - before, 1, `round ${round}: one write for 9 PGs`);
    assert.is(store.journal!.stats.batches - batches, 1);
  }
  for (const log of logs) assert.is(log.lastIndex, 10);
  // The next turn's appends make the next batch.
  const before = counting.writes;
  await logs[0].append(records(11, 1, 1));
  await logs[1].append(records(11, 1, 1));
  assert.is(counting.writes - before, 2);
  await store.close();
});

test('replay after a clean close and after a crash: appends, truncations, trims of interleaved PGs', async () => {
  const medium = new MemoryBdev(16 * MiB);
  let store = await BlobShardStore.openOn(new FaultBdev(medium), 0, tuning(1 * MiB));
  const a = await store.diskLog('1.a');
  const b = await store.diskLog('2.1f');
  await Promise.all([a.append(records(1, 20, 1)), b.append(records(1, 5, 1, 2000))]);
  await a.truncateSuffix(15);
  await Promise.all([a.append(records(15, 10, 2)), b.trimPrefix(4)]);
  await b.append(records(6, 3, 1, 2000));
  await a.trimPrefix(10);
  await store.close();
  let expectA = [...records(10, 5, 1), ...records(15, 10, 2)];
  const expectB = [...records(4, 2, 1, 2000), ...records(6, 3, 1, 2000)];
  for (let pass = 0; pass < 2; pass++) {
    const fault = new FaultBdev(medium.reopen());
    store = await BlobShardStore.openOn(fault, 0, { create: false });
    assert.is(store.raftLog, 'journal');
    const ra = await store.diskLog('1.a');
    const rb = await store.diskLog('2.1f');
    assert.is(ra.firstIndex, 10);
    assert.is(ra.lastIndex, 9 + expectA.length);
    assert.is(ra.termAt(15), 2);
    same(await ra.read(10, 10 + expectA.length), expectA);
    assert.is(rb.firstIndex, 4);
    same(await rb.read(4, 9), expectB);
    if (pass === 1) break;
    // The second pass: batch writes are durable, so an append that settled survives a crash with
    // no flush of the store after it.
    await ra.append(records(25, 3, 2));
    expectA = [...expectA, ...records(25, 3, 2)];
    fault.crash();
  }
});

test('an empty log keeps its first index across reopens (trim past the end, truncation to nothing)', async () => {
  const medium = new MemoryBdev(16 * MiB);
  let store = await BlobShardStore.openOn(new FaultBdev(medium), 0, tuning(1 * MiB));
  const a = await store.diskLog('1.0');
  const b = await store.diskLog('1.1');
  await a.append(records(1, 5, 1));
  await a.trimPrefix(100);
  await b.append(records(1, 5, 1));
  await b.trimPrefix(3);
  await b.truncateSuffix(3);
  await store.flush();
  store = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false });
  const ra = await store.diskLog('1.0');
  const rb = await store.diskLog('1.1');
  assert.is(ra.firstIndex, 100);
  assert.is(ra.lastIndex, 99);
  assert.is(rb.firstIndex, 3);
  assert.is(rb.lastIndex, 2);
  await ra.append(records(100, 2, 3));
  same(await ra.read(100, 102), records(100, 2, 3));
  await store.close();
});

test('trims advance the head: the ring wraps many times in a small journal, across reopens', async () => {
  const medium = new MemoryBdev(16 * MiB);
  let store = await BlobShardStore.openOn(new FaultBdev(medium), 0, tuning(192 * KiB));
  const capacity = store.journal!.capacity;
  const pgs = ['1.0', '1.1', '1.2'];
  let logs = await Promise.all(pgs.map((pg) => store.diskLog(pg)));
  let next = 1;
  for (let round = 0; round < 120; round++) {
    await Promise.all(logs.map((log, k) => log.append(records(next, 3, 1, 1500 + k * 100))));
    next += 3;
    await store.flush();
    await Promise.all(logs.map((log) => (log.lastIndex - log.firstIndex > 12 ? log.trimPrefix(log.lastIndex - 8) : Promise.resolve())));
    if (round % 40 === 39) {
      store = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false });
      logs = await Promise.all(pgs.map((pg) => store.diskLog(pg)));
    }
  }
  const written = 120 * 3 * 3 * 1700;
  assert.ok(written > 5 * capacity, `wrapped several times (${written} bytes through a ${capacity}-byte ring)`);
  assert.is(store.journal!.stats.waits, 0, 'trims kept up: no append waited');
  for (const [k, log] of logs.entries()) same(await log.read(log.firstIndex, log.lastIndex + 1), records(log.firstIndex, log.lastIndex - log.firstIndex + 1, 1, 1500 + k * 100));
  await store.close();
  store = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false });
  for (const [k, pg] of pgs.entries()) {
    const log = await store.diskLog(pg);
    assert.is(log.lastIndex, next - 1);
    same(await log.read(log.firstIndex, log.lastIndex + 1), records(log.firstIndex, log.lastIndex - log.firstIndex + 1, 1, 1500 + k * 100));
  }
  await store.close();
});

test('a PG that never trims is relocated instead of pinning the head', async () => {
  const medium = new MemoryBdev(16 * MiB);
  let store = await BlobShardStore.openOn(new FaultBdev(medium), 0, tuning(192 * KiB));
  const idle = await store.diskLog('3.0');
  const emptyIdle = await store.diskLog('3.1');
  await idle.append(records(1, 6, 1, 800));
  await emptyIdle.append(records(1, 2, 1));
  await emptyIdle.trimPrefix(50);
  const busy = await store.diskLog('3.2');
  let next = 1;
  for (let round = 0; round < 150; round++) {
    await busy.append(records(next, 2, 1, 2000));
    next += 2;
    await store.flush();
    if (busy.lastIndex - busy.firstIndex > 10) await busy.trimPrefix(busy.lastIndex - 5);
  }
  assert.ok(store.journal!.stats.relocations >= 2, `relocations: ${store.journal!.stats.relocations}`);
  assert.is(store.journal!.stats.waits, 0);
  await store.flush();
  store = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false });
  same(await (await store.diskLog('3.0')).read(1, 7), records(1, 6, 1, 800));
  const e = await store.diskLog('3.1');
  assert.is(e.firstIndex, 50);
  assert.is(e.lastIndex, 49);
  const b = await store.diskLog('3.2');
  assert.is(b.lastIndex, next - 1);
  await store.close();
});

test('RESET: a removed log is gone after reopen, and a log re-created under the same id is the new one', async () => {
  const medium = new MemoryBdev(16 * MiB);
  let store = await BlobShardStore.openOn(new FaultBdev(medium), 0, tuning(1 * MiB));
  await (await store.diskLog('1.0')).append(records(1, 10, 1));
  await (await store.diskLog('1.1')).append(records(1, 10, 1));
  await (await store.diskLog('1.2')).append(records(1, 3, 1));
  await store.flush();
  const old = await store.diskLog('1.0');
  await store.removeDiskLog('1.0');
  await rejectsWith(old.append(records(11, 1, 1)), 'CLOSED');
  await store.removeDiskLog('1.1');
  const again = await store.diskLog('1.1');
  assert.is(again.lastIndex, 0);
  await again.append(records(1, 2, 7));
  await store.flush();
  store = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false });
  const r0 = await store.diskLog('1.0');
  assert.is(r0.firstIndex, 1);
  assert.is(r0.lastIndex, 0);
  same(await (await store.diskLog('1.1')).read(1, 3), records(1, 2, 7));
  assert.is((await store.diskLog('1.1')).lastIndex, 2);
  same(await (await store.diskLog('1.2')).read(1, 4), records(1, 3, 1));
  await store.close();
});

test('a full journal at its size limit makes appends wait until trims free room; an operation larger than a batch is refused', async () => {
  const store = await BlobShardStore.openOn(new MemoryBdev(16 * MiB), 0, tuning(192 * KiB, { journalMaxBytes: 192 * KiB }));
  const capacity = store.journal!.capacity;
  const hog = await store.diskLog('1.0');
  const other = await store.diskLog('1.1');
  // Live data the hog never trims: relocation cannot help, the ring fills.
  let next = 1;
  while ((next - 1) * 4200 < capacity - 24 * KiB) {
    await hog.append(records(next, 1, 1, 4096));
    next++;
  }
  await store.flush();
  let done = false;
  const waiting = other.append(records(1, 8, 1, 4096)).then(() => (done = true));
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.not.ok(done, 'the append waits for room');
  assert.ok(store.journal!.stats.waits > 0);
  await hog.trimPrefix(next - 2);
  await waiting;
  assert.ok(done);
  same(await other.read(1, 9), records(1, 8, 1, 4096));
  await rejectsWith(other.append([{ index: 9, term: 1, type: 0, data: pattern(1, capacity / 2) }]), 'NO_SPACE');
  await store.close();
});

test('a journal the live logs outgrow moves to a larger blob; the records and the reopen follow it', async () => {
  const medium = new MemoryBdev(32 * MiB);
  let store = await BlobShardStore.openOn(new FaultBdev(medium), 0, tuning(192 * KiB));
  const first = store.journal!.capacity;
  const pgs = ['1.0', '1.1', '1.2', '1.3'];
  let logs = await Promise.all(pgs.map((pg) => store.diskLog(pg)));
  // 4 x 40 records of ~3 KiB live, never trimmed: far more than the ring.
  for (let round = 0; round < 40; round++) {
    await Promise.all(logs.map((log, k) => log.append(records(round + 1, 1, 1, 3000 + k))));
    if (round % 5 === 4) await store.flush();
  }
  assert.ok(store.journal!.stats.grows >= 1, 'grew');
  assert.ok(store.journal!.capacity >= 3 * first, `capacity ${first} -> ${store.journal!.capacity}`);
  assert.is(store.journal!.stats.waits, 0);
  const kinds = (): string[] => store.blobstore.blobIds().map((id) => new TextDecoder().decode(store.blobstore.openBlob(id).getXattr('kind')));
  assert.is(kinds().filter((k) => k === 'journal').length, 1, 'the old journal blob is deleted');
  for (const [k, log] of logs.entries()) same(await log.read(1, 41), records(1, 40, 1, 3000 + k));
  await store.flush();
  store = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false });
  logs = await Promise.all(pgs.map((pg) => store.diskLog(pg)));
  for (const [k, log] of logs.entries()) {
    assert.is(log.lastIndex, 40);
    same(await log.read(1, 41), records(1, 40, 1, 3000 + k));
  }
  assert.ok((await store.blobstore.fsck()).ok);
  await store.close();
});

test('records of an earlier ring in the same place never replay (the CRC is seeded with the ring\'s nonce)', async () => {
  const medium = new MemoryBdev(16 * MiB);
  let store = await BlobShardStore.openOn(new FaultBdev(medium), 0, tuning(1 * MiB));
  await (await store.diskLog('1.0')).append(records(1, 5, 1));
  await store.close();
  // A new ring over the same bytes, as a journal made on clusters an old one used: same head,
  // positions and records, another nonce.
  store = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false });
  const blob = store.journal!.blob;
  const page = Buffer.alloc(4096);
  await blob.read(0, page);
  page.writeUInt32LE((page.readUInt32LE(40) + 1) >>> 0, 40);
  page.writeUInt32LE(crc32c(page.subarray(0, 4092)), 4092);
  await blob.write(0, page);
  await store.flush();
  store = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false });
  assert.is((await store.diskLog('1.0')).lastIndex, 0, 'nothing of the old ring');
  await store.close();
});

test('the raft log mode is the store\'s: a reopen never switches it', async () => {
  const medium = new MemoryBdev(16 * MiB);
  let store = await BlobShardStore.openOn(medium.reopen(), 0, { create: true, clusterSize: CLUSTER, raftLog: 'per-pg' });
  assert.is(store.raftLog, 'per-pg');
  await (await store.diskLog('1.0')).append(records(1, 3, 1));
  await store.close();
  store = await BlobShardStore.openOn(medium.reopen(), 0, { create: false, raftLog: 'journal' });
  assert.is(store.raftLog, 'per-pg', 'a store with log blobs keeps them');
  same(await (await store.diskLog('1.0')).read(1, 4), records(1, 3, 1));
  await store.close();

  const medium2 = new MemoryBdev(16 * MiB);
  store = await BlobShardStore.openOn(medium2.reopen(), 0, { create: true, clusterSize: CLUSTER, raftLog: 'journal' });
  assert.is(store.raftLog, 'journal');
  await (await store.diskLog('1.0')).append(records(1, 3, 1));
  await store.close();
  store = await BlobShardStore.openOn(medium2.reopen(), 0, { create: false, raftLog: 'per-pg' });
  assert.is(store.raftLog, 'journal');
  same(await (await store.diskLog('1.0')).read(1, 4), records(1, 3, 1));
  await store.close();

  store = await BlobShardStore.openOn(new MemoryBdev(16 * MiB), 0, { create: true, clusterSize: CLUSTER });
  assert.is(store.raftLog, process.env.FASTBLOCK_STORE_RAFT_LOG ?? DEFAULT_RAFT_LOG, 'a new store without a choice');
  await store.close();
});

test.run();

/**
 * Power loss at a random point of a random workload of several PGs on a small journal (wraps,
 * relocations, torn writes): every PG comes back as a state it went through since the last
 * completed flush, and keeps what that flush made durable.
 */
const crash = suite('shard journal power loss');

interface PgState {
  first: number;
  entries: { term: number; hash: number }[];
}

const signature = (s: PgState): string => JSON.stringify([s.first, s.entries.map((e) => `${e.term}:${e.hash}`)]);

crash('crash at a random point, reload, every log is a state it went through since the last flush', async () => {
  const seeds = Number(process.env.FASTBLOCK_JOURNAL_CRASH_SEEDS ?? 300);
  const pgs = ['1.0', '1.1', '1.2', '1.3'];
  let crashedMidway = 0;
  let grows = 0;
  let relocations = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const random = new Random(seed);
    const rand = (): number => random.next();
    const int = (n: number): number => random.int(n);
    const medium = new MemoryBdev(8 * MiB);
    const setup = await BlobShardStore.openOn(new FaultBdev(medium), 0, tuning(128 * KiB));
    await setup.close();
    const fault = new FaultBdev(medium.reopen(), { crashAtOp: 5 + int(250), tear: rand() < 0.5, random: rand });
    const keep = seed % 3 === 0 ? 40 : 12;
    const model = new Map<string, PgState>(pgs.map((pg) => [pg, { first: 1, entries: [] }]));
    // Per PG: signatures of every state since the last completed flush.
    const since = new Map<string, Set<string>>();
    const noteAll = (): void => {
      for (const pg of pgs) since.set(pg, new Set([signature(model.get(pg)!)]));
    };
    noteAll();
    let store: BlobShardStore | undefined;
    try {
      const live = await BlobShardStore.openOn(fault, 0, { create: false });
      store = live;
      for (let step = 0; step < 200 && !fault.crashed; step++) {
        if (int(6) === 0) {
          // Every operation completed before it: from now on only the current states count.
          await live.flush();
          noteAll();
          continue;
        }
        // A round: operations on distinct PGs issued in the same turn.
        const logs = await Promise.all(pgs.map((pg) => live.diskLog(pg)));
        const work: Promise<void>[] = [];
        for (const [k, pg] of pgs.entries()) {
          if (int(2) === 0) continue;
          const log = logs[k];
          const m = model.get(pg)!;
          const last = m.first + m.entries.length - 1;
          // Logs past `keep` entries are trimmed: the live data stays well below the ring, or (a
          // third of the seeds) outgrows it so that the journal grows.
          const kind = m.entries.length > keep ? 6 : int(10);
          let op: () => Promise<void>;
          if (kind < 6) {
            const term = 1 + int(3);
            const batch = records(last + 1, 1 + int(3), term, 10 + int(3000));
            for (const r of batch) {
              // A torn append may keep a prefix of its records.
              m.entries.push({ term: r.term, hash: crc32c(r.data) });
              since.get(pg)!.add(signature(m));
            }
            op = () => log.append(batch);
          } else if (kind < 8) {
            const to = m.first + int(m.entries.length + 3);
            if (to > m.first) {
              m.entries = m.entries.slice(Math.min(to - m.first, m.entries.length));
              m.first = to;
            }
            op = () => log.trimPrefix(to);
          } else if (kind < 9) {
            const from = m.first + int(m.entries.length + 1);
            m.entries.length = Math.max(0, from - m.first);
            op = () => log.truncateSuffix(from);
          } else {
            m.first = 1;
            m.entries = [];
            op = () => live.removeDiskLog(pg);
          }
          since.get(pg)!.add(signature(m));
          work.push(op());
        }
        await Promise.all(work);
      }
    } catch (err) {
      if (!fault.crashed) throw err;
    }
    if (fault.crashed) crashedMidway++;
    grows += store?.journal?.stats.grows ?? 0;
    relocations += store?.journal?.stats.relocations ?? 0;
    fault.crash();
    const reloaded = await BlobShardStore.openOn(new FaultBdev(medium.reopen()), 0, { create: false });
    for (const pg of pgs) {
      const log = await reloaded.diskLog(pg);
      const got = log.lastIndex >= log.firstIndex ? await log.read(log.firstIndex, log.lastIndex + 1) : [];
      const sig = signature({ first: log.firstIndex, entries: got.map((r) => ({ term: r.term, hash: crc32c(r.data) })) });
      assert.ok(since.get(pg)!.has(sig), `seed ${seed}: log ${pg} [${log.firstIndex}, ${log.lastIndex}] is no state it went through since the last flush`);
    }
    await reloaded.close();
  }
  assert.ok(crashedMidway > seeds / 2, `most crashes hit the workload (${crashedMidway} of ${seeds})`);
  assert.ok(grows > 0 && relocations > 0, `the workloads grew the journal (${grows}) and relocated logs (${relocations})`);
});

crash.run();

const devices = suite('shard journal on real devices');

devices('wrap and reopen on every device kind', async () => {
  for (const kind of deviceKinds()) {
    const dev = makeDevice(kind, 16 * MiB);
    let store = await BlobShardStore.openOn(dev.open(), 0, tuning(192 * KiB));
    let logs = await Promise.all(['1.0', '1.1'].map((pg) => store.diskLog(pg)));
    let next = 1;
    for (let round = 0; round < 60; round++) {
      await Promise.all(logs.map((log) => log.append(records(next, 2, 1, 3000))));
      next += 2;
      await store.flush();
      await Promise.all(logs.map((log) => (log.lastIndex - log.firstIndex > 8 ? log.trimPrefix(log.lastIndex - 4) : Promise.resolve())));
      if (round === 30) {
        await store.close();
        store = await BlobShardStore.openOn(dev.open(), 0, { create: false });
        logs = await Promise.all(['1.0', '1.1'].map((pg) => store.diskLog(pg)));
      }
    }
    await store.close();
    store = await BlobShardStore.openOn(dev.open(), 0, { create: false });
    for (const pg of ['1.0', '1.1']) {
      const log = await store.diskLog(pg);
      assert.is(log.lastIndex, next - 1, `${kind}: ${pg}`);
      same(await log.read(log.firstIndex, log.lastIndex + 1), records(log.firstIndex, log.lastIndex - log.firstIndex + 1, 1, 3000));
    }
    await store.close();
    dev.destroy();
  }
});

devices.run();
