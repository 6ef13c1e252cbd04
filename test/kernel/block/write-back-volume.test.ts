// The write-back cache over a volume whose completions the test controls: acknowledgement before
// the volume has the data, reads and flushes that wait for it, order of overlapping writes and of
// barriers, ring wrap and backpressure, retries and dropped writes, the lock, writes around the
// log, and replay of a log left behind (torn tail included). The kill -9 of a real process is in
// write-back-kill.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, openSync, readSync, rmSync, unlinkSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { ErrorCode, isFastblockError } from '../../../kernel/errors.js';
import { silentLogger } from '../../../kernel/logger.js';
import { openWriteBack, type WriteBackVolume } from '../../../kernel/block/write-back-volume.js';
import { HEADER_BYTES, RECORD_HEADER } from '../../../kernel/block/write-back-log.js';
import { ControlledVolume } from './controlled-volume.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { kernelAddon } from '../../../kernel/native.js';

/** A process holding the flock of `path` (util-linux flock(1)), once it holds it. */
function flockHolder(path: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    // Its own process group: the lock's descriptor is shared with the command flock(1) runs, and both must go.
    const child = spawn('flock', ['-n', path, 'sh', '-c', 'echo held; exec sleep 60'], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    child.once('error', reject);
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`flock(1) exited ${code}`)));
  });
}

const KiB = 1024;
const MiB = 1024 * KiB;
const dirs: string[] = [];

function logPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-wb-'));
  dirs.push(dir);
  return join(dir, 'rbd%2Fwb.wblog');
}

function open(inner: ControlledVolume, path: string, capacityBytes = 4 * MiB, retryMs = 1): WriteBackVolume {
  return openWriteBack(inner, { path, capacityBytes, log: silentLogger(), retryMs });
}

function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (seed * 31 + i * 7) & 0xff;
  return bytes;
}

async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await tick();
}


test.after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

test('a write is acknowledged before the volume has it; a read and a flush wait for it', async () => {
  const inner = new ControlledVolume();
  inner.hold = true;
  const path = logPath();
  const wb = open(inner, path);
  const data = pattern(8 * KiB, 1);
  await wb.write(4 * KiB, [data]);
  assert.is(inner.pending.length, 1, 'the write-back is in flight');
  assert.is(wb.stats().dirtyBytes, 8 * KiB);

  let read: Uint8Array | undefined;
  let flushed = false;
  const reading = wb.read(0, 16 * KiB).then((bytes) => (read = bytes));
  const flushing = wb.flush().then(() => (flushed = true));
  await settle();
  assert.is(read, undefined, 'the read waits for the write it overlaps');
  assert.is(flushed, false, 'the flush waits for the write-back');

  // A read of blocks nobody wrote does not wait.
  assert.equal(await wb.read(1 * MiB, 4 * KiB), new Uint8Array(4 * KiB));

  await inner.pending[0]!.release();
  await reading;
  await flushing;
  assert.equal(read!.subarray(4 * KiB, 12 * KiB), data);
  assert.is(inner.flushes, 1, 'the flush reaches the volume after the write-back');
  assert.is(wb.stats().dirtyBytes, 0);
  await wb.close();
  assert.ok(inner.closed);
  assert.not.ok(existsSync(path), 'a clean close removes the log');
  assert.not.ok(existsSync(`${path}.lock`));
});

test('a read of what pending writes hold is served from the ring, the newest write of each block winning', async () => {
  const inner = new ControlledVolume();
  inner.hold = true;
  const wb = open(inner, logPath());
  const a = pattern(8 * KiB, 1);
  const b = pattern(4 * KiB, 2);
  await wb.write(0, [a]);
  await wb.write(4 * KiB, [b]);
  // Both are held: an answer now can only come from the ring.
  assert.equal(await wb.read(0, 8 * KiB), Uint8Array.from([...a.subarray(0, 4 * KiB), ...b]));
  assert.equal(await wb.read(6 * KiB, 1 * KiB), b.subarray(2 * KiB, 3 * KiB));
  const into = new Uint8Array(4 * KiB);
  assert.is(await wb.read(0, 4 * KiB, into), into, 'into the caller\'s buffer');
  assert.equal(into, a.subarray(0, 4 * KiB));
  // A 512-byte write covers only part of its block: the rest is the volume's, so the read waits.
  await wb.write(64 * KiB, [pattern(512, 3)]);
  let partial: Uint8Array | undefined;
  const reading = wb.read(64 * KiB, 4 * KiB).then((bytes) => (partial = bytes));
  await settle();
  assert.is(partial, undefined);
  await inner.releaseAllNewestFirst();
  await reading;
  assert.equal(partial!.subarray(0, 512), pattern(512, 3));
  assert.equal(partial!.subarray(512), new Uint8Array(4 * KiB - 512));
  await wb.close();
});

