// vhost-user sessions against a test front-end speaking the protocol on the controller's socket,
// with guest memory in a memfd both sides map: negotiation and config, I/O on two queues completed
// out of order, and every malformed message: a wrong size, a missing fd, a bad version, an index out
// of range close that connection with a logged reason; an unknown request is refused and the session
// goes on; a guest that breaks a ring loses its connection while another controller keeps serving.
// A writeback controller completes an OUT whose volume write is held, and its FLUSH only once the
// write is in the volume; a writethrough one writes back a log an earlier process left first.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { BlockVolume } from '../../kernel/contracts/block.js';
import { openWriteBack } from '../../kernel/block/write-back-volume.js';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { VHOST_CONFIG_DEFAULTS } from '../../plugins/frontend-vhost/config.js';
import { VhostFrontend } from '../../plugins/frontend-vhost/frontend.js';
import { vhostNative } from '../../plugins/frontend-vhost/native.js';
import { BlkStatus, BlkType } from '../../plugins/frontend-vhost/blk-request.js';
import {
  BackendRequest,
  Feature,
  HEADER_SIZE,
  HeaderFlag,
  ProtocolFeature,
  Request,
  bits,
  encodeMessage,
  encodeU64,
  encodeVringState,
} from '../../plugins/frontend-vhost/protocol.js';
import { MemoryVolumeProvider } from '../support/memory-volume.js';
import { GuestRing, USER_BASE } from './guest-ring.js';

const native = vhostNative();
const MEMORY = 1024 * 1024;
const QSIZE = 32;
const logLines: string[] = [];
const log = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });

class NoReply extends Error {}

class TestFrontEnd {
  private readonly fd: number;
  private buffered = new Uint8Array(0);

  constructor(socket: string) {
    this.fd = native.connect(socket);
  }

  send(request: number, payload: Uint8Array = new Uint8Array(0), fds: number[] = [], flags: number = HeaderFlag.VERSION): void {
    native.send(this.fd, encodeMessage(request, payload, flags), fds);
  }

  sendRaw(bytes: Uint8Array): void {
    native.send(this.fd, bytes);
  }

  /** The next reply's payload, or 'closed' when the back-end hung up. */
  async reply(timeoutMs = 5000): Promise<Uint8Array | 'closed'> {
    const chunk = new Uint8Array(4096);
    for (let waited = 0; waited < timeoutMs; ) {
      if (this.buffered.length >= HEADER_SIZE) {
        const size = new DataView(this.buffered.buffer, this.buffered.byteOffset).getUint32(8, true);
        if (this.buffered.length >= HEADER_SIZE + size) {
          const payload = this.buffered.slice(HEADER_SIZE, HEADER_SIZE + size);
          this.buffered = this.buffered.slice(HEADER_SIZE + size);
          return payload;
        }
      }
      const [n, ...fds] = native.recv(this.fd, chunk);
      for (const fd of fds) native.close(fd);
      if (n === 0) return 'closed';
      if (n! > 0) {
        const joined = new Uint8Array(this.buffered.length + n!);
        joined.set(this.buffered);
        joined.set(chunk.subarray(0, n), this.buffered.length);
        this.buffered = joined;
        continue;
      }
      await sleep(2);
      waited += 2;
    }
    throw new NoReply();
  }

  async u64(request: number): Promise<bigint> {
    this.send(request);
    const r = await this.reply();
    assert.ok(r !== 'closed', `${request}: connection closed`);
    return new DataView((r as Uint8Array).buffer).getBigUint64(0, true);
  }

  close(): void {
    native.close(this.fd);
  }
}

interface Queue {
  ring: GuestRing;
  kick: number;
  call: number;
}

