/**
 * The NVMe/TCP target's writeback exports (the kernel's WriteBackVolume as the namespace's volume,
 * ONE per subsystem, shared by every controller and queue), over real sockets with the test host
 * and memory volumes whose writes a test holds:
 *
 * Identify Controller shows VWC and Get Features 0x06 reports WCE 1 (a writethrough export beside
 * it keeps VWC 0 and no 0x06 feature); a Write completes while the volume's write is held and
 * another controller reads it; a Flush on another controller (another host) completes only once
 * the held writes are released; a FUA write waits for its own write-back, and so does every write
 * of a controller whose host set WCE 0; `ls` details show the mode and dirty bytes, then 0.
 * Removing the export drains and removes the log, and a create of the image meanwhile waits for
 * that drain; a second cache of the image (another NQN) and a writethrough export beside a
 * writeback one are BUSY; a writethrough export writes back a log an earlier process left.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { openWriteBack } from '../../kernel/block/write-back-volume.js';
import type { BlockVolume, BlockVolumeProvider, BlockWriteOptions } from '../../kernel/contracts/block.js';
import type { ExportInfo } from '../../kernel/contracts/frontend.js';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { NvmfTarget } from '../../plugins/frontend-nvmf/target.js';
import { writeBackPath } from '../../kernel/block/export-cache.js';
import { MemoryVolumeProvider } from '../support/memory-volume.js';
import { HOST_NQN } from './support/host-pdu.js';
import { TestHost, sc, type Reply } from './support/test-host.js';

const test = suite('nvmf: write-back cache');
const MiB = 1024 * 1024;
const NQN = 'nqn.2024-01.io.fastblock:rbd:disk0';
const log = pino({ level: process.env.NVMF_TEST_LOG ?? 'silent' });

/** Memory volumes whose writes (and write-zeroes, discards) wait while the gate is held. */
class Gate {
  readonly memory = new MemoryVolumeProvider(16 * MiB);
  private holding = false;
  private waiting: (() => void)[] = [];
  /** Volume writes that reached the gate (held or not). */
  reached = 0;

  readonly provider: BlockVolumeProvider = {
    open: async (name) => {
      const volume = await this.memory.open(name);
      const gate = (): Promise<void> => {
        this.reached++;
        return this.holding ? new Promise<void>((resolve) => this.waiting.push(resolve)) : Promise.resolve();
      };
      return Object.assign(Object.create(volume) as BlockVolume, {
        write: (offset: number, data: readonly Uint8Array[], options?: BlockWriteOptions) => gate().then(() => volume.write(offset, data, options)),
        writeZeroes: (offset: number, length: number, options?: BlockWriteOptions) => gate().then(() => volume.writeZeroes(offset, length, options)),
        discard: (offset: number, length: number) => gate().then(() => volume.discard(offset, length)),
      });
    },
    list: () => this.memory.list(),
  };

  hold(): void {
    this.holding = true;
  }

  get held(): number {
    return this.waiting.length;
  }

  release(): void {
    this.holding = false;
    for (const go of this.waiting.splice(0)) go();
  }

  /** The bytes the volume itself holds (not the log). */
  async volumeBytes(name: string, offset: number, length: number): Promise<Buffer> {
    const volume = await this.memory.open(name);
    return Buffer.from(await volume.read(offset, length));
  }
}

let dir: string;
let gate: Gate;
let target: NvmfTarget;

test.before.each(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fastblock-nvmf-wb-'));
  gate = new Gate();
  gate.memory.create('rbd/disk0');
  gate.memory.create('rbd/disk1');
  target = new NvmfTarget(gate.provider, log, { port: 0, sizeCheckMs: 1000, writeBackDir: dir, writeBackBytes: 4 * MiB });
  await target.start();
});