test('overlapping writes reach the volume in the order they were acknowledged; others run at once', async () => {
  const inner = new ControlledVolume();
  inner.hold = true;
  const wb = open(inner, logPath());
  await wb.write(0, [pattern(4 * KiB, 1)]);
  await wb.write(0, [pattern(8 * KiB, 2)]); // overlaps the first
  await wb.write(64 * KiB, [pattern(4 * KiB, 3)]); // overlaps nothing
  await settle();
  assert.equal(
    inner.pending.map((op) => op.offset),
    [0, 64 * KiB],
    'the second write to block 0 waits for the first',
  );
  await inner.pending[0]!.release();
  await settle();
  assert.equal(
    inner.pending.map((op) => [op.offset, op.length]),
    [
      [64 * KiB, 4 * KiB],
      [0, 8 * KiB],
    ],
  );
  await inner.releaseAllNewestFirst();
  await wb.flush();
  assert.equal(await inner.read(0, 8 * KiB), pattern(8 * KiB, 2));
  await wb.close();
});

test('a discard is a barrier: after what came before it, before what comes after', async () => {
  const inner = new ControlledVolume();
  inner.hold = true;
  const wb = open(inner, logPath());
  await wb.write(0, [pattern(4 * KiB, 1)]);
  await wb.write(1 * MiB, [pattern(4 * KiB, 2)]);
  await wb.discard(0, 2 * MiB);
  await wb.write(1 * MiB, [pattern(4 * KiB, 3)]);
  await wb.write(3 * MiB, [pattern(4 * KiB, 4)]); // outside the discard, still after it
  await settle();
  assert.equal(inner.pending.map((op) => op.kind), ['write', 'write']);
  for (const op of [...inner.pending].reverse()) await op.release();
  await settle();
  assert.equal(inner.pending.map((op) => op.kind), ['discard']);
  let zeroRead: Uint8Array | undefined;
  const reading = wb.read(0, 4 * KiB).then((bytes) => (zeroRead = bytes));
  await settle();
  assert.is(zeroRead, undefined, 'a read waits for a pending discard');
  await inner.pending[0]!.release();
  await settle();
  assert.equal(inner.pending.map((op) => op.offset).sort(), [1 * MiB, 3 * MiB]);
  await inner.releaseAllNewestFirst();
  await wb.flush();
  await reading;
  assert.equal(zeroRead, new Uint8Array(4 * KiB));
  assert.equal(await wb.read(1 * MiB, 4 * KiB), pattern(4 * KiB, 3));
  assert.equal(await wb.read(3 * MiB, 4 * KiB), pattern(4 * KiB, 4));
  await wb.close();
});

test('a full ring makes writes wait (not fail) until write-back frees it; the ring wraps', async () => {
  const inner = new ControlledVolume();
  inner.hold = true;
  const wb = open(inner, logPath(), 1 * MiB);
  const record = 64 * KiB;
  const acked: number[] = [];
  const writes: Promise<void>[] = [];
  for (let i = 0; i < 20; i++) writes.push(wb.write(i * record, [pattern(record, i)]).then(() => void acked.push(i)));
  await settle();
  assert.ok(acked.length >= 14 && acked.length < 16, `about 1 MiB acknowledged (${acked.length} records of 64 KiB + headers)`);
  assert.equal(acked, [...acked].sort((a, b) => a - b), 'in order');
  while (inner.pending.length > 0) {
    await inner.pending[0]!.release();
    await settle();
  }
  await Promise.all(writes);
  assert.is(acked.length, 20);
  // Several more laps with the volume completing at once.
  inner.hold = false;
  for (let i = 0; i < 100; i++) await wb.write((i % 40) * record, [pattern(record, 100 + i)]);
  await wb.flush();
  for (let i = 60; i < 100; i++) assert.equal(await inner.read((i % 40) * record, record), pattern(record, 100 + i), `record ${i}`);
  await wb.close();
});

