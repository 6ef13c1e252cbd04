/** Per-export frontend counters: requests as issued, bytes, and the requests the image failed. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Registry } from 'prom-client';
import type { BlockVolume, BlockVolumeProvider, BlockWrite, BlockWriteOptions } from '../../kernel/contracts/block.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { meterAtOuter, meteredVolumes } from '../../kernel/metrics/metered-volumes.js';
import { MemoryVolumeProvider } from '../support/memory-volume.js';
import { openExportWriteBack } from '../../kernel/block/export-cache.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openWriteBack } from '../../kernel/block/write-back-volume.js';
import { silentLogger } from '../../kernel/logger.js';
import { ControlledVolume } from '../kernel/block/controlled-volume.js';

/** A 1 MiB volume that fails every I/O touching its second half. */
function halfBrokenProvider(): BlockVolumeProvider {
  const MiB = 1 << 20;
  const fail = (offset: number): Promise<never> | undefined =>
    offset >= MiB / 2 ? Promise.reject(new FastblockError(ErrorCode.IO_ERROR, 'injected', { offset })) : undefined;
  const volume: BlockVolume = {
    name: 'rbd/half',
    size: MiB,
    blockSize: 4096,
    read: (offset, length) => fail(offset) ?? Promise.resolve(new Uint8Array(length)),
    write: (offset) => fail(offset) ?? Promise.resolve(),
    flush: () => Promise.resolve(),
    discard: (offset) => fail(offset) ?? Promise.resolve(),
    writeZeroes: (offset) => fail(offset) ?? Promise.resolve(),
    close: () => Promise.resolve(),
  };
  return { list: async () => [volume.name], open: async () => volume };
}

const sample = (text: string, line: string): number => {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? Number.NaN : Number(found.slice(line.length + 1));
};

test('a failed I/O is counted as a request and as an error of its op, and still fails for the caller', async () => {
  const registry = new Registry();
  const volume = await meteredVolumes(halfBrokenProvider(), registry, 'nbd').open('rbd/half');
  await volume.write(0, [new Uint8Array(4096)]);
  await volume.read(0, 4096);
  const failures = await Promise.allSettled([volume.write(1 << 19, [new Uint8Array(4096)]), volume.read(1 << 19, 8192), volume.discard(1 << 19, 4096), volume.writeZeroes(1 << 19, 4096)]);
  assert.equal(
    failures.map((f) => f.status === 'rejected' && (f.reason as FastblockError).code),
    [ErrorCode.IO_ERROR, ErrorCode.IO_ERROR, ErrorCode.IO_ERROR, ErrorCode.IO_ERROR],
    'the caller sees the error unchanged',
  );
  await volume.flush();
  const text = await registry.metrics();
  const labels = (op: string) => `{frontend="nbd",export="rbd/half",op="${op}"}`;
  assert.is(sample(text, `fastblock_frontend_requests_total${labels('write')}`), 2);
  assert.is(sample(text, `fastblock_frontend_errors_total${labels('write')}`), 1);
  assert.is(sample(text, `fastblock_frontend_requests_total${labels('read')}`), 2);
  assert.is(sample(text, `fastblock_frontend_errors_total${labels('read')}`), 1);
  assert.is(sample(text, `fastblock_frontend_errors_total${labels('discard')}`), 1);
  assert.is(sample(text, `fastblock_frontend_errors_total${labels('write_zeroes')}`), 1);
  assert.is(sample(text, `fastblock_frontend_errors_total${labels('flush')}`), 0);
  assert.is(sample(text, 'fastblock_frontend_read_bytes_total{frontend="nbd",export="rbd/half"}'), 4096 + 8192);
});

test('writeMany and writeGroupBytes pass through when the volume has them (counted as writes), and are absent when not', async () => {
  const registry = new Registry();
  const plain = await meteredVolumes(halfBrokenProvider(), registry, 'nbd').open('rbd/half');
  assert.is(plain.writeMany, undefined);
  assert.is(plain.writeGroupBytes, undefined);

  const calls: (readonly BlockWrite[])[] = [];
  const inner: BlockVolume = {
    ...(await halfBrokenProvider().open('rbd/half')),
    name: 'rbd/many',
    writeGroupBytes: 4 << 20,
    writeMany: (writes) => {
      calls.push(writes);
      return writes.some((w) => w.offset >= 1 << 19) ? Promise.reject(new FastblockError(ErrorCode.IO_ERROR, 'injected', {})) : Promise.resolve();
    },
  };
  const volume = await meteredVolumes({ list: async () => [inner.name], open: async () => inner }, registry, 'nbd').open('rbd/many');
  assert.is(volume.writeGroupBytes, 4 << 20);
  const writes = [
    { offset: 0, data: [new Uint8Array(4096)] },
    { offset: 8192, data: [new Uint8Array(1000), new Uint8Array(3096)] },
  ];
  await volume.writeMany!(writes);
  assert.is(calls[0], writes, 'the same writes reach the volume');
  try {
    await volume.writeMany!([{ offset: 1 << 19, data: [new Uint8Array(4096)] }]);
    assert.unreachable();
  } catch (err) {
    assert.is((err as FastblockError).code, ErrorCode.IO_ERROR);
  }
  const text = await registry.metrics();
  const labels = (op: string) => `{frontend="nbd",export="rbd/many",op="${op}"}`;
  assert.is(sample(text, `fastblock_frontend_requests_total${labels('write')}`), 3);
  assert.is(sample(text, `fastblock_frontend_errors_total${labels('write')}`), 1);
  assert.is(sample(text, 'fastblock_frontend_written_bytes_total{frontend="nbd",export="rbd/many"}'), 3 * 4096);
});

