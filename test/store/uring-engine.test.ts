/**
 * The io_uring engine on a real file: operations complete in any order with their own outcome,
 * a short transfer and a kernel error each fail only their own operation with a typed error that
 * says what was asked, and more operations than tags wait for a tag instead of failing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { PAGE, allocAligned } from '../../plugins/store-blobstore/bdev/aligned-memory.js';
import { uringUnavailableReason } from '../../plugins/store-blobstore/bdev/file-bdev.js';
import { UringEngine } from '../../plugins/store-blobstore/bdev/uring-engine.js';

const reason = uringUnavailableReason();
if (reason !== undefined) console.log(`SKIP uring engine: ${reason}`);
const dir = mkdtempSync(join(tmpdir(), 'fastblock-uring-'));

test('writes and reads round-trip; a short read and a bad descriptor fail alone, with their context', async () => {
  if (reason !== undefined) return;
  const path = join(dir, 'file');
  writeFileSync(path, Buffer.alloc(4 * PAGE));
  const fd = openSync(path, 'r+');
  try {
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
  } finally {
    closeSync(fd);
  }
});

test('more operations than the ring has tags wait for one and all complete', async () => {
  if (reason !== undefined) return;
  const path = join(dir, 'many');
  writeFileSync(path, Buffer.alloc(PAGE));
  const fd = openSync(path, 'r+');
  try {
    const engine = UringEngine.get();
    const buffers = Array.from({ length: 3000 }, () => allocAligned(PAGE));
    await Promise.all(buffers.map((b) => engine.read(fd, 0, b, PAGE)));
  } finally {
    closeSync(fd);
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
