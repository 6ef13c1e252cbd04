/** The PG state machine, the PG op codec and the membership steps, without raft or network. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pino from 'pino';
import { DataFlag, DataOp, encodeDataRequest } from '../../client/data-protocol.js';
import { OP_NAMES, OpMeter, meterFigures, requestOp } from '../../services/osd/op-meter.js';
import type { ObjectStore } from '../../kernel/contracts/store.js';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { EntryType, type MultiRaft } from '../../kernel/raft/index.js';
import { MembershipDriver } from '../../services/osd/membership-driver.js';
import { Pg, type PgRaftPort } from '../../services/osd/pg.js';
import { PgOpFlag, decodePgOp, encodePgExtentsOp, encodePgOp } from '../../services/osd/pg-op.js';
import { BlobShardStore } from '../../plugins/store-blobstore/shard-store.js';
import { CachedBdev } from '../../plugins/store-blobstore/bdev/cached-bdev.js';
import { MemoryBdev } from '../../plugins/store-blobstore/bdev/memory-bdev.js';
import { makeDevice } from '../store/devices.js';
import { MemoryShardStore } from './memory-store.js';

test('PG ops round-trip; a truncated op is CORRUPT, never applied', () => {
  const data = new Uint8Array([1, 2, 3, 4, 5]);
  const op = decodePgOp(encodePgOp(DataOp.WRITE, 'img.0000000000000003', 4096 * 1000 + 7, 5, data));
  assert.equal({ ...op, data: [...op.data!] }, { op: DataOp.WRITE, object: 'img.0000000000000003', offset: 4096007, length: 5, data: [1, 2, 3, 4, 5] });
  assert.equal(decodePgOp(encodePgOp(DataOp.DISCARD, 'x', 0, 8192)), { op: DataOp.DISCARD, object: 'x', offset: 0, length: 8192 });
  const bytes = encodePgOp(DataOp.WRITE, 'x', 0, 5, data);
  assert.throws(() => decodePgOp(bytes.subarray(0, bytes.length - 1)), (err: unknown) => isFastblockError(err, ErrorCode.CORRUPT));
  assert.throws(() => decodePgOp(bytes.subarray(0, 10)), (err: unknown) => isFastblockError(err, ErrorCode.CORRUPT));
});

test('PG ops encoded one after another keep their own bytes (small ones share a slab), large lengths and offsets included', () => {
  const ops: { bytes: Uint8Array; fill: number; size: number; offset: number }[] = [];
  for (let i = 0; i < 200; i++) {
    const size = [1, 4096, 4097, 8200, 20_000][i % 5]!;
    const offset = i % 2 === 0 ? 2 ** 40 - 4096 * i : 4096 * i + 3;
    ops.push({ bytes: encodePgOp(DataOp.WRITE, `obj.${i}`, offset, size, new Uint8Array(size).fill(i & 0xff)), fill: i & 0xff, size, offset });
  }
  for (const [i, { bytes, fill, size, offset }] of ops.entries()) {
    const op = decodePgOp(bytes);
    assert.is(op.object, `obj.${i}`);
    assert.is(op.offset, offset);
    assert.is(op.length, size);
    assert.ok(op.data!.every((b) => b === fill), `op ${i}`);
  }
  const big = decodePgOp(encodePgOp(DataOp.DISCARD, 'x', 0, 0xffffffff));
  assert.is(big.length, 0xffffffff);
});

test('WRITE_EXTENTS PG ops round-trip; a bad extent table is CORRUPT', () => {
  const data = Uint8Array.from({ length: 12 }, (_, i) => i + 1);
  const extents = [4096, 4, 2 ** 40, 8];
  const op = decodePgOp(encodePgExtentsOp('img.é.0000000000000003', extents, data));
  assert.equal({ ...op, data: [...op.data!] }, { op: DataOp.WRITE_EXTENTS, object: 'img.é.0000000000000003', offset: 4096, length: 12, data: [...data], extents });
  const one = decodePgOp(encodePgExtentsOp('x', [0, 12], data));
  assert.equal(one.extents, [0, 12]);

  // Entries hand-edited into each kind of damage: the table starts at 16 + name (1 byte, 'x').
  const good = () => Buffer.from(encodePgExtentsOp('x', [0, 4, 8, 8], data));
  const table = 17;
  const damaged: [string, (b: Buffer) => Uint8Array][] = [
    ['no extents', (b) => (b.writeUInt32LE(0, 4), b)],
    ['more than MAX_EXTENTS', (b) => (b.writeUInt32LE(1025, 4), b)],
    ['count past the table', (b) => (b.writeUInt32LE(3, 4), b)],
    ['empty extent', (b) => (b.writeUInt32LE(0, table + 8), b)],
    ['overlapping extents', (b) => (b.writeDoubleLE(2, table + 12), b)],
    ['descending extents', (b) => (b.writeDoubleLE(100, table), b)],
    ['fractional offset', (b) => (b.writeDoubleLE(0.5, table), b)],
    ['negative offset', (b) => (b.writeDoubleLE(-8, table), b)],
    ['NaN offset', (b) => (b.writeDoubleLE(NaN, table), b)],
    ['lengths not adding up', (b) => (b.writeUInt32LE(7, table + 20), b)],
    ['total not the data', (b) => (b.writeDoubleLE(13, 8), b)],
    ['data truncated', (b) => b.subarray(0, b.length - 1)],
    ['table truncated', (b) => b.subarray(0, table + 10)],
    ['name past the end', (b) => (b.writeUInt16LE(500, 2), b)],
  ];
  for (const [what, damage] of damaged) {
    assert.throws(() => decodePgOp(damage(good())), (err: unknown) => isFastblockError(err, ErrorCode.CORRUPT), what);
  }
});

test('a WRITE_EXTENTS entry applies as the writes of its extents; early only when every extent overwrites; cached as WRITE', async () => {
  const store = new MemoryShardStore();
  const objects = gatedObjects(store.objects);
  const port = fakePort();
  const pg = new Pg('1.0', 1, 0, 0, objects, port, 0, failStopUnexpected);
  pg.setLeader(0, 1);
  const entry = (index: number, data: Uint8Array) => ({ index, term: 1, type: EntryType.Normal, data });
  const first = encodePgOp(DataOp.WRITE, 'o', 0, 16, new Uint8Array(16).fill(1));
  void pg.propose(first);
  objects.open();
  await pg.apply([entry(1, first)]);
  objects.close();

  // Both extents inside the object: acknowledged once issued. The second one's second extent grows it: once landed.
  const inside = encodePgExtentsOp('o', [2, 2, 8, 3], Uint8Array.from([2, 2, 3, 3, 3]));
  const growing = encodePgExtentsOp('o', [0, 1, 14, 4], Uint8Array.from([4, 5, 5, 5, 5]));
  const outcome: string[] = [];
  void pg.propose(inside).then(() => outcome.push('inside'));
  void pg.propose(growing).then(() => outcome.push('growing'));
  const applied = pg.apply([entry(2, inside), entry(3, growing)]);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(outcome, ['inside']);
  assert.is(pg.earlyAcknowledged, 1);
  assert.is(pg.appliedIndex, 1);
  objects.open();
  await applied;
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(outcome, ['inside', 'growing']);
  assert.is(pg.appliedIndex, 3);
  assert.equal([...(await store.objects.read('1.0', 'o', 0, 18))], [4, 1, 2, 2, 1, 1, 1, 1, 3, 3, 3, 1, 1, 1, 5, 5, 5, 5]);
  assert.equal(objects.kept, [true, true, true, true, true], 'the leader keeps every extent it writes in the read cache');
  pg.setLeader(2, 2);
  await pg.apply([entry(4, inside)]);
  assert.equal(objects.kept.slice(5), [false, false], 'a follower does not');
});

test('a WRITE_EXTENTS that fails on one extent fails its proposal only once all its writes settled', async () => {
  const store = new MemoryShardStore();
  const objects = Object.create(store.objects) as ObjectStore;
  const eio = new Error('EIO');
  let releaseSlow!: () => void;
  const slow = new Promise<void>((resolve) => (releaseSlow = resolve));
  let slowLanded = false;
  objects.write = (pgId, object, offset, data) => {
    if (offset === 0) return Promise.reject(eio);
    return slow.then(() => store.objects.write(pgId, object, offset, data)).then(() => void (slowLanded = true));
  };
  const pg = new Pg('1.0', 1, 0, 0, objects, fakePort(), 0, failStopUnexpected);
  pg.setLeader(0, 1);
  const op = encodePgExtentsOp('o', [0, 4, 8, 4], new Uint8Array(8).fill(9));
  const outcome = pg.propose(op).then(() => 'ok', (err: unknown) => err);
  const applied = pg.apply([{ index: 1, term: 1, type: EntryType.Normal, data: op }]);
  await new Promise((r) => setTimeout(r, 10));
  assert.is(pg.appliedIndex, 0, 'not applied while an extent is still landing');
  releaseSlow();
  await applied;
  assert.ok(slowLanded);
  assert.is(await outcome, eio);
  assert.is(pg.appliedIndex, 1);
});

test('the op meter counts a WRITE_EXTENTS as a write, with its payload bytes', () => {
  const header = encodeDataRequest({ op: DataOp.WRITE_EXTENTS, pool: 1, pg: 2, object: 'o', offset: 0, length: 12_288, epoch: 3, extents: [0, 4096, 8192, 8192] });
  const write = OP_NAMES.indexOf('write');
  assert.is(requestOp(header), write);
  assert.is(requestOp(encodeDataRequest({ op: DataOp.WRITE, pool: 1, pg: 2, object: 'o', offset: 0, length: 1, epoch: 3 })), write);
  assert.is(requestOp(encodeDataRequest({ op: 6 as DataOp, pool: 1, pg: 2, object: 'o', offset: 0, length: 1, epoch: 3 })), OP_NAMES.indexOf('other'));
  const meter = new OpMeter();
  meter.record(requestOp(header), 12_288, { header: new Uint8Array(0) }, performance.now());
  const figures = meter.snapshot();
  assert.is(meterFigures.requests(figures, write, 0), 1);
  assert.is(meterFigures.bytesWritten(figures), 12_288);
});

const failStopUnexpected = (err: unknown): void => {
  throw new Error(`unexpected fail-stop: ${String(err)}`);
};

/**
 * The memory store with its landings held at a gate: a write is issued (and asked `overwrites`)
 * at once, and lands, or fails with `failWith`, only when the gate opens.
 */