test('a write-back that fails for a while is retried in order; one that cannot succeed is reported by the next flush', async () => {
  const inner = new ControlledVolume();
  const wb = open(inner, logPath());
  inner.failures.push(ErrorCode.TIMEOUT, ErrorCode.NOT_LEADER);
  await wb.write(0, [pattern(4 * KiB, 1)]);
  await wb.write(0, [pattern(4 * KiB, 2)]);
  await wb.flush();
  assert.is(wb.stats().retries, 2);
  assert.equal(await inner.read(0, 4 * KiB), pattern(4 * KiB, 2), 'the retried write did not land over the later one');

  inner.failures.push(ErrorCode.INVALID_ARGUMENT);
  await wb.write(8 * KiB, [pattern(4 * KiB, 3)]);
  try {
    await wb.flush();
    assert.unreachable('the dropped write is reported');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.IO_ERROR), String(err));
    assert.match((err as Error).message, 'could not be written back');
  }
  await wb.flush(); // reported once
  inner.failures.push(ErrorCode.INVALID_ARGUMENT);
  try {
    await wb.write(12 * KiB, [pattern(4 * KiB, 4)], { fua: true });
    assert.unreachable('a FUA write waits for its write-back and sees its failure');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.INVALID_ARGUMENT), String(err));
  }
  await wb.close();
});

test('under load the ready writes of one object go back together (writeMany); under none each goes at once, alone', async () => {
  const inner = new ControlledVolume('rbd/wb', 64 * MiB, 1 * MiB);
  inner.hold = true;
  const wb = openWriteBack(inner, { path: logPath(), capacityBytes: 4 * MiB, log: silentLogger(), retryMs: 1, maxInFlight: 1 });
  await wb.write(0, [pattern(4 * KiB, 1)]);
  await settle();
  assert.equal(inner.pending.map((op) => [op.kind, op.offset]), [['write', 0]], 'nothing else waits: the write goes at once, alone');
  await wb.write(8 * KiB, [pattern(4 * KiB, 2)]);
  await wb.write(1 * MiB + 4 * KiB, [pattern(4 * KiB, 3)]); // another object
  await wb.write(16 * KiB, [pattern(8 * KiB, 4)]);
  await wb.write(1 * MiB - 4 * KiB, [pattern(8 * KiB, 5)]); // across two objects: never grouped
  await wb.write(12 * KiB, [pattern(4 * KiB, 6)]);
  await settle();
  assert.is(inner.pending.length, 1, 'one call in flight at most');
  await inner.pending[0]!.release();
  await settle();
  assert.equal(
    inner.pending.map((op) => [op.kind, op.offsets ?? op.offset]),
    [['many', [8 * KiB, 16 * KiB, 12 * KiB]]],
    'the oldest ready write leads, and takes the other ready writes of its object along',
  );
  await inner.pending[0]!.release();
  await settle();
  assert.equal(inner.pending.map((op) => [op.kind, op.offset]), [['write', 1 * MiB + 4 * KiB]], 'alone in its object');
  await inner.pending[0]!.release();
  await settle();
  assert.equal(inner.pending.map((op) => [op.kind, op.offset]), [['write', 1 * MiB - 4 * KiB]]);
  await inner.pending[0]!.release();
  await wb.flush();
  for (const [offset, length, seed] of [[0, 4, 1], [8, 4, 2], [1024 + 4, 4, 3], [16, 8, 4], [1024 - 4, 8, 5], [12, 4, 6]] as const) {
    assert.equal(await inner.read(offset * KiB, length * KiB), pattern(length * KiB, seed), `bytes at ${offset} KiB`);
  }
  await wb.close();
});

