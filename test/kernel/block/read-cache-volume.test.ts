// The gateway's read cache over a volume whose completions the test controls: hits served from
// memory, changes dropping what they touch, a read that raced a change filling nothing, CLOCK
// eviction, and a randomized run against the volume itself where reads answer with the bytes of
// the moment they were issued and everything completes out of order: no read through the cache,
// ever after, differs from the volume.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { BlockVolume, BlockWrite, BlockWriteOptions } from '../../../kernel/contracts/block.js';
import { Registry } from 'prom-client';
import { ReadCacheVolume } from '../../../kernel/block/read-cache-volume.js';
import { registerReadCacheMetrics } from '../../../kernel/metrics/read-cache-metrics.js';
import { MemoryVolume } from '../../support/memory-volume.js';

const KiB = 1024;
const BS = 4 * KiB;

function block(fill: number, bytes = BS): Uint8Array {
  return new Uint8Array(bytes).fill(fill);
}

/**
 * Reads answer with the volume's bytes as of the call (a snapshot), held until released; changes
 * apply when released. Counts the reads that reached it.
 */
class HeldVolume implements BlockVolume {
  readonly memory: MemoryVolume;
  readonly held: { release(): void }[] = [];
  hold = false;
  /** Changes refused with this error once they are released. */
  failChanges: Error | undefined;
  reads = 0;
  readonly writeGroupBytes = 4 * 1024 * KiB;