function gatedObjects(objects: ObjectStore) {
  let open!: () => void;
  let opened = new Promise<void>((resolve) => (open = resolve));
  const gated = Object.create(objects) as ObjectStore & { open(): void; close(): void; failWith: unknown; kept: boolean[] };
  gated.failWith = undefined;
  gated.kept = [];
  gated.open = () => open();
  gated.close = () => (opened = new Promise<void>((resolve) => (open = resolve)));
  gated.write = (pg, object, offset, data, options) => {
    gated.kept.push(options?.keepCached === true);
    const gate = opened;
    return gate.then(() => {
      if (gated.failWith !== undefined) throw gated.failWith;
      return objects.write(pg, object, offset, data);
    });
  };
  return gated;
}

function fakePort() {
  let next = 1;
  const port: PgRaftPort & { term: number; readAt: number } = {
    term: 1,
    readAt: 0,
    propose: () => ({ index: next++, term: port.term }),
    readIndex: async () => port.readAt,
  };
  return port;
}

test('a proposal resolves when its entry applies, in log order; a replaced entry fails as NOT_LEADER', async () => {
  const store = new MemoryShardStore();
  const port = fakePort();
  const pg = new Pg('1.0', 1, 0, 0, store.objects, port, 0, failStopUnexpected);
  pg.setLeader(0, 1);
  const first = pg.propose(encodePgOp(DataOp.WRITE, 'o', 0, 3, new Uint8Array([7, 7, 7])));
  const second = pg.propose(encodePgOp(DataOp.WRITE, 'o', 1, 1, new Uint8Array([9])));
  let firstDone = false;
  void first.then(() => (firstDone = true));
  await pg.apply([{ index: 1, term: 1, type: EntryType.Normal, data: encodePgOp(DataOp.WRITE, 'o', 0, 3, new Uint8Array([7, 7, 7])) }]);
  await first;
  assert.ok(firstDone);
  // Index 2 was overwritten by a new leader's entry of term 2: its proposer must not see success.
  await pg.apply([{ index: 2, term: 2, type: EntryType.Normal, data: encodePgOp(DataOp.WRITE, 'o', 2, 1, new Uint8Array([5])) }]);
  try {
    await second;
    assert.unreachable();
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.NOT_LEADER));
  }
  assert.equal([...(await store.objects.read('1.0', 'o', 0, 3))], [7, 7, 5]);
});