test('overlapping writes never share a group: the later one goes after the earlier is in the volume', async () => {
  const inner = new ControlledVolume('rbd/wb', 64 * MiB, 1 * MiB);
  inner.hold = true;
  const wb = openWriteBack(inner, { path: logPath(), capacityBytes: 4 * MiB, log: silentLogger(), retryMs: 1, maxInFlight: 1 });
  await wb.write(64 * KiB, [pattern(4 * KiB, 1)]);
  await wb.write(0, [pattern(8 * KiB, 2)]);
  await wb.write(4 * KiB, [pattern(8 * KiB, 3)]); // overlaps the one before, without covering it
  await wb.write(32 * KiB, [pattern(4 * KiB, 4)]);
  await settle();
  await inner.pending[0]!.release();
  await settle();
  assert.equal(inner.pending.map((op) => op.offsets ?? op.offset), [[0, 32 * KiB]], 'the overlapping write waits');
  await inner.pending[0]!.release();
  await settle();
  assert.equal(inner.pending.map((op) => [op.kind, op.offset, op.length]), [['write', 4 * KiB, 8 * KiB]]);
  await inner.pending[0]!.release();
  await wb.flush();
  assert.ok(Buffer.from(await inner.read(0, 12 * KiB)).equals(Buffer.concat([pattern(8 * KiB, 2).subarray(0, 4 * KiB), pattern(8 * KiB, 3)])));
  assert.is(wb.stats().absorbed, 0);
  await wb.close();
});

test('a write that covers a waiting one takes its place: the earlier is never sent, unless something waits for it or it is on its way', async () => {
  const inner = new ControlledVolume('rbd/wb', 64 * MiB, 1 * MiB);
  const path = logPath();
  const wb = openWriteBack(inner, { path, capacityBytes: 4 * MiB, log: silentLogger(), retryMs: 1, holdMs: 60_000 });
  await wb.write(0, [pattern(4 * KiB, 1)]);
  await wb.write(8 * KiB, [pattern(8 * KiB, 2)]);
  await wb.write(0, [pattern(4 * KiB, 3)]); // covers the first: absorbs it
  await wb.write(4 * KiB, [pattern(16 * KiB, 4)]); // covers the second whole
  await wb.write(64 * KiB, [pattern(8 * KiB, 5)]);
  await wb.write(68 * KiB, [pattern(4 * KiB, 6)]); // inside the one before, not covering it: both go
  assert.is(wb.stats().absorbed, 2);
  assert.is(wb.stats().dirtyRecords, 4);
  // Reads of the log see the newest bytes.
  assert.ok(Buffer.from(await wb.read(0, 8 * KiB)).equals(Buffer.concat([pattern(4 * KiB, 3), pattern(16 * KiB, 4).subarray(0, 4 * KiB)])));
  // A replay after a death writes every record in order: the log still holds the absorbed ones.
  wb.abandon();
  const replayed = new ControlledVolume('rbd/wb', 64 * MiB, 1 * MiB);
  const again = openWriteBack(replayed, { path, capacityBytes: 4 * MiB, log: silentLogger(), retryMs: 1, holdMs: 60_000 });
  assert.is(again.stats().replayed, 6);
  await again.flush();
  const expected = new Uint8Array(72 * KiB);
  expected.set(pattern(4 * KiB, 3), 0);
  expected.set(pattern(16 * KiB, 4), 4 * KiB);
  expected.set(pattern(8 * KiB, 5), 64 * KiB);
  expected.set(pattern(4 * KiB, 6), 68 * KiB);
  assert.ok(Buffer.from(await replayed.read(0, 72 * KiB)).equals(expected), 'the volume holds the newest bytes');
  const sent = replayed.applied.flatMap((op) => op.offsets ?? [op.offset]).sort((a, b) => a - b);
  assert.equal(sent, [0, 4 * KiB, 64 * KiB, 68 * KiB], 'the two covered writes were never sent');
  await again.close();

  // Waited for (a flush or a FUA write hurried it) or already on its way: never absorbed.
  const busy = new ControlledVolume('rbd/wb', 64 * MiB, 1 * MiB);
  busy.hold = true;
  const live = openWriteBack(busy, { path: logPath(), capacityBytes: 4 * MiB, log: silentLogger(), retryMs: 1, holdMs: 60_000 });
  await live.write(0, [pattern(4 * KiB, 7)]);
  const flushed = live.flush();
  await settle();
  assert.is(busy.pending.length, 1, 'the flush sent it');
  await live.write(0, [pattern(4 * KiB, 8)]);
  await live.write(128 * KiB, [pattern(4 * KiB, 9)]);
  const fua = live.write(256 * KiB, [pattern(4 * KiB, 10)], { fua: true });
  await settle();
  await live.write(256 * KiB, [pattern(4 * KiB, 11)]);
  assert.is(live.stats().absorbed, 0);
  busy.hold = false;
  for (const op of busy.pending.splice(0)) await op.release();
  await flushed;
  await fua;
  await live.flush();
  assert.equal(await busy.read(0, 4 * KiB), pattern(4 * KiB, 8));
  assert.equal(await busy.read(256 * KiB, 4 * KiB), pattern(4 * KiB, 11));
  await live.close();
});