/** Negotiates, shares a memfd as guest memory and starts `queues` rings in it. */
async function attach(socket: string, queues: number): Promise<{ fe: TestFrontEnd; guest: Uint8Array; q: Queue[] }> {
  const fe = new TestFrontEnd(socket);
  const offered = await fe.u64(Request.GET_FEATURES);
  fe.send(Request.SET_FEATURES, encodeU64(offered & bits(Feature.VERSION_1, Feature.RING_EVENT_IDX, Feature.RING_INDIRECT_DESC, Feature.PROTOCOL_FEATURES, Feature.BLK_MQ)));
  const protocol = await fe.u64(Request.GET_PROTOCOL_FEATURES);
  fe.send(Request.SET_PROTOCOL_FEATURES, encodeU64(protocol));
  const memfd = native.memfd('test-guest', MEMORY);
  const guest = new Uint8Array(native.mmap(memfd, MEMORY, 0));
  const table = new Uint8Array(8 + 32);
  const view = new DataView(table.buffer);
  view.setUint32(0, 1, true);
  view.setBigUint64(8, 0n, true);
  view.setBigUint64(16, BigInt(MEMORY), true);
  view.setBigUint64(24, USER_BASE, true);
  fe.send(Request.SET_MEM_TABLE, table, [memfd], HeaderFlag.VERSION | HeaderFlag.NEED_REPLY);
  assert.equal(await fe.reply(), encodeU64(0n), 'SET_MEM_TABLE acknowledged');
  native.close(memfd);
  const q: Queue[] = [];
  for (let i = 0; i < queues; i++) {
    const ring = new GuestRing(guest, QSIZE, i * (MEMORY / queues));
    const kick = native.eventfd();
    const call = native.eventfd();
    fe.send(Request.SET_VRING_NUM, encodeVringState({ index: i, num: QSIZE }));
    const addr = new Uint8Array(40);
    const a = new DataView(addr.buffer);
    a.setUint32(0, i, true);
    a.setBigUint64(8, USER_BASE + BigInt(ring.desc), true);
    a.setBigUint64(16, USER_BASE + BigInt(ring.used), true);
    a.setBigUint64(24, USER_BASE + BigInt(ring.avail), true);
    fe.send(Request.SET_VRING_ADDR, addr);
    fe.send(Request.SET_VRING_BASE, encodeVringState({ index: i, num: 0 }));
    fe.send(Request.SET_VRING_CALL, encodeU64(BigInt(i)), [call]);
    fe.send(Request.SET_VRING_KICK, encodeU64(BigInt(i)), [kick]);
    fe.send(Request.SET_VRING_ENABLE, encodeVringState({ index: i, num: 1 }), [], HeaderFlag.VERSION | HeaderFlag.NEED_REPLY);
    assert.equal(await fe.reply(), encodeU64(0n));
    q.push({ ring, kick, call });
  }
  return { fe, guest, q };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 2) {
    if (waited > 5000) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** A volume whose writes wait until the test opens the gate. */
function gated(volume: BlockVolume): { volume: BlockVolume; open: () => void } {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const wrapper = Object.assign(Object.create(volume) as BlockVolume, {
    write: async (offset: number, data: readonly Uint8Array[]) => {
      await gate;
      return volume.write(offset, data);
    },
  });
  return { volume: wrapper, open };
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-vhost-session-'));
  const memory = new MemoryVolumeProvider(4 * 1024 * 1024);
  memory.create('rbd/a');
  memory.create('rbd/b');
  let gate: ReturnType<typeof gated> | undefined;
  const provider = {
    list: () => memory.list(),
    open: async (name: string) => {
      const v = await memory.open(name);
      if (name !== 'rbd/a') return v;
      gate = gated(v);
      return gate.volume;
    },
  };
  const writeBackDir = join(dir, 'write-back');
  const frontend = new VhostFrontend(provider, { ...VHOST_CONFIG_DEFAULTS, defaultQueues: 2, sizeCheckMs: 20, writeBackDir, writeBackMiB: 4 }, log);
  return {
    dir,
    writeBackDir,
    memory,
    frontend,
    openGate: () => gate?.open(),
    sock: (n: string) => join(dir, `${n}.sock`),
    /** Stops the frontend and removes the directory, even when the stop fails. */
    async stop(): Promise<void> {
      try {
        await frontend.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

test('negotiation: features, protocol features, queue count and the config space', async () => {
  const s = setup();
  try {
    await s.frontend.createExport({ volume: 'rbd/b', options: { socket: s.sock('b'), queues: 3 } });
    const fe = new TestFrontEnd(s.sock('b'));
    const features = await fe.u64(Request.GET_FEATURES);
    for (const bit of [Feature.VERSION_1, Feature.RING_INDIRECT_DESC, Feature.RING_EVENT_IDX, Feature.BLK_MQ, Feature.BLK_FLUSH, Feature.BLK_DISCARD, Feature.BLK_WRITE_ZEROES, Feature.BLK_BLK_SIZE, Feature.PROTOCOL_FEATURES]) {
      assert.ok(features & (1n << BigInt(bit)), `feature bit ${bit}`);
    }
    const protocol = await fe.u64(Request.GET_PROTOCOL_FEATURES);
    assert.is(protocol, bits(ProtocolFeature.MQ, ProtocolFeature.REPLY_ACK, ProtocolFeature.BACKEND_REQ, ProtocolFeature.CONFIG, ProtocolFeature.INFLIGHT_SHMFD));
    assert.is(await fe.u64(Request.GET_QUEUE_NUM), 3n);
    const access = new Uint8Array(12 + 60);
    new DataView(access.buffer).setUint32(4, 60, true);
    fe.send(Request.GET_CONFIG, access);
    const config = await fe.reply();
    assert.ok(config !== 'closed');
    const c = new DataView((config as Uint8Array).buffer, 12);
    assert.is(c.getBigUint64(0, true), (4n * 1024n * 1024n) / 512n);
    assert.is(c.getUint32(20, true), 4096);
    assert.is(c.getUint16(34, true), 3);
    // A front-end that does not wait for replies: every one still comes, in order.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 100; i++) fe.send(Request.GET_QUEUE_NUM);
      for (let i = 0; i < 100; i++) assert.equal(await fe.reply(), encodeU64(3n));
    }
    fe.close();
  } finally {
    await s.stop();
  }
});

test('a resized volume: a config change notice on the back-end channel, and the config space has the new capacity', async () => {
  const s = setup();
  const channelPath = join(s.dir, 'backend-channel.sock');
  const listening = native.listen(channelPath);
  try {
    await s.frontend.createExport({ volume: 'rbd/b', options: { socket: s.sock('b'), queues: 1 } });
    const fe = new TestFrontEnd(s.sock('b'));
    fe.send(Request.SET_PROTOCOL_FEATURES, encodeU64(bits(ProtocolFeature.REPLY_ACK, ProtocolFeature.BACKEND_REQ, ProtocolFeature.CONFIG)));
    // The front-end's end of the channel stays here; the other end goes to the back-end.
    const theirs = native.connect(channelPath);
    let ours = -1;
    for (let i = 0; i < 100 && ours < 0; i++, await sleep(5)) ours = native.accept(listening);
    assert.ok(ours >= 0, 'channel accepted');
    fe.send(Request.SET_BACKEND_REQ_FD, new Uint8Array(0), [theirs], HeaderFlag.VERSION | HeaderFlag.NEED_REPLY);
    native.close(theirs);
    assert.equal(await fe.reply(), encodeU64(0n), 'SET_BACKEND_REQ_FD acknowledged');

    (await s.memory.open('rbd/b')).resize(12 * 1024 * 1024);
    const notice = new Uint8Array(64);
    let got = 0;
    for (let waited = 0; waited < 5000 && got < HEADER_SIZE; waited += 5) {
      const [n] = native.recv(ours, notice.subarray(got));
      if (n! > 0) got += n!;
      else await sleep(5);
    }
    const header = new DataView(notice.buffer);
    assert.is(got, HEADER_SIZE, 'one header, no payload');
    assert.is(header.getUint32(0, true), BackendRequest.CONFIG_CHANGE_MSG);
    assert.is(header.getUint32(4, true), HeaderFlag.VERSION, 'no reply asked for');
    assert.is(header.getUint32(8, true), 0);

    const access = new Uint8Array(12 + 8);
    new DataView(access.buffer).setUint32(4, 8, true);
    fe.send(Request.GET_CONFIG, access);
    const config = await fe.reply();
    assert.ok(config !== 'closed');
    assert.is(new DataView((config as Uint8Array).buffer, 12).getBigUint64(0, true), (12n * 1024n * 1024n) / 512n);
    fe.close();
    native.close(ours);
  } finally {
    native.close(listening);
    await s.stop();
  }
});

test('two queues at once, completed out of order, signalled through the call eventfds', async () => {
  const s = setup();
  try {
    await s.frontend.createExport({ volume: 'rbd/a', options: { socket: s.sock('a'), queues: 2 } });
    const { fe, q } = await attach(s.sock('a'), 2);
    const [q0, q1] = q as [Queue, Queue];
    // queue 0: a write that waits on the gate, then a read that does not
    const data = Uint8Array.from({ length: 4096 }, (_, i) => i & 0xff);
    const write = q0.ring.chain([q0.ring.header(BlkType.OUT, 8), { address: q0.ring.alloc(4096, data), length: 4096 }, q0.ring.status()]);
    const readBuf = q0.ring.alloc(4096);
    const read = q0.ring.indirect([q0.ring.header(BlkType.IN, 0), { address: readBuf, length: 4096, write: true }, q0.ring.status()]);
    q0.ring.publish(write);
    q0.ring.publish(read);
    native.eventfdWrite(q0.kick);
    // queue 1: a flush
    const flush = q1.ring.chain([q1.ring.header(BlkType.FLUSH, 0), q1.ring.status()]);
    q1.ring.publish(flush);
    native.eventfdWrite(q1.kick);
    await until(() => q0.ring.usedIdx() === 1 && q1.ring.usedIdx() === 1, 'the read and the flush');
    assert.equal(q0.ring.usedElem(0), { id: read, len: 4097 }, 'the later read completes first');
    assert.equal(q1.ring.usedElem(0), { id: flush, len: 1 });
    assert.ok(native.eventfdRead(q0.call) > 0 && native.eventfdRead(q1.call) > 0, 'both queues signalled');
    assert.is(q0.ring.availEvent(), 2, 'with the write still in flight, the next entry kicks');
    s.openGate();
    await until(() => q0.ring.usedIdx() === 2, 'the gated write');
    assert.equal(q0.ring.usedElem(1), { id: write, len: 1 });
    const v = await s.memory.open('rbd/a');
    assert.equal(await v.read(4096, 4096), data);
    // A new kick fd for a running queue: the old one is closed, the new one wakes the queue.
    const kick = native.eventfd();
    fe.send(Request.SET_VRING_KICK, encodeU64(1n), [kick]);
    await sleep(20);
    q1.ring.publish(q1.ring.chain([q1.ring.header(BlkType.FLUSH, 0), q1.ring.status()]));
    native.eventfdWrite(kick);
    await until(() => q1.ring.usedIdx() === 2, 'a kick on the new fd');
    native.close(kick);
    fe.close();
  } finally {
    s.openGate();
    await s.stop();
  }
});

test('malformed messages close only their connection; unknown ones are refused and the session goes on', async () => {
  const s = setup();
  try {
    await s.frontend.createExport({ volume: 'rbd/b', options: { socket: s.sock('b'), queues: 1 } });
    const openFds = readdirSync('/proc/self/fd').length;
    const closes = async (name: string, send: (fe: TestFrontEnd) => void) => {
      const fe = new TestFrontEnd(s.sock('b'));
      await fe.u64(Request.GET_FEATURES);
      const before = logLines.length;
      send(fe);
      assert.is(await fe.reply(), 'closed', name);
      assert.ok(logLines.slice(before).some((l) => l.includes('vhost-user connection closed')), `${name}: reason logged`);
      fe.close();
      await sleep(5);
    };
    await closes('SET_FEATURES with a 4-byte payload', (fe) => fe.send(Request.SET_FEATURES, new Uint8Array(4)));
    await closes('SET_VRING_KICK without its fd', (fe) => fe.send(Request.SET_VRING_KICK, encodeU64(0n)));
    await closes('SET_MEM_TABLE naming 2 regions with 1 fd', (fe) => {
      const t = new Uint8Array(8 + 64);
      new DataView(t.buffer).setUint32(0, 2, true);
      const fd = native.memfd('x', 4096);
      fe.send(Request.SET_MEM_TABLE, t, [fd]);
      native.close(fd);
    });
    await closes('SET_INFLIGHT_FD without its fd', (fe) => fe.send(Request.SET_INFLIGHT_FD, new Uint8Array(24)));
    await closes('GET_QUEUE_NUM with a payload', (fe) => fe.send(Request.GET_QUEUE_NUM, new Uint8Array(8)));
    await closes('a wrong protocol version', (fe) => fe.send(Request.GET_FEATURES, new Uint8Array(0), [], 0x2));
    await closes('a payload larger than any message', (fe) => {
      const header = new Uint8Array(12);
      const h = new DataView(header.buffer);
      h.setUint32(0, Request.SET_CONFIG, true);
      h.setUint32(4, HeaderFlag.VERSION, true);
      h.setUint32(8, 1 << 20, true);
      fe.send(Request.GET_FEATURES); // a well-formed one first, answered
      fe.sendRaw(header);
    });
    await closes('SET_VRING_NUM for a queue the device does not have', (fe) => fe.send(Request.SET_VRING_NUM, encodeVringState({ index: 5, num: 32 })));
    await closes('SET_VRING_NUM that is not a power of two', (fe) => fe.send(Request.SET_VRING_NUM, encodeVringState({ index: 0, num: 100 })));
    await closes('SET_FEATURES acking a feature never offered', (fe) => fe.send(Request.SET_FEATURES, encodeU64(1n << 60n)));

    const fe = new TestFrontEnd(s.sock('b'));
    fe.send(Request.SET_PROTOCOL_FEATURES, encodeU64(bits(ProtocolFeature.REPLY_ACK)));
    const before = logLines.length;
    const stray = native.eventfd();
    fe.send(99, new Uint8Array(8), [stray], HeaderFlag.VERSION | HeaderFlag.NEED_REPLY);
    native.close(stray);
    assert.equal(await fe.reply(), encodeU64(1n), 'unknown request answered with a failure');
    assert.ok(logLines.slice(before).some((l) => l.includes('unsupported vhost-user request')), 'refusal logged');
    assert.ok((await fe.u64(Request.GET_QUEUE_NUM)) === 1n, 'the session goes on');
    fe.close();
    await sleep(20);
    assert.is(readdirSync('/proc/self/fd').length, openFds, 'every fd that came with a refused or malformed message is closed');
  } finally {
    await s.stop();
  }
});

test('a guest that breaks its ring loses its connection; another controller and a reconnect go on', async () => {
  const s = setup();
  try {
    await s.frontend.createExport({ volume: 'rbd/a', options: { socket: s.sock('a'), queues: 1 } });
    await s.frontend.createExport({ volume: 'rbd/b', options: { socket: s.sock('b'), queues: 1 } });
    s.openGate();
    const bad = await attach(s.sock('a'), 1);
    const good = await attach(s.sock('b'), 1);
    const ring = bad.q[0]!.ring;
    const err = native.eventfd();
    bad.fe.send(Request.SET_VRING_ERR, encodeU64(0n), [err]);
    ring.setDesc(0, 4096, 16, 1, 1); // 0 -> 1 -> 0: a loop
    ring.setDesc(1, 4096, 16, 1, 0);
    ring.publish(0);
    native.eventfdWrite(bad.q[0]!.kick);
    assert.is(await bad.fe.reply(), 'closed');
    assert.is(native.eventfdRead(err), 1, 'the error eventfd was signalled');
    native.close(err);
    assert.ok(logLines.some((l) => l.includes('the guest broke a ring') && l.includes('loop')));

    const g = good.q[0]!.ring;
    const goodStatus = g.status();
    g.publish(g.chain([g.header(BlkType.FLUSH, 0), goodStatus]));
    native.eventfdWrite(good.q[0]!.kick);
    await until(() => g.usedIdx() === 1, 'the other controller to serve');
    assert.is(good.guest[goodStatus.address], BlkStatus.OK);

    // the broken controller takes a new front-end
    const again = await attach(s.sock('a'), 1);
    const r = again.q[0]!.ring;
    const status = r.status();
    r.publish(r.chain([r.header(BlkType.FLUSH, 0), status]));
    native.eventfdWrite(again.q[0]!.kick);
    await until(() => r.usedIdx() === 1, 'the reconnected front-end to be served');
    assert.is(again.guest[status.address], BlkStatus.OK);
    for (const c of [bad, good, again]) c.fe.close();
  } finally {
    await s.stop();
  }
  assert.not.ok(existsSync(s.sock('a')), 'removing a controller removes its socket');
});

test('a reconnect waits until the dead session has no request left that could write guest memory', async () => {
  const s = setup();
  try {
    await s.frontend.createExport({ volume: 'rbd/a', options: { socket: s.sock('a'), queues: 1 } });
    const first = await attach(s.sock('a'), 1);
    const ring = first.q[0]!.ring;
    const data = new Uint8Array(4096).fill(0x5a);
    ring.publish(ring.chain([ring.header(BlkType.OUT, 0), { address: ring.alloc(4096, data), length: 4096 }, ring.status()]));
    native.eventfdWrite(first.q[0]!.kick);
    await sleep(20);
    first.fe.close(); // the write is held at the gate, in flight

    const second = new TestFrontEnd(s.sock('a'));
    second.send(Request.GET_FEATURES);
    try {
      await second.reply(200);
      assert.unreachable('the new session answered while the old one still had a request in flight');
    } catch (err) {
      assert.instance(err, NoReply);
    }
    s.openGate();
    assert.ok((await second.reply()) !== 'closed', 'served once the old request finished');
    assert.is(ring.usedIdx(), 0, 'the dead session never touched the used ring');
    const v = await s.memory.open('rbd/a');
    assert.equal(await v.read(0, 4096), data, 'the write itself reached the volume');
    second.close();
  } finally {
    s.openGate();
    await s.stop();
  }
});

test('writeback: an OUT completes while the volume write is held, FLUSH waits for it, ls shows the dirty bytes', async () => {
  const s = setup();
  try {
    const created = await s.frontend.createExport({ volume: 'rbd/a', options: { socket: s.sock('a'), queues: 1, cache: 'writeback' } });
    assert.equal(created.details, { cache: 'writeback', dirtyBytes: 0, dirtyRecords: 0, usedBytes: 0, capacityBytes: 4 * 1024 * 1024, retries: 0, replayed: 0, absorbed: 0, readCacheBytes: 0, readCacheCapacityBytes: 64 * 1024 * 1024, readCacheHits: 0, readCacheMisses: 0 });
    const logFile = join(s.writeBackDir, 'rbd%2Fa.wblog');
    assert.ok(existsSync(logFile), 'the log is a file under writeBackDir named after the volume');
    assert.is(statSync(s.writeBackDir).mode & 0o777, 0o700, 'writeBackDir is created private');
    assert.ok(logLines.some((l) => l.includes('vhost controller created') && l.includes('"cache":"writeback"')), 'the mode is logged');

    const { fe, q } = await attach(s.sock('a'), 1);
    const r = q[0]!.ring;
    const data = Uint8Array.from({ length: 8192 }, (_, i) => (i * 7) & 0xff);
    const writeStatus = r.status();
    r.publish(r.chain([r.header(BlkType.OUT, 16), { address: r.alloc(8192, data), length: 8192 }, writeStatus]));
    native.eventfdWrite(q[0]!.kick);
    await until(() => r.usedIdx() === 1, 'the OUT, acknowledged from the log while the volume write is held');
    assert.is(s.frontend.listExports()[0]!.details?.dirtyBytes, 8192);
    assert.is(s.frontend.listExports()[0]!.details?.dirtyRecords, 1);
    assert.is(s.frontend.listExports()[0]!.details?.usedBytes, 8192 + 40);
    const inner = await s.memory.open('rbd/a');
    assert.equal(await inner.read(8192, 8192), new Uint8Array(8192), 'the volume does not have it yet');

    const flushStatus = r.status();
    r.publish(r.chain([r.header(BlkType.FLUSH, 0), flushStatus]));
    native.eventfdWrite(q[0]!.kick);
    await sleep(100);
    assert.is(r.usedIdx(), 1, 'FLUSH waits while the write-back is held');
    s.openGate();
    await until(() => r.usedIdx() === 2, 'the FLUSH, once the write is in the volume');
    assert.is(q[0]!.ring.bytes[writeStatus.address], BlkStatus.OK);
    assert.is(q[0]!.ring.bytes[flushStatus.address], BlkStatus.OK);
    assert.equal(await inner.read(8192, 8192), data, 'the volume has the write');
    const after = s.frontend.listExports()[0]!.details;
    assert.is(after?.dirtyBytes, 0);
    assert.is(after?.dirtyRecords, 0);

    // Read back through the controller.
    const into = r.alloc(8192);
    r.publish(r.chain([r.header(BlkType.IN, 16), { address: into, length: 8192, write: true }, r.status()]));
    native.eventfdWrite(q[0]!.kick);
    await until(() => r.usedIdx() === 3, 'the read');
    assert.equal(q[0]!.ring.bytes.slice(into, into + 8192), data);
    fe.close();

    await s.frontend.removeExport(s.sock('a'));
    assert.not.ok(existsSync(logFile), 'removing the controller drains and removes its log');
    assert.not.ok(existsSync(`${logFile}.lock`), 'and its lock');
  } finally {
    s.openGate();
    await s.stop();
  }
});

test('cache modes: an unknown one is refused and leaves nothing behind; a log held by this process is BUSY', async () => {
  const s = setup();
  try {
    try {
      await s.frontend.createExport({ volume: 'rbd/b', options: { socket: s.sock('b'), queues: 1, cache: 'writearound' } });
      assert.unreachable('an unknown cache mode was accepted');
    } catch (err) {
      assert.ok(isFastblockError(err, ErrorCode.INVALID_ARGUMENT), String(err));
    }
    assert.not.ok(existsSync(s.sock('b')));
    assert.equal(s.frontend.listExports(), []);

    const wt = await s.frontend.createExport({ volume: 'rbd/b', options: { socket: s.sock('b'), queues: 1 } });
    assert.equal(wt.details, { cache: 'writethrough' }, 'the configured default');
    await s.frontend.createExport({ volume: 'rbd/a', options: { socket: s.sock('a1'), queues: 1, cache: 'writeback' } });
    try {
      await s.frontend.createExport({ volume: 'rbd/a', options: { socket: s.sock('a2'), queues: 1, cache: 'writeback' } });
      assert.unreachable('a second write-back cache of one volume was opened');
    } catch (err) {
      assert.ok(isFastblockError(err, ErrorCode.BUSY), String(err));
    }
    assert.not.ok(existsSync(s.sock('a2')));
    assert.is(s.frontend.listExports().length, 2);
  } finally {
    s.openGate();
    await s.stop();
  }
});

test('a writethrough controller writes back the log an earlier (killed) process left before serving', async () => {
  const s = setup();
  try {
    mkdirSync(s.writeBackDir, { recursive: true });
    const logFile = join(s.writeBackDir, 'rbd%2Fb.wblog');
    // An earlier process's cache: it acknowledged a write its volume never finished, then died.
    const stuck = await s.memory.open('rbd/b');
    const never: BlockVolume = Object.assign(Object.create(stuck) as BlockVolume, { write: () => new Promise<void>(() => {}) });
    const earlier = openWriteBack(never, { path: logFile, capacityBytes: 4 * 1024 * 1024, log });
    const data = new Uint8Array(4096).fill(0xa5);
    await earlier.write(12288, [data]);
    assert.is(earlier.stats().dirtyBytes, 4096);
    earlier.abandon(); // what its death leaves: the log, no owner

    const before = logLines.length;
    await s.frontend.createExport({ volume: 'rbd/b', options: { socket: s.sock('b'), queues: 1, cache: 'writethrough' } });
    const lines = logLines.slice(before).join('\n');
    assert.match(lines, 'write-back log replayed');
    assert.match(lines, 'writing it back before serving writethrough');
    assert.equal(await (await s.memory.open('rbd/b')).read(12288, 4096), data, 'the acknowledged write reached the volume');
    assert.not.ok(existsSync(logFile), 'the log is gone');
    assert.not.ok(existsSync(`${logFile}.lock`));
  } finally {
    await s.stop();
  }
});

test.run();