test('a proposal that never commits fails as TIMEOUT once 10 s old, and only then', async () => {
  const store = new MemoryShardStore();
  const pg = new Pg('1.0', 1, 0, 0, store.objects, fakePort(), 0, failStopUnexpected);
  pg.setLeader(0, 1);
  const started = Date.now();
  const stuck = pg.propose(encodePgOp(DataOp.WRITE, 'o', 0, 1, new Uint8Array([1])));
  let outcome: unknown = 'pending';
  stuck.then(
    () => (outcome = 'ok'),
    (err: unknown) => (outcome = err),
  );
  pg.expireProposals(started + 9_000);
  await Promise.resolve();
  assert.is(outcome, 'pending');
  assert.is(pg.waitingProposals, 1);
  pg.expireProposals(started + 10_000 + 50);
  await Promise.resolve();
  assert.ok(isFastblockError(outcome, ErrorCode.TIMEOUT), String(outcome));
  assert.is(pg.waitingProposals, 0);
});

test('a batch of committed ops is issued at once on the blobstore and lands in log order; a bad op fails only its proposal', async () => {
  const dev = makeDevice('memory', 16 << 20);
  const store = await BlobShardStore.openOn(dev.open(), 0, { create: true, clusterSize: 64 * 1024 });
  const pg = new Pg('1.0', 1, 0, 0, store.objects, fakePort(), 0, failStopUnexpected);
  pg.setLeader(0, 1);
  const page = (value: number, pages: number) => new Uint8Array(pages * 4096).fill(value);
  // Pages [0,2) then [1,3) then [2,4): each overlaps the next, so order matters on pages 1 and 2.
  const ops = [encodePgOp(DataOp.WRITE, 'o', 0, 8192, page(1, 2)), encodePgOp(DataOp.WRITE, 'o', 4096, 8192, page(2, 2)), new Uint8Array(20), encodePgOp(DataOp.WRITE, 'o', 8192, 8192, page(3, 2)), encodePgOp(DataOp.WRITE_ZEROES, 'o', 12288, 100)];
  const proposals = ops.map((op) => pg.propose(op).then(() => 'ok', (err: unknown) => err));
  await pg.apply(ops.map((data, i) => ({ index: i + 1, term: 1, type: EntryType.Normal, data })));
  const outcomes = await Promise.all(proposals);
  assert.equal([outcomes[0], outcomes[1], outcomes[3], outcomes[4]], ['ok', 'ok', 'ok', 'ok']);
  assert.ok(isFastblockError(outcomes[2], ErrorCode.CORRUPT), String(outcomes[2]));
  assert.is(pg.appliedIndex, 5);
  const bytes = await store.objects.read('1.0', 'o', 0, 4 * 4096);
  const firstOf = (p: number) => bytes[p * 4096];
  assert.equal([firstOf(0), firstOf(1), firstOf(2), firstOf(3)], [1, 2, 3, 0]);
  assert.is(bytes[3 * 4096 + 100], 3);
  await store.close();
  dev.destroy();
});