test('a write queued behind a write-back of its blocks is not absorbed: the later write would not wait for that one', async () => {
  const inner = new ControlledVolume('rbd/wb', 64 * MiB, 1 * MiB);
  inner.hold = true;
  const wb = openWriteBack(inner, { path: logPath(), capacityBytes: 4 * MiB, log: silentLogger(), retryMs: 1, holdMs: 60_000 });
  await wb.write(0, [pattern(4 * KiB, 1)]);
  const flushed = wb.flush(); // hurries the first write
  await settle();
  assert.is(inner.pending.length, 1, 'the first write is on its way');
  await wb.write(0, [pattern(4 * KiB, 2)]); // waits for the first
  await wb.write(0, [pattern(4 * KiB, 3)]); // covers the second, which waits: no absorption
  assert.is(wb.stats().absorbed, 0);
  inner.hold = false;
  await inner.pending.shift()!.release();
  await flushed;
  await wb.close();
  assert.equal(await inner.read(0, 4 * KiB), pattern(4 * KiB, 3), 'the newest write landed last');
  assert.equal(inner.applied.map((op) => op.offsets ?? [op.offset]).flat(), [0, 0, 0]);
});

test('a write a flush waits for is not absorbed while it queues: the flush returns once its bytes are in the volume', async () => {
  const inner = new ControlledVolume('rbd/wb', 64 * MiB, 1 * MiB);
  inner.hold = true;
  const wb = openWriteBack(inner, { path: logPath(), capacityBytes: 4 * MiB, log: silentLogger(), retryMs: 1, holdMs: 60_000, maxInFlight: 1 });
  await wb.write(2 * MiB, [pattern(4 * KiB, 1)]); // another object: its own call
  await wb.write(0, [pattern(4 * KiB, 2)]);
  const flushed = wb.flush();
  await settle();
  assert.is(inner.pending.length, 1, 'one call in flight; the second write queues, hurried');
  await wb.write(0, [pattern(4 * KiB, 3)]); // covers the queued one, held for a minute
  assert.is(wb.stats().absorbed, 0);
  inner.hold = false;
  await inner.pending.shift()!.release();
  await flushed;
  assert.equal(await inner.read(0, 4 * KiB), pattern(4 * KiB, 2), 'the flush covered the write it was called after');
  await wb.close();
  assert.equal(await inner.read(0, 4 * KiB), pattern(4 * KiB, 3));
});