  constructor(size = 1024 * KiB, name = 'rbd/rc') {
    this.memory = new MemoryVolume(name, size);
  }
  get name(): string {
    return this.memory.name;
  }
  get size(): number {
    return this.memory.size;
  }
  get blockSize(): number {
    return this.memory.blockSize;
  }
  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    this.reads++;
    const snapshot = Buffer.from(await this.memory.read(offset, length));
    await this.maybeHold();
    if (into) {
      into.set(snapshot);
      return into;
    }
    return snapshot;
  }
  async write(offset: number, data: readonly Uint8Array[], _options?: BlockWriteOptions): Promise<void> {
    const copy = data.map((part) => Uint8Array.from(part));
    await this.maybeHold();
    if (this.failChanges) throw this.failChanges;
    await this.memory.write(offset, copy);
  }
  readonly writeMany = async (writes: readonly BlockWrite[]): Promise<void> => {
    const copies = writes.map((w) => ({ offset: w.offset, data: w.data.map((part) => Uint8Array.from(part)) }));
    await this.maybeHold();
    if (this.failChanges) throw this.failChanges;
    for (const w of copies) await this.memory.write(w.offset, w.data);
  };
  async discard(offset: number, length: number): Promise<void> {
    await this.maybeHold();
    await this.memory.discard(offset, length);
  }
  async writeZeroes(offset: number, length: number): Promise<void> {
    await this.maybeHold();
    await this.memory.writeZeroes(offset, length);
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
  private maybeHold(): Promise<void> {
    if (!this.hold) return Promise.resolve();
    return new Promise((resolve) => this.held.push({ release: resolve }));
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('a read of cached blocks is served from memory; a partly cached one goes to the volume', async () => {
  const inner = new HeldVolume();
  await inner.memory.write(0, [block(1), block(2), block(3)]);
  const cache = new ReadCacheVolume(inner, 64 * KiB);
  assert.equal(await cache.read(0, 2 * BS), Buffer.concat([block(1), block(2)]));
  assert.is(inner.reads, 1);
  // Cached: a sub-block read and a read into a caller's buffer come from memory.
  assert.equal(await cache.read(BS + 512, 1024), Buffer.from(block(2, 1024)));
  const into = new Uint8Array(BS);
  assert.is(await cache.read(0, BS, into), into);
  assert.equal(into, block(1));
  assert.is(inner.reads, 1);
  // Block 2 is not cached: the whole read goes to the volume, and fills it.
  assert.equal(await cache.read(BS, 2 * BS), Buffer.concat([block(2), block(3)]));
  assert.is(inner.reads, 2);
  await cache.read(2 * BS, BS);
  assert.is(inner.reads, 2);
  assert.equal(cache.stats.cachedBlocks, 3);
});

test('an unaligned read fills only the whole blocks it covered', async () => {
  const inner = new HeldVolume();
  await inner.memory.write(0, [block(1), block(2), block(3)]);
  const cache = new ReadCacheVolume(inner, 64 * KiB);
  await cache.read(512, 2 * BS);
  assert.is(cache.stats.cachedBlocks, 1);
  await cache.read(BS, BS);
  assert.is(inner.reads, 1);
});

test('a write, a writeMany, a discard and a write-zeroes drop the blocks they touch, even in part', async () => {
  const inner = new HeldVolume();
  await inner.memory.write(0, [block(1), block(2), block(3), block(4)]);
  const cache = new ReadCacheVolume(inner, 64 * KiB);
  await cache.read(0, 4 * BS);
  await cache.write(512, [new Uint8Array(512).fill(9)]);
  assert.equal((await cache.read(0, BS)).subarray(0, 1024), Buffer.concat([block(1, 512), block(9, 512)]));
  await cache.writeMany!([{ offset: BS, data: [block(7)] }]);
  assert.equal(await cache.read(BS, BS), Buffer.from(block(7)));
  await cache.discard(2 * BS, BS);
  assert.equal(await cache.read(2 * BS, BS), Buffer.from(block(0)));
  await cache.writeZeroes(3 * BS + 4000, 96);
  assert.equal((await cache.read(3 * BS, BS))[4000], 0);
});

test('a write that succeeds fills the whole blocks it wrote, from any scatter list; partly written blocks are not filled', async () => {
  const inner = new HeldVolume();
  const cache = new ReadCacheVolume(inner, 64 * KiB);
  // Blocks 1 and 2 whole (parts split inside a block), block 0 and block 3 in part.
  const data = new Uint8Array(3 * BS).map((_, i) => (i * 7) & 0xff);
  await cache.write(BS - 512, [data.subarray(0, 1000), data.subarray(1000, 1000), data.subarray(1000, 5000), data.subarray(5000)]);
  assert.is(cache.stats.cachedBlocks, 2);
  assert.equal(Buffer.from(await cache.read(BS, 2 * BS)), Buffer.from(data.subarray(512, 512 + 2 * BS)));
  assert.is(inner.reads, 0, 'served from memory');
  await cache.read(0, BS);
  assert.is(inner.reads, 1, 'the partly written block went to the volume');
  // A writeMany fills what each of its writes covered.
  await cache.writeMany!([
    { offset: 8 * BS, data: [block(8)] },
    { offset: 10 * BS, data: [block(10), block(11)] },
  ]);
  assert.equal(Buffer.from(await cache.read(10 * BS, 2 * BS)), Buffer.concat([block(10), block(11)]));
  assert.equal(Buffer.from(await cache.read(8 * BS, BS)), Buffer.from(block(8)));
  assert.is(inner.reads, 1);
});

test('a write that fails, or whose extents share a block, fills nothing', async () => {
  const inner = new HeldVolume();
  const cache = new ReadCacheVolume(inner, 64 * KiB);
  inner.failChanges = new Error('refused');
  await cache.write(0, [block(3)]).then(
    () => assert.unreachable('the write was refused'),
    (err: Error) => assert.is(err.message, 'refused'),
  );
  inner.failChanges = undefined;
  assert.equal(Buffer.from(await cache.read(0, BS)), Buffer.from(block(0)));
  assert.is(inner.reads, 1);
  // Two extents on block 4: which landed last is the volume's business.
  await cache.writeMany!([
    { offset: 4 * BS, data: [block(1)] },
    { offset: 4 * BS + 512, data: [block(2, 512)] },
  ]);
  assert.is(cache.stats.cachedBlocks, 1, 'only block 0, read above');
});

test('two writes of a block in flight at once fill nothing, whichever lands last', async () => {
  for (const laterLandsFirst of [false, true]) {
    const inner = new HeldVolume();
    const cache = new ReadCacheVolume(inner, 64 * KiB);
    inner.hold = true;
    const first = cache.write(0, [block(1)]);
    await tick();
    const second = cache.write(0, [block(2)]);
    await tick();
    const order = laterLandsFirst ? [1, 0] : [0, 1];
    for (const i of order) {
      inner.held[i]!.release();
      await tick();
    }
    await Promise.all([first, second]);
    inner.hold = false;
    assert.is(cache.stats.cachedBlocks, 0);
    assert.equal(Buffer.from(await cache.read(0, BS)), Buffer.from(block(laterLandsFirst ? 1 : 2)));
  }
});

test('writeMany calls of one object in flight at once, on blocks apart, fill theirs; so does a read of a block between them', async () => {
  const inner = new HeldVolume();
  await inner.memory.write(3 * BS, [block(33)]);
  const cache = new ReadCacheVolume(inner, 64 * KiB);
  inner.hold = true;
  // Interleaved: each call's span covers the other's blocks, and block 3.
  const even = cache.writeMany!([
    { offset: 0, data: [block(10)] },
    { offset: 4 * BS, data: [block(14)] },
  ]);
  const odd = cache.writeMany!([
    { offset: BS, data: [block(11)] },
    { offset: 5 * BS, data: [block(15)] },
  ]);
  const read = cache.read(3 * BS, BS);
  await tick();
  for (const held of inner.held.splice(0)) held.release();
  await Promise.all([even, odd]);
  assert.equal(Buffer.from(await read), Buffer.from(block(33)));
  inner.hold = false;
  assert.is(cache.stats.cachedBlocks, 5);
  assert.is(cache.stats.raced, 0);
  for (const [at, fill] of [[0, 10], [1, 11], [3, 33], [4, 14], [5, 15]] as const) assert.equal(Buffer.from(await cache.read(at * BS, BS)), Buffer.from(block(fill)));
  assert.is(inner.reads, 1);
});

test('a read that overlapped a change in time fills nothing: the volume may have answered with the bytes before it', async () => {
  const inner = new HeldVolume();
  await inner.memory.write(0, [block(1)]);
  const cache = new ReadCacheVolume(inner, 64 * KiB);
  inner.hold = true;
  const read = cache.read(0, BS); // answers with block(1): the bytes as of the call
  await tick();
  const write = cache.write(0, [block(5)]);
  await tick();
  inner.held[1]!.release(); // the write lands first
  await write;
  inner.held[0]!.release();
  assert.equal(await read, Buffer.from(block(1)));
  inner.hold = false;
  assert.equal(await cache.read(0, BS), Buffer.from(block(5)), 'not the stale bytes');
  assert.is(cache.stats.raced, 1);
});

test('a change in flight when a read starts keeps that read from filling too', async () => {
  const inner = new HeldVolume();
  const cache = new ReadCacheVolume(inner, 64 * KiB);
  inner.hold = true;
  const write = cache.write(0, [block(6)]);
  await tick();
  inner.hold = false;
  assert.equal(await cache.read(0, BS), Buffer.from(block(0)));
  inner.held[0]!.release();
  await write;
  assert.equal(await cache.read(0, BS), Buffer.from(block(6)));
});

test('a shrink of the volume drops the cached blocks past its new end: a regrown volume reads zeroes there', async () => {
  const inner = new HeldVolume(64 * KiB);
  await inner.memory.write(12 * BS, [block(8)]);
  const cache = new ReadCacheVolume(inner, 64 * KiB);
  assert.equal(await cache.read(12 * BS, BS), Buffer.from(block(8)));
  inner.memory.resize(32 * KiB);
  await cache.read(0, BS);
  inner.memory.resize(64 * KiB);
  assert.equal(Buffer.from(await cache.read(12 * BS, BS)), Buffer.from(block(0)), 'not the block from before the shrink');
});

test('full: CLOCK evicts a block not read since the hand passed, and keeps serving correct bytes', async () => {
  const inner = new HeldVolume();
  for (let i = 0; i < 8; i++) await inner.memory.write(i * BS, [block(i + 1)]);
  const cache = new ReadCacheVolume(inner, 4 * BS);
  for (let i = 0; i < 8; i++) assert.equal(await cache.read(i * BS, BS), Buffer.from(block(i + 1)));
  assert.is(cache.stats.cachedBlocks, 4);
  for (let i = 0; i < 8; i++) assert.equal(await cache.read(i * BS, BS), Buffer.from(block(i + 1)));
});

test('randomized: reads answering as of their call, changes and reads completing out of order; the cache never serves what the volume does not hold', async () => {
  let hits = 0;
  let raced = 0;
  for (const seed of [1, 2, 3, 4, 5]) {
    let state = seed;
    const random = (): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state / 0x1_0000_0000;
    };
    const blocks = 32;
    const inner = new HeldVolume(blocks * BS);
    const cache = new ReadCacheVolume(inner, 12 * BS);
    inner.hold = true;
    const inFlight: Promise<unknown>[] = [];
    for (let step = 0; step < 400; step++) {
      const r = random();
      const at = Math.floor(random() * blocks);
      const n = 1 + Math.floor(random() * Math.min(3, blocks - at));
      if (r < 0.45) inFlight.push(cache.read(at * BS, n * BS));
      else if (r < 0.7) inFlight.push(cache.write(at * BS, [block(step & 0xff, n * BS)]));
      else if (r < 0.8) {
        // Two extents, which may share a block.
        const other = Math.floor(random() * blocks);
        inFlight.push(
          cache.writeMany!([
            { offset: at * BS, data: [block((step + 1) & 0xff)] },
            { offset: other * BS, data: [block((step + 2) & 0xff)] },
          ]),
        );
      }
      else if (r < 0.85) inFlight.push(cache.discard(at * BS, n * BS));
      else if (r < 0.9) inFlight.push(cache.writeZeroes(at * BS, n * BS));
      // Release some held operations in random order.
      while (inner.held.length > 0 && random() < 0.5) {
        const i = Math.floor(random() * inner.held.length);
        inner.held.splice(i, 1)[0]!.release();
        await tick();
      }
      await tick();
    }
    inner.hold = false;
    while (inner.held.length > 0) {
      inner.held.shift()!.release();
      await tick();
    }
    await Promise.all(inFlight);
    for (let b = 0; b < blocks; b++) {
      const got = Buffer.from(await cache.read(b * BS, BS));
      const want = Buffer.from(await inner.memory.read(b * BS, BS));
      assert.ok(got.equals(want), `seed ${seed}, block ${b}: the cache served ${got[0]}, the volume holds ${want[0]}`);
    }
    hits += cache.stats.hits;
    raced += cache.stats.raced;
  }
  // Not a vacuous run: reads were served from the cache, and some had to be kept out of it.
  assert.ok(hits > 50 && raced > 10, `hits ${hits}, raced ${raced}`);
});

test('/metrics: hits, misses, races and fill per volume, gone once the cache is closed', async () => {
  const registry = new Registry();
  registerReadCacheMetrics(registry);
  registerReadCacheMetrics(registry); // every frontend calls it: once is registered
  const inner = new HeldVolume(1024 * KiB, 'rbd/metered');
  const cache = new ReadCacheVolume(inner, 64 * KiB);
  await cache.read(0, 2 * BS);
  await cache.read(0, BS);
  const text = await registry.metrics();
  const sample = (name: string): number => Number(new RegExp(`^${name}\\{volume="rbd/metered"\\} (\\S+)$`, 'm').exec(text)?.[1]);
  assert.is(sample('fastblock_read_cache_hits_total'), 1);
  assert.is(sample('fastblock_read_cache_misses_total'), 1);
  assert.is(sample('fastblock_read_cache_raced_total'), 0);
  assert.is(sample('fastblock_read_cache_bytes'), 2 * BS);
  assert.is(sample('fastblock_read_cache_capacity_bytes'), 64 * KiB);
  await cache.close();
  assert.not.match(await registry.metrics(), 'volume="rbd/metered"');
});

test('its writes and writeManys tell the volume their bytes are cached above (cachedAbove), other options kept', async () => {
  const inner = new HeldVolume();
  const seen: (BlockWriteOptions | undefined)[] = [];
  const volume: BlockVolume = {
    name: inner.name,
    size: inner.size,
    blockSize: inner.blockSize,
    writeGroupBytes: inner.writeGroupBytes,
    read: (offset, length, into) => inner.read(offset, length, into),
    write: (offset, data, options) => (seen.push(options), inner.write(offset, data, options)),
    writeMany: (writes, options) => (seen.push(options), inner.writeMany(writes)),
    flush: () => inner.flush(),
    discard: (offset, length) => inner.discard(offset, length),
    writeZeroes: (offset, length) => inner.writeZeroes(offset, length),
    close: () => inner.close(),
  };
  const cache = new ReadCacheVolume(volume, 64 * KiB);
  await cache.write(0, [block(1)]);
  await cache.write(BS, [block(2)], { fua: true });
  await cache.writeMany!([{ offset: 2 * BS, data: [block(3)] }, { offset: 4 * BS, data: [block(4)] }]);
  await cache.writeMany!([{ offset: 6 * BS, data: [block(5)] }], { fua: true });
  assert.equal(seen, [{ cachedAbove: true }, { fua: true, cachedAbove: true }, { cachedAbove: true }, { fua: true, cachedAbove: true }]);
  // And it does keep them: read back from memory.
  assert.equal(await cache.read(0, 3 * BS), Buffer.concat([block(1), block(2), block(3)]));
  assert.is(inner.reads, 0);
  await cache.close();
});

test.run();