test('reads wait for the apply of their read index; losing leadership fails pending proposals', async () => {
  const store = new MemoryShardStore();
  const port = fakePort();
  const pg = new Pg('1.0', 1, 0, 0, store.objects, port, 0, failStopUnexpected);
  pg.setLeader(0, 1);
  port.readAt = 1;
  let read = false;
  const barrier = pg.readBarrier().then(() => (read = true));
  await new Promise((r) => setTimeout(r, 10));
  assert.not.ok(read, 'not before the index is applied');
  await pg.apply([{ index: 1, term: 1, type: EntryType.Membership, data: new Uint8Array(0) }]);
  await barrier;
  const pending = pg.propose(encodePgOp(DataOp.DISCARD, 'o', 0, 4096));
  pg.setLeader(2, 2);
  try {
    await pending;
    assert.unreachable();
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.NOT_LEADER));
  }
});

test('an overwrite of held space is acknowledged once issued; a growing write once landed; reads wait for both to land', async () => {
  const store = new MemoryShardStore();
  const objects = gatedObjects(store.objects);
  const port = fakePort();
  const pg = new Pg('1.0', 1, 0, 0, objects, port, 0, failStopUnexpected);
  pg.setLeader(0, 1);
  const entry = (index: number, data: Uint8Array) => ({ index, term: 1, type: EntryType.Normal, data });
  const first = encodePgOp(DataOp.WRITE, 'o', 0, 8, new Uint8Array(8).fill(1));
  void pg.propose(first);
  objects.open();
  await pg.apply([entry(1, first)]);
  objects.close();

  const overwrite = encodePgOp(DataOp.WRITE, 'o', 0, 4, new Uint8Array(4).fill(2));
  const grow = encodePgOp(DataOp.WRITE, 'o', 6, 4, new Uint8Array(4).fill(3));
  const outcome: string[] = [];
  void pg.propose(overwrite).then(() => outcome.push('overwrite'));
  void pg.propose(grow).then(() => outcome.push('grow'));
  port.readAt = 3;
  void pg.readBarrier().then(() => outcome.push('read'));
  const applied = pg.apply([entry(2, overwrite), entry(3, grow)]);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(outcome, ['overwrite'], 'only the overwrite is acknowledged before anything lands');
  assert.is(pg.appliedIndex, 1);
  assert.is(pg.earlyAcknowledged, 1);
  objects.open();
  await applied;
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(outcome, ['overwrite', 'grow', 'read']);
  assert.is(pg.appliedIndex, 3);
  assert.equal([...(await store.objects.read('1.0', 'o', 0, 10))], [2, 2, 2, 2, 1, 1, 3, 3, 3, 3]);
  assert.equal(objects.kept, [true, true, true], 'the leader keeps what it writes in the read cache');
  pg.setLeader(2, 2);
  await pg.apply([{ index: 4, term: 2, type: EntryType.Normal, data: overwrite }]);
  assert.equal(objects.kept, [true, true, true, false], 'a follower does not');
});

