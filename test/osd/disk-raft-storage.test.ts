/** Durable raft storage of a PG: entries across compaction and restart; the kv's commit index is a hint. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Entry } from '../../kernel/raft/index.js';
import { BlobShardStore } from '../../plugins/store-blobstore/shard-store.js';
import { DiskRaftStorage } from '../../services/osd/disk-raft-storage.js';
import { makeDevice } from '../store/devices.js';
import type { DiskLog, LogRecord, ShardStore } from '../../kernel/contracts/store.js';
import { MemoryShardStore } from './memory-store.js';

const membership = { voters: [1, 2, 3], learners: [] };
const entry = (index: number, term = 1): Entry => ({ index, term, type: 0, data: new Uint8Array(100 + (index % 7) * 1000).fill(index & 0xff) });
const same = (a: readonly Entry[], b: readonly Entry[]): void => {
  assert.equal(a.map((e) => [e.index, e.term, e.type, e.data.byteLength]), b.map((e) => [e.index, e.term, e.type, e.data.byteLength]));
  for (let i = 0; i < a.length; i++) assert.ok(Buffer.from(a[i]!.data).equals(Buffer.from(b[i]!.data)), `entry ${a[i]!.index}`);
};

test('entries read back as written, after compaction and after a restart that takes the checkpoint as committed', async () => {
  const dev = makeDevice('memory', 32 << 20);
  let store = await BlobShardStore.openOn(dev.open(), 0, { create: true, clusterSize: 64 * 1024 });
  let provider = new DiskRaftStorage(store);
  const { storage } = await provider.open('1.0', membership);
  const all = Array.from({ length: 60 }, (_, i) => entry(i + 1));
  storage.append(all.slice(0, 40));
  storage.setHardState({ term: 1, vote: 1, commit: 40 });
  await provider.flush();
  same(storage.entries(1, 41, Infinity), all.slice(0, 40));
  same(storage.entries(25, 35, Infinity), all.slice(24, 34));
  assert.is(storage.entries(25, 35, 1).length, 1, 'at least one entry, then up to maxBytes');
  assert.is(storage.term(30), 1);
  storage.append(all.slice(40, 60).map((e) => ({ ...e, term: 2 })));
  await provider.flush();
  storage.createSnapshot({ meta: { index: 25, term: 1, membership }, data: new Uint8Array(0) });
  assert.is(storage.firstIndex(), 26);
  same(storage.entries(26, 61, Infinity), all.slice(25, 60).map((e, i) => (i + 26 > 40 ? { ...e, term: 2 } : e)));
  provider.checkpoint('1.0', 55);
  await provider.flush();
  await store.close();

  store = await BlobShardStore.openOn(dev.open(), 0, { create: false, clusterSize: 64 * 1024 });
  provider = new DiskRaftStorage(store);
  const reopened = await provider.open('1.0', membership);
  assert.is(reopened.applied, 55);
  assert.is(reopened.storage.firstIndex(), 26);
  assert.is(reopened.storage.lastIndex(), 60);
  // The kv says commit 40; entries up to the checkpointed applied index were committed.
  assert.is(reopened.storage.initialState().hardState.commit, 55, 'the checkpointed applied index counts as committed');
  same(reopened.storage.entries(26, 61, Infinity), all.slice(25, 60).map((e, i) => (i + 26 > 40 ? { ...e, term: 2 } : e)));
  await store.close();
  dev.destroy();
});

/** A store whose log appends land only when the test says, one by one, in any order across PGs. */
function heldLogStore() {
  const held: { pg: string; index: number; land: () => void; fail: (err: unknown) => void }[] = [];
  const base = new MemoryShardStore();
  const store = Object.create(base) as ShardStore & { held: typeof held };
  store.held = held;
  Object.defineProperty(store, 'durableLogWrites', { value: true });
  store.diskLog = async (pg: string): Promise<DiskLog> => {
    let last = 0;
    return {
      firstIndex: 1,
      get lastIndex() {
        return last;
      },
      termAt: () => undefined,
      append(records: readonly LogRecord[]) {
        last = records[records.length - 1]!.index;
        return new Promise<void>((land, fail) => held.push({ pg, index: records[0]!.index, land, fail }));
      },
      read: async () => [],
      truncateSuffix: async () => undefined,
      trimPrefix: async () => undefined,
    };
  };
  return store;
}

test('a flush waits for the log writes of every PG issued before it, not for later ones; a failed one fails it', async () => {
  const store = heldLogStore();
  const provider = new DiskRaftStorage(store);
  const a = (await provider.open('1.0', membership)).storage;
  const b = (await provider.open('1.1', membership)).storage;
  await provider.flush();
  a.append([entry(1)]);
  a.append([entry(2)]);
  b.append([entry(1)]);
  let first = false;
  const flushed = provider.flush().then(() => (first = true));
  a.append([entry(3)]);
  let second: unknown = 'pending';
  const later = provider.flush().then(() => (second = 'ok'), (err: unknown) => (second = err));
  const tick = () => new Promise((r) => setTimeout(r, 1));
  await tick();
  assert.equal(store.held.map((h) => `${h.pg}@${h.index}`), ['1.0@1', '1.1@1'], 'a PG\'s writes go one after another');
  store.held[1]!.land(); // 1.1's write lands before 1.0's
  await tick();
  assert.not.ok(first, 'not while 1.0 still writes');
  store.held[0]!.land();
  await tick();
  assert.equal(store.held.map((h) => `${h.pg}@${h.index}`), ['1.0@1', '1.1@1', '1.0@2']);
  assert.not.ok(first, 'not before the second write of 1.0');
  store.held[2]!.land();
  await flushed;
  assert.ok(first);
  assert.is(second, 'pending', 'the later flush waits for the write issued after the first flush');
  const eio = new Error('EIO');
  await tick();
  store.held[3]!.fail(eio);
  await later;
  assert.is(second, eio);
});

test.run();
