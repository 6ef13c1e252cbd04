// Split rings, virtio-blk requests and inflight records against rings built by hand in a buffer:
// the well-formed paths (direct and indirect chains, every request type, event-idx) and every
// malformed case the guest can produce. Nothing outside the status byte may change on a refusal.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SplitRing, RingError } from '../../plugins/frontend-vhost/split-ring.js';
import { BlkRequest, BlkStatus, BlkType, type BlkOutcome } from '../../plugins/frontend-vhost/blk-request.js';
import { InflightQueue, inflightQueueBytes } from '../../plugins/frontend-vhost/inflight.js';
import { blkConfigSpace } from '../../plugins/frontend-vhost/blk-config.js';
import { MemoryVolume } from '../support/memory-volume.js';
import { GuestRing, F_INDIRECT, F_NEXT, F_WRITE } from './guest-ring.js';

const SIZE = 16;
const noFence = (): void => {};

function setup(eventIdx = false) {
  const guest = new GuestRing(new Uint8Array(256 * 1024), SIZE);
  const memory = guest.memory();
  const ring = new SplitRing(guest.views(), eventIdx, (a, l) => memory.guest(a, l)?.[0], noFence);
  const volume = new MemoryVolume('rbd/t', 1024 * 1024);
  return { guest, memory, ring, volume };
}

function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

/** Runs a request to its end: its outcome as the queue hears of it. */
function execute(request: BlkRequest, volume: MemoryVolume): Promise<BlkOutcome> {
  return new Promise((resolve) =>
    request.execute(volume, 'rbd/t', (head, status, written, reason) => {
      assert.is(head, request.chain.head);
      resolve(reason === undefined ? { status, written } : { status, written, reason });
    }),
  );
}

async function run(s: ReturnType<typeof setup>, head: number) {
  s.guest.publish(head);
  const popped = s.ring.pop();
  assert.is(popped, head);
  const request = BlkRequest.map(s.memory, s.ring.chain(head));
  return execute(request, s.volume);
}

test('IN reads the volume straight into the guest buffers of a direct chain', async () => {
  const s = setup();
  await s.volume.write(8192, [pattern(8192, 7)]);
  const a = s.guest.alloc(4096);
  const b = s.guest.alloc(4096);
  const status = s.guest.status();
  const head = s.guest.chain([s.guest.header(BlkType.IN, 16), { address: a, length: 4096, write: true }, { address: b, length: 4096, write: true }, status]);
  const outcome = await run(s, head);
  assert.equal(outcome, { status: BlkStatus.OK, written: 8193 });
  assert.equal(s.guest.bytes.subarray(a, a + 4096), pattern(8192, 7).subarray(0, 4096));
  assert.equal(s.guest.bytes.subarray(b, b + 4096), pattern(8192, 7).subarray(4096));
  assert.is(s.guest.bytes[status.address], BlkStatus.OK);
});

test('OUT through an indirect table writes the guest views; header and data may share a descriptor', async () => {
  const s = setup();
  const data = pattern(4096, 3);
  const headerAndData = new Uint8Array(16 + 4096);
  new DataView(headerAndData.buffer).setUint32(0, BlkType.OUT, true);
  new DataView(headerAndData.buffer).setBigUint64(8, 2n, true);
  headerAndData.set(data, 16);
  const combined = s.guest.alloc(headerAndData.length, headerAndData);
  const head = s.guest.indirect([{ address: combined, length: headerAndData.length }, s.guest.status()]);
  const outcome = await run(s, head);
  assert.is(outcome.status, BlkStatus.OK);
  assert.equal(await s.volume.read(1024, 4096), data);
});