test('a device failure under an early-acknowledged write stops the shard; under any other op it fails that op', async () => {
  const store = new MemoryShardStore();
  const objects = gatedObjects(store.objects);
  const stops: unknown[] = [];
  const pg = new Pg('1.0', 1, 0, 0, objects, fakePort(), 0, (err) => stops.push(err));
  pg.setLeader(0, 1);
  const entry = (index: number, data: Uint8Array) => ({ index, term: 1, type: EntryType.Normal, data });
  const eio = new Error('EIO');
  objects.failWith = eio;
  objects.open();
  // A first write to an absent object is not an overwrite: its client hears of the failure.
  const create = encodePgOp(DataOp.WRITE, 'o', 0, 8, new Uint8Array(8).fill(1));
  const created = pg.propose(create).then(() => 'ok', (err: unknown) => err);
  await pg.apply([entry(1, create)]);
  assert.is(await created, eio);
  assert.equal(stops, []);
  assert.is(pg.appliedIndex, 1);

  objects.failWith = undefined;
  await Promise.all([pg.propose(create), pg.apply([entry(2, create)])]);
  objects.close();
  objects.failWith = eio;
  const overwrite = encodePgOp(DataOp.WRITE, 'o', 0, 4, new Uint8Array(4).fill(2));
  const acknowledged = pg.propose(overwrite);
  const applied = pg.apply([entry(3, overwrite)]);
  await acknowledged;
  objects.open();
  await applied;
  assert.equal(stops, [eio], 'the acknowledged write did not land: fail-stop');
  assert.is(pg.appliedIndex, 2, 'the applied index does not pass the lost write');
});