test('a group that fails for a while is retried; one refused for good goes again one write at a time, and only the refused write is dropped', async () => {
  const inner = new ControlledVolume('rbd/wb', 64 * MiB, 1 * MiB);
  inner.hold = true;
  const wb = openWriteBack(inner, { path: logPath(), capacityBytes: 4 * MiB, log: silentLogger(), retryMs: 1, maxInFlight: 1 });
  await wb.write(512 * KiB, [pattern(4 * KiB, 9)]);
  for (let i = 0; i < 4; i++) await wb.write(i * 8 * KiB, [pattern(4 * KiB, 10 + i)]);
  await settle();
  inner.failures.push(ErrorCode.TIMEOUT);
  inner.hold = false;
  await inner.pending[0]!.release();
  await wb.flush();
  assert.ok(wb.stats().retries >= 4, `retries ${wb.stats().retries}`);
  for (let i = 0; i < 4; i++) assert.equal(await inner.read(i * 8 * KiB, 4 * KiB), pattern(4 * KiB, 10 + i));

  inner.hold = true;
  await wb.write(512 * KiB, [pattern(4 * KiB, 19)]);
  for (let i = 0; i < 4; i++) await wb.write(i * 8 * KiB, [pattern(4 * KiB, 20 + i)]);
  await settle();
  // The group is refused, then its first write alone; the other three land.
  inner.failures.push(ErrorCode.INVALID_ARGUMENT, ErrorCode.INVALID_ARGUMENT);
  inner.hold = false;
  await inner.pending[0]!.release();
  try {
    await wb.flush();
    assert.unreachable('the dropped write is reported');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.IO_ERROR), String(err));
  }
  // Which write goes alone first (and is refused) is the cache's choice: they are independent.
  const landed: number[] = [];
  for (let i = 0; i < 4; i++) {
    const now = await inner.read(i * 8 * KiB, 4 * KiB);
    if (Buffer.from(now).equals(pattern(4 * KiB, 20 + i))) landed.push(i);
    else assert.equal(now, pattern(4 * KiB, 10 + i), `block ${i}: the earlier bytes, its write dropped`);
  }
  assert.is(landed.length, 3, 'only the refused write was dropped');
  const last = inner.applied.slice(-3);
  assert.equal(last.map((op) => op.kind), ['write', 'write', 'write'], 'after the refusal each write went alone');
  assert.equal(last.map((op) => op.offset).sort((a, b) => a - b), landed.map((i) => i * 8 * KiB));
  await wb.close();
});

test('holdMs: a write waits in the log so that others of its object join it; whatever waits for it does not', async () => {
  const inner = new ControlledVolume('rbd/wb', 64 * MiB, 1 * MiB);
  const wb = openWriteBack(inner, { path: logPath(), capacityBytes: 4 * MiB, log: silentLogger(), retryMs: 1, holdMs: 60_000 });
  await wb.write(0, [pattern(4 * KiB, 1)]);
  await wb.write(16 * KiB, [pattern(4 * KiB, 2)]);
  await settle();
  assert.equal(inner.applied, [], 'held: nothing went yet');
  await wb.flush();
  assert.equal(inner.applied.map((op) => [op.kind, op.offsets]), [['many', [0, 16 * KiB]]], 'a flush sends them at once, together');

  await wb.write(32 * KiB, [pattern(4 * KiB, 3)]);
  await wb.write(48 * KiB, [pattern(4 * KiB, 4)], { fua: true });
  assert.equal(inner.applied.slice(1).map((op) => [op.kind, op.offsets]), [['many', [32 * KiB, 48 * KiB]]], 'a FUA write does not wait out the hold');

  await wb.write(64 * KiB, [pattern(4 * KiB, 5)]);
  await settle();
  assert.is(inner.applied.length, 2);
  // Half the bytes come from the volume: the read needs the held write in it first.
  const read = await wb.read(60 * KiB, 8 * KiB);
  assert.ok(Buffer.from(read).equals(Buffer.concat([new Uint8Array(4 * KiB), pattern(4 * KiB, 5)])), 'the read sees the held write');
  assert.equal(inner.applied.slice(2).map((op) => [op.kind, op.offset]), [['write', 64 * KiB]], 'a read of the volume does not wait out the hold');

  // Past half the ring, nothing is held.
  for (let i = 0; i < 2 * 256; i++) await wb.write(1 * MiB + i * 4 * KiB, [pattern(4 * KiB, 6)]);
  await settle();
  assert.ok(inner.applied.length > 3, 'a ring over half full is written back without waiting');
  await wb.close();

  const timed = new ControlledVolume('rbd/wb', 64 * MiB, 1 * MiB);
  const short = openWriteBack(timed, { path: logPath(), capacityBytes: 4 * MiB, log: silentLogger(), retryMs: 1, holdMs: 50 });
  await short.write(0, [pattern(4 * KiB, 7)]);
  await settle();
  assert.equal(timed.applied, []);
  await new Promise((resolve) => setTimeout(resolve, 120));
  assert.equal(timed.applied.map((op) => [op.kind, op.offset]), [['write', 0]], 'the hold ends on its own');
  await short.close();
});

