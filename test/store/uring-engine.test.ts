/**
 * The io_uring engine on a real file: operations complete in any order with their own outcome,
 * a short transfer and a kernel error each fail only their own operation with a typed error that
 * says what was asked, and more operations than tags wait for a tag instead of failing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { PAGE, allocAligned } from '../../plugins/store-blobstore/bdev/aligned-memory.js';
import { uringUnavailableReason } from '../../plugins/store-blobstore/bdev/file-bdev.js';
import { UringEngine } from '../../plugins/store-blobstore/bdev/uring-engine.js';

const reason = uringUnavailableReason();
if (reason !== undefined) console.log(`SKIP uring engine: ${reason}`);
const dir = mkdtempSync(join(tmpdir(), 'fastblock-uring-'));

/** Flush requests the block device under `path` completed (field 16 of its stat), or why that cannot be read or says nothing. */
function deviceFlushes(path: string): { flushes: number } | { skip: string } {
  const st = statSync(path);
  const sys = `/sys/dev/block/${Math.floor(st.dev / 256) & 0xfff}:${(st.dev & 0xff) | ((st.dev >> 12) & 0xfff00)}`;
  if (!existsSync(`${sys}/stat`)) return { skip: `${path} is not on a block device` };
  const queue = existsSync(`${sys}/queue`) ? `${sys}/queue` : `${sys}/../queue`;
  if (!existsSync(`${queue}/write_cache`) || readFileSync(`${queue}/write_cache`, 'utf8').trim() !== 'write back' || readFileSync(`${queue}/fua`, 'utf8').trim() !== '0') {
    return { skip: 'the device has no volatile write cache, or has FUA: a durable write needs no flush there' };
  }
  const fields = readFileSync(`${sys}/stat`, 'utf8').trim().split(/\s+/);
  if (fields.length < 16) return { skip: 'the kernel reports no flush count' };
  return { flushes: Number(fields[15]) };
}

/** Runs `body` on a new file of four zeroed pages in the test directory, opened read-write. */
async function withFile(name: string, body: (fd: number, path: string) => Promise<void>): Promise<void> {
  const path = join(dir, name);
  writeFileSync(path, Buffer.alloc(4 * PAGE));
  const fd = openSync(path, 'r+');
  try {
    await body(fd, path);
  } finally {
    closeSync(fd);
  }
}

test('a durable write is on the medium when it completes: on a write-back cache without FUA, the kernel flushes after each', async () => {
  if (reason !== undefined) return;
  await withFile('durable', async (fd, path) => {
    const engine = UringEngine.get();
    const page = allocAligned(PAGE).fill(0x3c);
    await engine.write(fd, 0, page, PAGE);
    await engine.fdatasync(fd);
    const before = deviceFlushes(path);
    const WRITES = 8;
    for (let i = 0; i < WRITES; i++) await engine.write(fd, (i % 4) * PAGE, page, PAGE, true);
    const after = deviceFlushes(path);
    const back = allocAligned(PAGE);
    await engine.read(fd, 3 * PAGE, back, PAGE);
    assert.ok(back.every((b) => b === 0x3c), 'durable writes land like others');
    if ('skip' in before || 'skip' in after) {
      console.log(`SKIP the flush count check: ${'skip' in before ? before.skip : (after as { skip: string }).skip}`);
      return;
    }
    // Other processes' flushes only add to the count.
    assert.ok(after.flushes - before.flushes >= WRITES, `${after.flushes - before.flushes} device flushes for ${WRITES} durable writes`);
  });
});

test('writes and reads round-trip; a short read and a bad descriptor fail alone, with their context', async () => {
  if (reason !== undefined) return;
  await withFile('file', async (fd) => {
    const engine = UringEngine.get();
    const page = allocAligned(PAGE).fill(0x5a);
    await engine.write(fd, PAGE, page, PAGE);
    await engine.fdatasync(fd);
    const back = allocAligned(PAGE);
    const shortRead = allocAligned(2 * PAGE);
    const results = await Promise.allSettled([
      engine.read(fd, PAGE, back, PAGE),
      // Past the end of the file: the kernel transfers one page of the two asked for.
      engine.read(fd, 3 * PAGE, shortRead, 2 * PAGE),
      engine.read(-1, 0, allocAligned(PAGE), PAGE),
      engine.fdatasync(fd),
    ]);
    assert.is(results[0].status, 'fulfilled');
    assert.ok(back.every((b) => b === 0x5a));
    const short = results[1].status === 'rejected' ? results[1].reason : undefined;
    assert.ok(isFastblockError(short, ErrorCode.IO_ERROR), String(short));
    assert.equal({ op: short.context.op, offset: short.context.offset, length: short.context.length, transferred: short.context.transferred }, { op: 'read', offset: 3 * PAGE, length: 2 * PAGE, transferred: PAGE });
    const bad = results[2].status === 'rejected' ? results[2].reason : undefined;
    assert.ok(isFastblockError(bad, ErrorCode.IO_ERROR), String(bad));
    assert.is(bad.context.errno, 'EBADF');
    assert.is(results[3].status, 'fulfilled');
  });
});

test('more operations than the ring has tags wait for one and all complete', async () => {
  if (reason !== undefined) return;
  await withFile('many', async (fd) => {
    const engine = UringEngine.get();
    const buffers = Array.from({ length: 3000 }, () => allocAligned(PAGE));
    await Promise.all(buffers.map((b) => engine.read(fd, 0, b, PAGE)));
  });
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