test("Linux's layout (header, data descriptors, status; indirect) reads and writes in place, and a failing volume gets IOERR", async () => {
  const s = setup();
  const first = pattern(4096, 5);
  const second = pattern(4096, 6);
  const out = s.guest.indirect([s.guest.header(BlkType.OUT, 64), { address: s.guest.alloc(4096, first), length: 4096 }, { address: s.guest.alloc(4096, second), length: 4096 }, s.guest.status()]);
  assert.equal(await run(s, out), { status: BlkStatus.OK, written: 1 });
  assert.equal(await s.volume.read(64 * 512, 8192), Uint8Array.from([...first, ...second]));

  const into = s.guest.alloc(8192);
  const status = s.guest.status();
  const read = s.guest.indirect([s.guest.header(BlkType.IN, 64), { address: into, length: 8192, write: true }, status]);
  assert.equal(await run(s, read), { status: BlkStatus.OK, written: 8193 });
  assert.equal(s.guest.bytes.subarray(into, into + 8192), Uint8Array.from([...first, ...second]));
  assert.is(s.guest.bytes[status.address], BlkStatus.OK);

  const failing = Object.assign(Object.create(s.volume) as MemoryVolume, { write: () => Promise.reject(new Error('the cluster said no')) });
  const refused = s.guest.indirect([s.guest.header(BlkType.OUT, 0), { address: s.guest.alloc(4096, first), length: 4096 }, s.guest.status()]);
  s.guest.publish(refused);
  assert.is(s.ring.pop(), refused);
  assert.equal(await execute(BlkRequest.map(s.memory, s.ring.chain(refused)), failing), { status: BlkStatus.IOERR, written: 1, reason: 'the cluster said no' });
});

test('FLUSH, GET_ID, DISCARD and WRITE_ZEROES', async () => {
  const s = setup();
  await s.volume.write(0, [pattern(65536, 1)]);
  assert.is((await run(s, s.guest.chain([s.guest.header(BlkType.FLUSH, 0), s.guest.status()]))).status, BlkStatus.OK);
  assert.is(s.volume.stats.flushes, 1);

  const id = s.guest.alloc(20);
  const getId = await run(s, s.guest.chain([s.guest.header(BlkType.GET_ID, 0), { address: id, length: 20, write: true }, s.guest.status()]));
  assert.equal(getId, { status: BlkStatus.OK, written: 21 });
  assert.is(new TextDecoder().decode(s.guest.bytes.subarray(id, id + 5)), 'rbd/t');

  const range = (sector: number, sectors: number, flags: number) => {
    const bytes = new Uint8Array(16);
    const v = new DataView(bytes.buffer);
    v.setBigUint64(0, BigInt(sector), true);
    v.setUint32(8, sectors, true);
    v.setUint32(12, flags, true);
    return { address: s.guest.alloc(16, bytes), length: 16 };
  };
  assert.is((await run(s, s.guest.chain([s.guest.header(BlkType.DISCARD, 0), range(8, 8, 0), s.guest.status()]))).status, BlkStatus.OK);
  assert.is((await run(s, s.guest.chain([s.guest.header(BlkType.WRITE_ZEROES, 0), range(32, 16, 1), s.guest.status()]))).status, BlkStatus.OK);
  assert.equal(await s.volume.read(4096, 4096), new Uint8Array(4096));
  assert.equal(await s.volume.read(16384, 8192), new Uint8Array(8192));
  assert.equal(await s.volume.read(0, 4096), pattern(65536, 1).subarray(0, 4096));
  const badFlags = await run(s, s.guest.chain([s.guest.header(BlkType.DISCARD, 0), range(0, 8, 1), s.guest.status()]));
  assert.is(badFlags.status, BlkStatus.UNSUPP);
});