test('a batch is issued only once the one before it landed, and a restore waits its turn between batches', async () => {
  const store = new MemoryShardStore();
  const objects = gatedObjects(store.objects);
  let imported = 0;
  objects.importPg = async () => void imported++;
  const pg = new Pg('1.0', 1, 0, 0, objects, fakePort(), 0, failStopUnexpected);
  const entry = (index: number, data: Uint8Array) => ({ index, term: 1, type: EntryType.Normal, data });
  const write = (value: number) => encodePgOp(DataOp.WRITE, 'o', 0, 4, new Uint8Array(4).fill(value));
  const order: string[] = [];
  const first = pg.apply([entry(1, write(1))]).then(() => order.push('first'));
  const restored = pg.restore(5, () => (async function* () {})(), failStopUnexpected).then((ok) => order.push(`restored ${ok}`));
  const after = pg.apply([entry(6, write(2))]).then(() => order.push('after'));
  await new Promise((r) => setTimeout(r, 10));
  assert.is(objects.kept.length, 1, 'the second batch waits for the first to land');
  assert.is(imported, 0, 'the restore waits for the first batch');
  assert.ok(pg.restoring);
  objects.open();
  await Promise.all([first, restored, after]);
  assert.equal(order, ['first', 'restored true', 'after']);
  assert.is(imported, 1);
  assert.is(pg.appliedIndex, 6);
  assert.not.ok(pg.restoring);
  assert.equal([...(await store.objects.read('1.0', 'o', 0, 4))], [2, 2, 2, 2]);
});

test('an apply with a gap fails, and so does every later one', async () => {
  const store = new MemoryShardStore();
  const pg = new Pg('1.0', 1, 0, 0, store.objects, fakePort(), 0, failStopUnexpected);
  const entry = (index: number) => ({ index, term: 1, type: EntryType.Normal, data: encodePgOp(DataOp.WRITE, 'o', 0, 1, new Uint8Array([index])) });
  await pg.apply([entry(1)]);
  const failures: unknown[] = [];
  pg.applyCommitted([entry(3)], (err, id) => failures.push([id, (err as Error).message]));
  const later = await pg.apply([entry(2)]).then(() => 'applied', (err: unknown) => (err as Error).message);
  assert.equal(failures, [['1.0', 'assertion failed: PG 1.0: apply gap 1 -> 3']]);
  assert.is(later, 'assertion failed: PG 1.0: apply gap 1 -> 3');
  assert.is(pg.appliedIndex, 1);
});

test('membership moves toward the map one safe step at a time', () => {
  const driver = new MembershipDriver({} as MultiRaft, pino({ level: 'silent' }));
  const caughtUp = (ready: number[]) => (n: number) => ready.includes(n);
  // Replica 1 is replaced by 4.
  let m = { voters: [1, 2, 3], learners: [] as number[] };
  const target = [2, 3, 4];
  const steps: string[] = [];
  for (let i = 0; i < 10; i++) {
    const next = driver.nextStep(m, target, caughtUp(i >= 2 ? [4] : []));
    if (!next) continue; // waiting for the learner to catch up
    steps.push(next.step);
    m = { voters: [...next.membership.voters], learners: [...next.membership.learners] };
  }
  assert.equal(steps, ['add learners', 'promote', 'remove voter']);
  assert.equal(m, { voters: [2, 3, 4], learners: [] });
  assert.ok(steps.includes('promote') && steps.includes('remove voter'));
  // A learner that has not caught up is not promoted.
  assert.is(driver.nextStep({ voters: [2, 3], learners: [4] }, [2, 3, 4], () => false), undefined);
});

