/** The read cache in front of a device: what it returns always matches what the device holds. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Bdev, Buffers } from '../../plugins/store-blobstore/bdev/bdev.js';
import { CachedBdev } from '../../plugins/store-blobstore/bdev/cached-bdev.js';
import { MemoryBdev } from '../../plugins/store-blobstore/bdev/memory-bdev.js';
import { BlobShardStore } from '../../plugins/store-blobstore/shard-store.js';
import { pattern } from './devices.js';

const B = 4096;

/**
 * A device whose operations take effect when issued but complete after `delayMs`: a read returns
 * the bytes of its issue time, even if a write of those blocks completes before it does. Writes
 * can be made to fail (they then change nothing).
 */
class LaggingBdev implements Bdev {
  readonly name = 'lagging';
  readonly blockSize = B;
  failWrites = false;
  delayMs = 0;
  constructor(readonly inner: MemoryBdev) {}
  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }
  private later(work: Promise<void>): Promise<void> {
    const delay = this.delayMs;
    return work.then(() => new Promise<void>((resolve) => setTimeout(resolve, delay)));
  }
  read(offset: number, buffers: Buffers): Promise<void> {
    return this.later(this.inner.read(offset, buffers));
  }
  write(offset: number, buffers: Buffers): Promise<void> {
    if (this.failWrites) return Promise.reject(new Error('EIO'));
    return this.later(this.inner.write(offset, buffers));
  }
  writeZeroes(offset: number, length: number): Promise<void> {
    return this.later(this.inner.writeZeroes(offset, length));
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const block = (value: number, blocks = 1): Buffer => Buffer.alloc(blocks * B, value);

test('random cached and uncached I/O over a cache smaller than the working set reads what the device holds', async () => {
  const device = new MemoryBdev(64 * B);
  const cache = new CachedBdev(device, 8 * B);
  const model = Buffer.alloc(64 * B);
  let seed = 11;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  for (let i = 0; i < 2000; i++) {
    const start = rand(60);
    const blocks = 1 + rand(4);
    const op = rand(10);
    if (op < 4) {
      const data = pattern(i, blocks * B);
      await cache.write(start * B, rand(3) === 0 ? [data] : data, (['none', 'update', 'store'] as const)[rand(3)]);
      data.copy(model, start * B);
    } else if (op < 5) {
      await cache.writeZeroes(start * B, blocks * B);
      model.fill(0, start * B, (start + blocks) * B);
    } else {
      const out = Buffer.alloc(blocks * B);
      await cache.read(start * B, out, rand(5) !== 0);
      assert.ok(out.equals(model.subarray(start * B, (start + blocks) * B)), `read ${i} at block ${start} x${blocks}`);
    }
  }
  assert.ok(cache.hits > 100 && cache.misses > 100, `hits ${cache.hits}, misses ${cache.misses}`);
  assert.ok(cache.cachedBlocks <= 8);
});

test('a read that raced a write of its blocks does not fill the cache with the older bytes', async () => {
  const device = new LaggingBdev(new MemoryBdev(16 * B));
  const cache = new CachedBdev(device, 8 * B);
  await cache.write(0, block(1));
  device.delayMs = 30;
  const early = Buffer.alloc(B);
  const reading = cache.read(0, early, true); // a miss: the device hands back block(1), later
  device.delayMs = 0;
  await cache.write(0, block(2)); // not cached: drops the block, taints the read in flight
  await reading;
  assert.is(early[0], 1, 'the read saw the bytes of its issue time');
  const after = Buffer.alloc(B);
  await cache.read(0, after, true);
  assert.is(after[0], 2, 'the cache did not keep them');

  // A read issued while a write of its blocks is still in flight does not fill either.
  device.delayMs = 30;
  const writing = cache.write(B, block(3));
  device.delayMs = 0;
  await cache.read(B, Buffer.alloc(B), true);
  await writing;
  const second = Buffer.alloc(B);
  await cache.read(B, second, true);
  assert.is(second[0], 3);
});

test('a write that fails leaves nothing of itself in the cache', async () => {
  const device = new LaggingBdev(new MemoryBdev(16 * B));
  const cache = new CachedBdev(device, 8 * B);
  await cache.write(0, block(1), 'store');
  device.failWrites = true;
  await cache.write(0, block(9), 'store').then(
    () => assert.unreachable('the write should fail'),
    () => undefined,
  );
  device.failWrites = false;
  const out = Buffer.alloc(B);
  await cache.read(0, out, true);
  assert.is(out[0], 1, 'the device kept the old bytes, and so does what a read returns');
});

test('object reads through a store with a cache fill it and then hit it; writes update it; discards and a reopen read the device', async () => {
  const memory = new MemoryBdev(16 << 20);
  const cached = new CachedBdev(memory.reopen(), 1 << 20);
  let store = await BlobShardStore.openOn(cached, 0, { create: true, clusterSize: 64 * 1024 });
  await store.objects.write('1.0', 'o', 0, [pattern(1, 8 * B)]);
  assert.is(cached.cachedBlocks, 0, 'writes do not fill the cache');
  assert.ok(Buffer.from(await store.objects.read('1.0', 'o', 0, 8 * B)).equals(pattern(1, 8 * B)));
  const misses = cached.misses;
  assert.ok(misses > 0);
  await store.objects.write('1.0', 'o', 2 * B, [pattern(3, B)]);
  const expectedO = pattern(1, 8 * B);
  pattern(3, B).copy(expectedO, 2 * B);
  assert.ok(Buffer.from(await store.objects.read('1.0', 'o', 0, 8 * B)).equals(expectedO), 'a write updated the cached block');
  assert.is(cached.misses, misses, 'read from the cache');
  assert.ok(cached.hits > 0);
  // What a leader writes (keepCached) is read back from the cache at once.
  await store.objects.write('1.0', 'q', 0, [pattern(4, 4 * B)], { keepCached: true });
  assert.ok(Buffer.from(await store.objects.read('1.0', 'q', 0, 4 * B)).equals(pattern(4, 4 * B)));
  assert.is(cached.misses, misses, 'kept in the cache as written');
  await store.objects.discard('1.0', 'o', 0, 64 * 1024);
  assert.ok(Buffer.from(await store.objects.read('1.0', 'o', 0, 8 * B)).equals(Buffer.alloc(8 * B)), 'a discarded object reads as zeroes');
  await store.objects.write('1.0', 'p', 100, [pattern(2, 3 * B)]);
  await store.objects.writeZeroes('1.0', 'p', B, B);
  const expected = Buffer.alloc(4 * B);
  pattern(2, 3 * B).copy(expected, 100);
  expected.fill(0, B, 2 * B);
  assert.ok(Buffer.from(await store.objects.read('1.0', 'p', 0, 4 * B)).equals(expected));
  await store.close();
  store = await BlobShardStore.openOn(memory.reopen(), 0, { create: false });
  assert.ok(Buffer.from(await store.objects.read('1.0', 'p', 0, 4 * B)).equals(expected), 'the device holds what the cache returned');
  await store.close();
});

test.run();