test('a request the guest got wrong gets an error status and changes nothing else', async () => {
  const s = setup();
  await s.volume.write(0, [pattern(4096, 9)]);
  const cases: [string, () => number, number][] = [
    ['data descriptor outside guest memory', () => s.guest.chain([s.guest.header(BlkType.OUT, 0), { address: 10 * 1024 * 1024, length: 4096 }, s.guest.status()]), BlkStatus.IOERR],
    ['data descriptor straddling the end of guest memory', () => s.guest.chain([s.guest.header(BlkType.IN, 0), { address: 256 * 1024 - 512, length: 4096, write: true }, s.guest.status()]), BlkStatus.IOERR],
    ['header shorter than 16 bytes', () => s.guest.chain([{ address: s.guest.alloc(8), length: 8 }, s.guest.status()]), BlkStatus.IOERR],
    ['read past the end of the volume', () => s.guest.chain([s.guest.header(BlkType.IN, 2048), { address: s.guest.alloc(512), length: 512, write: true }, s.guest.status()]), BlkStatus.IOERR],
    ['write not a multiple of 512', () => s.guest.chain([s.guest.header(BlkType.OUT, 0), { address: s.guest.alloc(100), length: 100 }, s.guest.status()]), BlkStatus.IOERR],
    ['unknown request type', () => s.guest.chain([s.guest.header(99, 0), s.guest.status()]), BlkStatus.UNSUPP],
  ];
  for (const [name, build, expected] of cases) {
    const head = build();
    s.guest.publish(head);
    const before = s.guest.bytes.slice();
    const writes = s.volume.stats.writes;
    assert.is(s.ring.pop(), head);
    const outcome = await execute(BlkRequest.map(s.memory, s.ring.chain(head)), s.volume);
    assert.is(outcome.status, expected, name);
    const last = s.ring.chain(head).segments.at(-1)!;
    const changed = s.guest.bytes.findIndex((byte, i) => byte !== before[i]);
    assert.is(changed, last.address, `${name}: only the status byte changes`);
    assert.is(s.volume.stats.writes, writes, `${name}: the volume is not written`);
  }
  assert.equal(await s.volume.read(0, 4096), pattern(4096, 9));
});

test('malformed chains are RingErrors', () => {
  const expectRingError = (name: string, head: number, build: (s: ReturnType<typeof setup>) => void) => {
    const s = setup();
    build(s);
    assert.throws(() => s.ring.chain(head), (err: unknown) => err instanceof RingError, name);
  };
  expectRingError('a loop: chain longer than the queue', 0, (s) => {
    s.guest.setDesc(0, 4096, 16, F_NEXT, 1);
    s.guest.setDesc(1, 8192, 16, F_NEXT, 0);
  });
  expectRingError('next outside the table', 0, (s) => s.guest.setDesc(0, 4096, 16, F_NEXT, SIZE));
  expectRingError('head outside the table', SIZE, () => {});
  expectRingError('readable after writable', 0, (s) => {
    s.guest.setDesc(0, 4096, 16, F_WRITE | F_NEXT, 1);
    s.guest.setDesc(1, 8192, 16, 0, 0);
  });
  expectRingError('indirect with NEXT', 0, (s) => s.guest.setDesc(0, 8192, 32, F_INDIRECT | F_NEXT, 1));
  expectRingError('indirect length not a multiple of 16', 0, (s) => s.guest.setDesc(0, 8192, 24, F_INDIRECT, 0));
  expectRingError('indirect table outside guest memory', 0, (s) => s.guest.setDesc(0, 1 << 30, 32, F_INDIRECT, 0));
  expectRingError('indirect inside indirect', 0, (s) => {
    const table = s.guest.alloc(32);
    s.guest.setDesc(0, 8192, 16, F_INDIRECT, 0, table);
    s.guest.setDesc(0, table, 32, F_INDIRECT, 0);
  });
  expectRingError('a loop inside an indirect table', 0, (s) => {
    const table = s.guest.alloc(32);
    s.guest.setDesc(0, 4096, 16, F_NEXT, 1, table);
    s.guest.setDesc(1, 4096, 16, F_NEXT, 0, table);
    s.guest.setDesc(0, table, 32, F_INDIRECT, 0);
  });
  expectRingError('address beyond 2^53', 0, (s) => s.guest.setDesc(0, 1n << 60n, 16, 0, 0));

  const s = setup();
  s.guest.setAvailIdx(SIZE + 1);
  assert.throws(() => s.ring.pop(), (err: unknown) => err instanceof RingError, 'avail idx more than a queue ahead');
  const t = setup();
  t.guest.publish(SIZE + 3);
  assert.throws(() => t.ring.pop(), (err: unknown) => err instanceof RingError, 'avail entry outside the table');
  const u = setup();
  const head = u.guest.chain([u.guest.header(BlkType.FLUSH, 0)]);
  assert.throws(() => BlkRequest.map(u.memory, u.ring.chain(head)), (err: unknown) => err instanceof RingError, 'no status byte');
  const v = setup();
  const head2 = v.guest.chain([v.guest.header(BlkType.FLUSH, 0), { address: 1 << 30, length: 1, write: true }]);
  assert.throws(() => BlkRequest.map(v.memory, v.ring.chain(head2)), (err: unknown) => err instanceof RingError, 'status outside guest memory');
});