test('a PG op carries its flags (NOCACHE) in its second byte; without them it is the entry of before; bits not known are dropped', () => {
  const data = Uint8Array.from([1, 2, 3, 4]);
  const write = encodePgOp(DataOp.WRITE, 'o', 4096, 4, data, DataFlag.NOCACHE);
  assert.is(write[1], PgOpFlag.NOCACHE);
  const op = decodePgOp(write);
  assert.equal({ ...op, data: [...op.data!] }, { op: DataOp.WRITE, object: 'o', offset: 4096, length: 4, data: [1, 2, 3, 4], flags: PgOpFlag.NOCACHE });
  assert.equal(decodePgOp(encodePgOp(DataOp.DISCARD, 'x', 0, 8192, undefined, DataFlag.NOCACHE)), { op: DataOp.DISCARD, object: 'x', offset: 0, length: 8192, flags: PgOpFlag.NOCACHE });
  // A request's bits not known here are not logged.
  const extents = encodePgExtentsOp('o', [0, 1, 8, 3], data, DataFlag.NOCACHE | 0x80);
  assert.is(extents[1], PgOpFlag.NOCACHE);
  const decoded = decodePgOp(extents);
  assert.equal({ ...decoded, data: [...decoded.data!] }, { op: DataOp.WRITE_EXTENTS, object: 'o', offset: 0, length: 4, data: [1, 2, 3, 4], extents: [0, 1, 8, 3], flags: PgOpFlag.NOCACHE });
  // No flags: byte 1 is 0, as every entry written before it had a meaning, and decodes without them.
  const plain = encodePgOp(DataOp.WRITE, 'o', 4096, 4, data);
  assert.is(plain[1], 0);
  assert.ok(!('flags' in decodePgOp(plain)));
  assert.ok(!('flags' in decodePgOp(encodePgExtentsOp('o', [0, 4], data))));
  // An entry with a bit this OSD does not know (a newer one logged it) applies as if it were not there.
  const newer = Buffer.from(plain);
  newer[1] = 0x40;
  assert.ok(!('flags' in decodePgOp(newer)));
});

test('the leader keeps what it writes in the store read cache unless the op says NOCACHE; a NOCACHE write still updates the blocks cached', async () => {
  const B = 4096;
  const cached = new CachedBdev(new MemoryBdev(16 << 20), 1 << 20);
  const store = await BlobShardStore.openOn(cached, 0, { create: true, clusterSize: 64 * 1024 });
  const pg = new Pg('1.0', 1, 0, 0, store.objects, fakePort(), 0, failStopUnexpected);
  pg.setLeader(0, 1);
  let index = 0;
  const apply = (data: Uint8Array) => pg.apply([{ index: ++index, term: 1, type: EntryType.Normal, data }]);
  const page = (value: number, pages = 1) => new Uint8Array(pages * B).fill(value);
  // NOCACHE (a writeback export wrote these; it reads them from its own cache): nothing inserted.
  await apply(encodePgExtentsOp('a', [0, B, 2 * B, 2 * B], page(1, 3), DataFlag.NOCACHE));
  await apply(encodePgOp(DataOp.WRITE, 'a', 8 * B, B, page(2), DataFlag.NOCACHE));
  assert.is(cached.cachedBlocks, 0, 'NOCACHE writes leave the cache as it was');
  // Without it the leader keeps them, to serve the reads.
  await apply(encodePgExtentsOp('b', [0, B, 2 * B, 2 * B], page(3, 3)));
  await apply(encodePgOp(DataOp.WRITE, 'b', 8 * B, B, page(4)));
  assert.is(cached.cachedBlocks, 4);
  // A NOCACHE write over cached blocks updates them: the cache never serves the bytes of before.
  await apply(encodePgExtentsOp('b', [0, B, 8 * B, B], page(5, 2), DataFlag.NOCACHE));
  assert.is(cached.cachedBlocks, 4);
  const misses = cached.misses;
  assert.equal(Buffer.from(await store.objects.read('1.0', 'b', 0, B)), Buffer.from(page(5)));
  assert.equal(Buffer.from(await store.objects.read('1.0', 'b', 8 * B, B)), Buffer.from(page(5)));
  assert.equal(Buffer.from(await store.objects.read('1.0', 'b', 2 * B, 2 * B)), Buffer.from(page(3, 2)));
  assert.is(cached.misses, misses, 'served from the cache');
  // And what NOCACHE wrote reads back from the device.
  assert.equal(Buffer.from(await store.objects.read('1.0', 'a', 0, 4 * B)), Buffer.concat([page(1), page(0), page(1, 2)]));
  assert.is(pg.appliedIndex, 5);
  await store.close();
});

test.run();