test('a writeback export shows its dirty bytes, log use and in-flight write-backs until it is closed', async () => {
  const registry = new Registry();
  meteredVolumes(halfBrokenProvider(), registry, 'vhost');
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-wb-metrics-'));
  try {
    const inner = new ControlledVolume('rbd/cached');
    inner.hold = true;
    const cache = openWriteBack(inner, { path: join(dir, 'log'), capacityBytes: 4 << 20, log: silentLogger() });
    await cache.write(0, [new Uint8Array(8192)]);
    let text = await registry.metrics();
    assert.is(sample(text, 'fastblock_write_back_dirty_bytes{volume="rbd/cached"}'), 8192);
    assert.is(sample(text, 'fastblock_write_back_log_used_bytes{volume="rbd/cached"}'), 8192 + 40);
    assert.is(sample(text, 'fastblock_write_back_log_capacity_bytes{volume="rbd/cached"}'), 4 << 20);
    assert.is(sample(text, 'fastblock_write_back_in_flight{volume="rbd/cached"}'), 1);
    assert.is(sample(text, 'fastblock_write_back_retries_total{volume="rbd/cached"}'), 0);
    assert.is(sample(text, 'fastblock_write_back_absorbed_total{volume="rbd/cached"}'), 0);
    await inner.releaseAllNewestFirst();
    await cache.flush();
    text = await registry.metrics();
    assert.is(sample(text, 'fastblock_write_back_dirty_bytes{volume="rbd/cached"}'), 0);
    await cache.close();
    text = await registry.metrics();
    assert.not.match(text, 'volume="rbd/cached"', 'a closed cache has no series');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a writeback export counts its host I/O at the export (meterAtOuter), not what gets past its caches', async () => {
  const registry = new Registry();
  const memory = new MemoryVolumeProvider();
  memory.create('rbd/outer', 8 << 20);
  const provider = meteredVolumes(memory, registry, 'nbd');
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-outer-metrics-'));
  try {
    const inner = await provider.open('rbd/outer');
    const writeBack = openExportWriteBack('rbd/outer', inner, { dir, capacityBytes: 4 << 20, readCacheBytes: 1 << 20, holdMs: 0 }, silentLogger());
    const volume = meterAtOuter(inner, writeBack);
    await volume.write(0, [new Uint8Array(4096).fill(1)]);
    await volume.write(4096, [new Uint8Array(4096).fill(2)]);
    await volume.flush();
    // Three reads of the same blocks: the first may reach the cluster, the others are cache hits.
    for (let i = 0; i < 3; i++) await volume.read(0, 8192);
    const text = await registry.metrics();
    const labels = (op: string): string => `{frontend="nbd",export="rbd/outer",op="${op}"}`;
    assert.is(sample(text, `fastblock_frontend_requests_total${labels('write')}`), 2, 'each host write once, not again as its write-back');
    assert.is(sample(text, `fastblock_frontend_requests_total${labels('read')}`), 3, 'every host read, cache hits included');
    assert.is(sample(text, `fastblock_frontend_requests_total${labels('flush')}`), 1);
    assert.is(sample(text, 'fastblock_frontend_read_bytes_total{frontend="nbd",export="rbd/outer"}'), 3 * 8192);
    assert.is(sample(text, 'fastblock_frontend_written_bytes_total{frontend="nbd",export="rbd/outer"}'), 8192);
    await volume.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the write-backs of a writeback export reach the image through its read cache and the meter marked cachedAbove', async () => {
  const memory = new MemoryVolumeProvider();
  memory.create('rbd/hinted', 8 << 20);
  const seen: (BlockWriteOptions | undefined)[] = [];
  const recording: BlockVolumeProvider = {
    list: () => memory.list(),
    open: async (name) => {
      const volume = await memory.open(name);
      return {
        name: volume.name,
        size: volume.size,
        blockSize: volume.blockSize,
        writeGroupBytes: 4 << 20,
        read: (offset, length, into) => volume.read(offset, length, into),
        write: (offset, data, options) => (seen.push(options), volume.write(offset, data, options)),
        writeMany: async (writes, options) => {
          seen.push(options);
          for (const w of writes) await volume.write(w.offset, w.data);
        },
        flush: () => volume.flush(),
        discard: (offset, length) => volume.discard(offset, length),
        writeZeroes: (offset, length, options) => volume.writeZeroes(offset, length, options),
        close: () => volume.close(),
      };
    },
  };
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-hinted-'));
  try {
    const inner = await meteredVolumes(recording, new Registry(), 'nbd').open('rbd/hinted');
    const volume = meterAtOuter(inner, openExportWriteBack('rbd/hinted', inner, { dir, capacityBytes: 4 << 20, readCacheBytes: 1 << 20, holdMs: 5000 }, silentLogger()));
    // Held, then hurried together by the flush: one group, one writeMany.
    for (let i = 0; i < 4; i++) await volume.write(2 * i * 4096, [new Uint8Array(4096).fill(i + 1)]);
    await volume.flush();
    await volume.write(4096, [new Uint8Array(4096).fill(9)], { fua: true });
    assert.ok(seen.length >= 2, 'written back');
    for (const options of seen) assert.is(options?.cachedAbove, true);
    await volume.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