test('a write larger than an eighth of the ring goes around it, after what is pending', async () => {
  const inner = new ControlledVolume();
  inner.hold = true;
  const path = logPath();
  const wb = open(inner, path, 1 * MiB);
  await wb.write(0, [pattern(4 * KiB, 1)]);
  let bigDone = false;
  const big = wb.write(0, [pattern(256 * KiB, 2)]).then(() => (bigDone = true));
  let afterAcked = false;
  const after = wb.write(512 * KiB, [pattern(4 * KiB, 3)]).then(() => (afterAcked = true));
  await settle();
  assert.equal(inner.pending.map((op) => op.length), [4 * KiB], 'the big write waits for the pending record');
  assert.not.ok(afterAcked, 'what comes after the big write waits for it');
  await inner.pending[0]!.release();
  await settle();
  assert.equal(inner.pending.map((op) => op.length), [256 * KiB]);
  await inner.pending[0]!.release();
  await big;
  await after;
  assert.ok(bigDone && afterAcked);
  await inner.releaseAllNewestFirst();
  await wb.flush();
  assert.equal(await inner.read(0, 256 * KiB), pattern(256 * KiB, 2));
  await wb.close();
});

test('a log left behind is replayed on open, in order; a torn record ends it', async () => {
  const path = logPath();
  const first = new ControlledVolume();
  first.hold = true;
  const wb = open(first, path);
  await wb.write(0, [pattern(4 * KiB, 1)]);
  await wb.writeZeroes(64 * KiB, 64 * KiB);
  await wb.write(0, [pattern(4 * KiB, 2)]);
  await wb.write(8 * KiB, [pattern(4 * KiB, 3)]);
  await wb.write(16 * KiB, [pattern(4 * KiB, 4)]); // torn below
  wb.abandon(); // as if the process died: nothing more reaches the file

  // The last record's data is damaged, as a write cut by the death would leave it.
  const recordBytes = RECORD_HEADER + 4 * KiB;
  const lastData = HEADER_BYTES + 3 * recordBytes + RECORD_HEADER;
  const fd = openSync(path, 'r+');
  writeSync(fd, new Uint8Array([0xff, 0xfe]), 0, 2, lastData + RECORD_HEADER + 100);
  closeSync(fd);

  const second = new ControlledVolume();
  await second.memory.write(64 * KiB, [pattern(64 * KiB, 9)]);
  const replay = open(second, path);
  assert.is(replay.stats().replayed, 4);
  await replay.flush();
  assert.equal(await second.read(0, 4 * KiB), pattern(4 * KiB, 2));
  assert.equal(await second.read(8 * KiB, 4 * KiB), pattern(4 * KiB, 3));
  assert.equal(await second.read(64 * KiB, 64 * KiB), new Uint8Array(64 * KiB), 'the write-zeroes replayed');
  assert.equal(await second.read(16 * KiB, 4 * KiB), new Uint8Array(4 * KiB), 'the torn record is not replayed');
  assert.equal(
    second.applied.map((op) => op.kind),
    ['write', 'zeroes', 'write', 'write'],
  );
  // Writes after the replay go on from where the log ended.
  await replay.write(16 * KiB, [pattern(4 * KiB, 5)]);
  replay.abandon();
  const third = new ControlledVolume();
  const again = open(third, path);
  await again.flush();
  assert.equal(await third.read(16 * KiB, 4 * KiB), pattern(4 * KiB, 5));
  await again.close();
});

test('replay after wrapping the ring starts at the persisted tail and finds every later record', async () => {
  const path = logPath();
  const first = new ControlledVolume();
  const wb = open(first, path, 1 * MiB);
  const record = 48 * KiB;
  for (let i = 0; i < 50; i++) await wb.write((i % 16) * record, [pattern(record, i)]);
  await wb.flush();
  await settle(); // the header names the new tail
  first.hold = true;
  for (let i = 50; i < 60; i++) await wb.write((i % 16) * record, [pattern(record, i)]);
  wb.abandon();
  const second = new ControlledVolume();
  for (let i = 0; i < 50; i++) await second.memory.write((i % 16) * record, [pattern(record, i)]);
  const replay = open(second, path, 1 * MiB);
  assert.ok(replay.stats().replayed >= 10, `replayed ${replay.stats().replayed}`);
  await replay.flush();
  for (let i = 44; i < 60; i++) assert.equal(await second.read((i % 16) * record, record), pattern(record, i), `record ${i}`);
  await replay.close();
});