test.after.each(async () => {
  try {
    gate.release();
    await target.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

interface Association {
  readonly admin: TestHost;
  readonly io: TestHost;
  close(): void;
}

/** An admin queue and one I/O queue on `nqn`, as a host (its own host NQN when `hostnqn` is given). */
async function associate(nqn: string, hostnqn = HOST_NQN): Promise<Association> {
  const admin = await TestHost.open(target.port);
  const connected = await admin.connectAdmin(nqn, 0, { hostnqn });
  assert.is(connected.cqe.status, 0, 'admin connect');
  assert.is((await admin.enable()).cqe.status, 0);
  const io = await TestHost.open(target.port);
  const r = await io.connectQueue({ qid: 1, sqsize: 127, cntlid: connected.cqe.dw0 & 0xffff, subnqn: nqn, hostnqn });
  assert.is(r.cqe.status, 0, 'io connect');
  return {
    admin,
    io,
    close: () => {
      io.close();
      admin.close();
    },
  };
}

function flush(io: TestHost, nsid = 1): Promise<Reply> {
  return io.command({ opcode: 0x00, nsid });
}

/** Whether `promise` settled within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  void promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((r) => setTimeout(r, ms));
  return settled;
}

async function until(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function details(nqn: string): NonNullable<ExportInfo['details']> {
  const info = target.listExports().find((e) => e.id === nqn);
  assert.ok(info, `export ${nqn} listed`);
  return info.details ?? {};
}

async function rejects(run: () => Promise<unknown>, code: ErrorCode, pattern?: RegExp): Promise<void> {
  try {
    await run();
  } catch (err) {
    assert.ok(isFastblockError(err, code), `expected ${code}: ${String(err)}`);
    if (pattern) assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test('Identify VWC and Get Features 0x06 for a writeback export; a writethrough one beside it unchanged', async () => {
  await target.createExport({ volume: 'rbd/disk0', options: { cache: 'writeback' } });
  const through = await target.createExport({ volume: 'rbd/disk1' });
  assert.equal(details(NQN), { cache: 'writeback', dirtyBytes: 0, dirtyRecords: 0, usedBytes: 0, capacityBytes: 4 * MiB, retries: 0, replayed: 0, absorbed: 0, readCacheBytes: 0, readCacheCapacityBytes: 64 * MiB, readCacheHits: 0, readCacheMisses: 0 });
  assert.equal(details(through.id), { cache: 'writethrough' });
  assert.ok(existsSync(writeBackPath(dir, 'rbd/disk0')), 'the log file');
  assert.not.ok(existsSync(writeBackPath(dir, 'rbd/disk1')), 'no log for a writethrough export');

  const wb = await associate(NQN);
  const ctrl = (await wb.admin.identify(1)).data;
  assert.is(ctrl[525]! & 1, 1, 'VWC present');
  const wce = await wb.admin.command({ opcode: 0x0a, cdw10: 0x06 });
  assert.is(wce.cqe.status, 0);
  assert.is(wce.cqe.dw0, 1, 'WCE enabled');
  assert.is((await wb.admin.command({ opcode: 0x0a, cdw10: 0x06 | (1 << 8) })).cqe.dw0, 1, 'default: enabled');
  assert.is((await wb.admin.command({ opcode: 0x0a, cdw10: 0x06 | (3 << 8) })).cqe.dw0, 0x4, 'changeable');
  wb.close();

  const wt = await associate(through.id);
  assert.is((await wt.admin.identify(1)).data[525], 0, 'no volatile write cache');
  assert.is(sc((await wt.admin.command({ opcode: 0x0a, cdw10: 0x06 })).cqe.status), 0x02, 'no write cache feature');
  assert.is(sc((await wt.admin.command({ opcode: 0x09, cdw10: 0x06, cdw11: 1 })).cqe.status), 0x02, 'nor can it be set');
  wt.close();
});

test('a Write completes while the volume holds it; another host reads it; a Flush from another host waits for the release', async () => {
  await target.createExport({ volume: 'rbd/disk0', options: { cache: 'writeback' } });
  const a = await associate(NQN);
  const b = await associate(NQN, 'nqn.2014-08.org.nvmexpress:uuid:b0b1b2b3-b4b5-b6b7-b8b9-babbbcbdbebf');
  gate.hold();
  const data = randomBytes(64 * 1024);
  const small = randomBytes(4096);
  assert.is((await a.io.write(1, 8, data)).cqe.status, 0, 'acknowledged from the log');
  assert.is((await a.io.write(1, 100, small)).cqe.status, 0);
  await until(() => gate.held === 2, 'both write-backs at the volume');
  assert.ok((await gate.volumeBytes('rbd/disk0', 8 * 4096, data.length)).every((byte) => byte === 0), 'not in the volume yet');
  const seen = await b.io.read(1, 8, 16);
  assert.is(seen.cqe.status, 0);
  assert.equal(Buffer.from(seen.data), data, 'the other host reads what the log holds');
  const dirty = details(NQN);
  assert.is(dirty.dirtyBytes, data.length + small.length);
  assert.is(dirty.dirtyRecords, 2);

  // The Flush comes from the other host's queue: the subsystem's one cache covers every queue's writes.
  const flushed = flush(b.io);
  assert.not.ok(await settlesWithin(flushed, 100), 'Flush waits for the held write-backs');
  gate.release();
  assert.is((await flushed).cqe.status, 0);
  assert.equal(await gate.volumeBytes('rbd/disk0', 8 * 4096, data.length), data, 'in the volume once flushed');
  assert.equal(await gate.volumeBytes('rbd/disk0', 100 * 4096, 4096), small);
  assert.is(details(NQN).dirtyBytes, 0);
  // Flush of all namespaces (NSID FFFFFFFFh) waits the same way.
  gate.hold();
  assert.is((await a.io.write(1, 200, small)).cqe.status, 0);
  const all = flush(a.io, 0xffffffff);
  assert.not.ok(await settlesWithin(all, 50), 'Flush of all namespaces waits');
  gate.release();
  assert.is((await all).cqe.status, 0);
  a.close();
  b.close();
});

test('a FUA write waits for its write-back; with WCE 0 every write of that controller does', async () => {
  await target.createExport({ volume: 'rbd/disk0', options: { cache: 'writeback' } });
  const a = await associate(NQN);
  gate.hold();
  const data = randomBytes(8192);
  const fua = a.io.write(1, 0, data, 4096, true);
  assert.not.ok(await settlesWithin(fua, 100), 'FUA write waits');
  assert.is((await a.io.write(1, 16, randomBytes(4096))).cqe.status, 0, 'a plain write beside it completes');
  gate.release();
  assert.is((await fua).cqe.status, 0);
  assert.equal(await gate.volumeBytes('rbd/disk0', 0, data.length), data);

  // The host disables the volatile write cache: its writes now complete only once written back.
  const set = await a.admin.command({ opcode: 0x09, cdw10: 0x06, cdw11: 0 });
  assert.is(set.cqe.status, 0);
  assert.is((await a.admin.command({ opcode: 0x0a, cdw10: 0x06 })).cqe.dw0, 0, 'WCE off');
  gate.hold();
  const plain = a.io.write(1, 32, randomBytes(4096));
  assert.not.ok(await settlesWithin(plain, 100), 'a write with WCE 0 waits');
  gate.release();
  assert.is((await plain).cqe.status, 0);
  // Another controller of the subsystem keeps the cache.
  const b = await associate(NQN, 'nqn.2014-08.org.nvmexpress:uuid:c0c1c2c3-c4c5-c6c7-c8c9-cacbcccdcecf');
  assert.is((await b.admin.command({ opcode: 0x0a, cdw10: 0x06 })).cqe.dw0, 1);
  gate.hold();
  assert.is((await b.io.write(1, 48, randomBytes(4096))).cqe.status, 0, 'acknowledged from the log');
  gate.release();
  a.close();
  b.close();
});

test('remove drains and removes the log; a create of the image meanwhile waits for the drain; BUSY for a second cache', async () => {
  const created = await target.createExport({ volume: 'rbd/disk0', options: { cache: 'writeback' } });
  const path = writeBackPath(dir, 'rbd/disk0');
  await rejects(() => target.createExport({ volume: 'rbd/disk0', options: { cache: 'writeback', nqn: 'nqn.2024-01.io.example:again' } }), ErrorCode.BUSY);
  await rejects(() => target.createExport({ volume: 'rbd/disk0', options: { nqn: 'nqn.2024-01.io.example:through' } }), ErrorCode.BUSY);
  assert.is(target.listExports().length, 1, 'the refused exports are not listed');

  const a = await associate(created.id);
  gate.hold();
  const data = randomBytes(16 * 1024);
  assert.is((await a.io.write(1, 4, data)).cqe.status, 0);
  const removed = target.removeExport(created.id);
  await a.io.closed;
  assert.not.ok(await settlesWithin(removed, 100), 'remove waits for the drain');
  assert.ok(existsSync(path), 'the log stays until drained');
  const recreated = target.createExport({ volume: 'rbd/disk0', options: { cache: 'writeback' } });
  assert.not.ok(await settlesWithin(recreated, 50), 'a create of the image waits for the drain');
  gate.release();
  await removed;
  assert.equal(await gate.volumeBytes('rbd/disk0', 4 * 4096, data.length), data, 'drained into the volume');
  const again = await recreated;
  assert.is(again.details?.cache, 'writeback');
  assert.is(again.details?.replayed, 0, 'nothing left to replay');
  await target.removeExport(again.id);
  assert.not.ok(existsSync(path), 'the log is removed with the export');
  a.close();
});

test('stop drains every writeback export', async () => {
  await target.createExport({ volume: 'rbd/disk0', options: { cache: 'writeback' } });
  const a = await associate(NQN);
  gate.hold();
  const data = randomBytes(4096);
  assert.is((await a.io.write(1, 1, data)).cqe.status, 0);
  const stopped = target.stop();
  assert.not.ok(await settlesWithin(stopped, 100), 'stop waits for the drain');
  gate.release();
  await stopped;
  assert.equal(await gate.volumeBytes('rbd/disk0', 4096, 4096), data);
  assert.not.ok(existsSync(writeBackPath(dir, 'rbd/disk0')));
  a.close();
});

test('a writethrough export writes back a log an earlier process left, before serving', async () => {
  // What a killed gateway leaves: a log with acknowledged records, its lock released. Its volume
  // never took the write (it died before the write-back).
  const inner = await gate.memory.open('rbd/disk0');
  const stuck = Object.assign(Object.create(inner) as BlockVolume, { write: () => new Promise<void>(() => undefined) });
  const earlier = openWriteBack(stuck, { path: writeBackPath(dir, 'rbd/disk0'), capacityBytes: 4 * MiB, log });
  const data = randomBytes(8192);
  await earlier.write(0, [data]);
  assert.is(earlier.stats().dirtyRecords, 1);
  earlier.abandon();
  assert.ok((await gate.volumeBytes('rbd/disk0', 0, data.length)).every((byte) => byte === 0), 'not in the volume');
  const created = await target.createExport({ volume: 'rbd/disk0' });
  assert.is(created.details?.cache, 'writethrough');
  assert.not.ok(existsSync(writeBackPath(dir, 'rbd/disk0')), 'the leftover log is written back and removed');
  const a = await associate(created.id);
  const back = await a.io.read(1, 0, 2);
  assert.equal(Buffer.from(back.data), data);
  a.close();
});

test.run();