test('used ring order: completions in any order, element before idx', () => {
  const s = setup();
  s.ring.pushUsed(5, 1);
  s.ring.pushUsed(2, 4097);
  assert.is(s.guest.usedIdx(), 2);
  assert.equal(s.guest.usedElem(0), { id: 5, len: 1 });
  assert.equal(s.guest.usedElem(1), { id: 2, len: 4097 });
});

test('event-idx: signal only when used idx passes used_event; avail_event asks for the next kick', () => {
  const s = setup(true);
  s.guest.setUsedEvent(0);
  s.ring.pushUsed(0, 1);
  assert.ok(s.ring.shouldSignal(), 'the first completion always signals');
  s.guest.setUsedEvent(5);
  s.ring.pushUsed(1, 1);
  assert.not.ok(s.ring.shouldSignal(), 'used idx 2 has not passed used_event 5');
  for (let i = 0; i < 4; i++) s.ring.pushUsed(2 + i, 1);
  assert.ok(s.ring.shouldSignal(), 'used idx 6 passed used_event 5');
  s.guest.publish(s.guest.chain([s.guest.header(BlkType.FLUSH, 0), s.guest.status()]));
  s.ring.pop();
  assert.not.ok(s.ring.armKick());
  assert.is(s.guest.availEvent(), 1);
  s.guest.publish(s.guest.chain([s.guest.header(BlkType.FLUSH, 0), s.guest.status()]));
  assert.ok(s.ring.armKick(), 'an entry added without a kick is seen');

  const plain = setup(false);
  plain.ring.pushUsed(0, 1);
  assert.ok(plain.ring.shouldSignal());
  new DataView(plain.guest.bytes.buffer).setUint16(plain.guest.avail, 1, true); // VRING_AVAIL_F_NO_INTERRUPT
  assert.not.ok(plain.ring.shouldSignal());
});

test('inflight records survive a restart: oldest first, a half-finished completion settled', () => {
  const bytes = new Uint8Array(inflightQueueBytes(SIZE));
  const before = new InflightQueue(bytes, SIZE);
  before.take(3);
  before.take(7);
  before.take(1);
  // 7 completes fully
  before.beforeUsed(7);
  before.afterUsed(7, 1);
  // 3 reaches the used ring (used idx 2) and the process dies before its record is cleared
  before.beforeUsed(3);
  const after = new InflightQueue(bytes, SIZE);
  assert.equal(after.recover(2), [1]);
  // used idx never moved past 1: 3 is still in flight, and older than 1
  const again = new Uint8Array(inflightQueueBytes(SIZE));
  const q = new InflightQueue(again, SIZE);
  q.take(3);
  q.take(1);
  assert.equal(new InflightQueue(again, SIZE).recover(0), [3, 1]);
});

test('config space: capacity in sectors, 4 KiB blocks, queues and limits', () => {
  const space = new DataView(blkConfigSpace(64 * 1024 * 1024, 4096, 4).buffer);
  assert.is(space.getBigUint64(0, true), 131072n);
  assert.is(space.getUint32(20, true), 4096);
  assert.is(space.getUint16(34, true), 4);
  assert.ok(space.getUint32(12, true) > 0, 'seg_max');
  assert.ok(space.getUint32(8, true) >= 4096, 'size_max');
  assert.ok(space.getUint32(36, true) > 0 && space.getUint32(48, true) > 0, 'discard and write-zeroes limits');
  assert.is(space.getUint32(44, true), 8, 'discard alignment: one block');
});

test.run();