test('the lock: a live owner is refused, a dead one is taken over; a log of another volume is refused', async () => {
  const path = logPath();
  const wb = open(new ControlledVolume(), path);
  try {
    open(new ControlledVolume(), path);
    assert.unreachable('a second open is refused');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.BUSY), String(err));
  }
  wb.abandon();
  assert.not.ok(existsSync(`${path}.lock`), 'abandon() lets the lock go');
  // A live owner that is not us: with the kernel addon, a process holding the flock (util-linux's
  // flock(1), as another gateway would); without it, a lock file naming a live PID.
  const holder = kernelAddon?.flockExclusive ? await flockHolder(`${path}.lock`) : undefined;
  if (!holder) writeFileSync(`${path}.lock`, String(process.ppid));
  try {
    open(new ControlledVolume(), path);
    assert.unreachable('a live owner keeps it');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.BUSY), String(err));
    assert.match((err as Error).message, 'is in use by');
  } finally {
    if (holder?.pid !== undefined) process.kill(-holder.pid, 'SIGKILL');
  }
  if (holder) {
    await new Promise((resolve) => holder.once('exit', resolve));
    // Its death lets the flock go, whatever the file says. flock(1) is reaped first; the sleep it
    // ran, which shares the lock's descriptor, may die a moment later on a loaded machine.
    let after: WriteBackVolume | undefined;
    for (let waited = 0; after === undefined; waited += 20) {
      try {
        after = open(new ControlledVolume(), path);
      } catch (err) {
        if (!isFastblockError(err, ErrorCode.BUSY) || waited >= 5000) throw err;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    after.abandon();
  }
  // Our own PID with another start time: the gateway of the last container, which had this PID too.
  writeFileSync(`${path}.lock`, `${process.pid} 1`);
  const reborn = open(new ControlledVolume(), path);
  assert.ok(existsSync(`${path}.lock`));
  await reborn.write(0, [pattern(4 * KiB, 1)]);
  reborn.abandon();
  writeFileSync(`${path}.lock`, '999999999 5'); // a dead owner
  const other = new ControlledVolume('rbd/other');
  try {
    open(other, path);
    assert.unreachable('the log of rbd/wb is not rbd/other\'s');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.ALREADY_EXISTS), String(err));
  }
  assert.ok(existsSync(`${path}.lock`) === false, 'a refused open leaves no lock behind');
  unlinkSync(path);
});

test('a log being made when its process died (path.new) is not taken for a log; stats count what is dirty', async () => {
  const path = logPath();
  writeFileSync(`${path}.new`, Buffer.alloc(HEADER_BYTES + MiB));
  const inner = new ControlledVolume();
  inner.hold = true;
  const wb = open(inner, path, MiB);
  assert.is(wb.stats().replayed, 0);
  assert.not.ok(existsSync(`${path}.new`), 'replaced by the new log');
  await wb.write(0, [pattern(4 * KiB, 1)]);
  await wb.write(64 * KiB, [pattern(4 * KiB, 2)]);
  await wb.write(128 * KiB, [pattern(4 * KiB, 3)]);
  await inner.pending[2]!.release();
  assert.is(wb.stats().dirtyRecords, 2, 'a record written back behind a pending one is not dirty');
  assert.is(wb.stats().dirtyBytes, 8 * KiB);
  await inner.releaseAllNewestFirst();
  await wb.close();
});

test('a file that is not a write-back log is refused, not overwritten', () => {
  const path = logPath();
  writeFileSync(path, Buffer.alloc(HEADER_BYTES + MiB, 7));
  try {
    open(new ControlledVolume(), path);
    assert.unreachable('bad magic');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.CORRUPT), String(err));
  }
  const bytes = Buffer.alloc(16);
  const fd = openSync(path, 'r');
  readSync(fd, bytes, 0, 16, 0);
  closeSync(fd);
  assert.equal([...bytes], new Array(16).fill(7));
});

test.run();
