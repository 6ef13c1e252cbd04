import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ObjectChunk } from '../../kernel/contracts/store.js';
import { BlobShardStore } from '../../plugins/store-blobstore/shard-store.js';
import { type DeviceKind, type TestDevice, deviceKinds, makeDevice, pattern, rejectsWith } from './devices.js';

const MiB = 1 << 20;
const CLUSTER = 64 * 1024;

const open = (dev: TestDevice): Promise<BlobShardStore> => BlobShardStore.openOn(dev.open(), 0, { create: true, clusterSize: CLUSTER });

/** A plain-bytes model of one object, to compare against. */
class Model {
  bytes = Buffer.alloc(0);
  exists = false;
  write(offset: number, data: Uint8Array): void {
    this.exists = true;
    if (offset + data.length > this.bytes.length) this.bytes = Buffer.concat([this.bytes, Buffer.alloc(offset + data.length - this.bytes.length)]);
    Buffer.from(data).copy(this.bytes, offset);
  }
  zero(offset: number, length: number): void {
    this.write(offset, Buffer.alloc(length));
  }
  /** A discard leaves an absent object absent and releases one it covers entirely. */
  discard(offset: number, length: number): void {
    if (!this.exists) return;
    if (offset === 0 && length >= this.bytes.length) {
      this.exists = false;
      this.bytes = Buffer.alloc(0);
      return;
    }
    this.zero(offset, length);
  }
}

function suiteFor(kind: DeviceKind): void {
  const test = suite(`object_store on ${kind}`);

  test('random aligned and unaligned writes, zeroes and discards match a byte model, also after reopen', async () => {
    const dev = makeDevice(kind, 32 * MiB);
    let store = await open(dev);
    const model = new Model();
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const span = 5 * CLUSTER;
    for (let i = 0; i < 120; i++) {
      const op = rand(10);
      const offset = rand(3) === 0 ? rand(span / 4096) * 4096 : rand(span);
      const length = 1 + (rand(3) === 0 ? rand(3) * 4096 + 4095 : rand(9000));
      if (op < 7) {
        const data = pattern(i, length);
        const cut = rand(length);
        await store.objects.write('1.0', 'obj', offset, [data.subarray(0, cut), data.subarray(cut)]);
        model.write(offset, data);
      } else if (op < 9) {
        await store.objects.writeZeroes('1.0', 'obj', offset, length);
        model.zero(offset, length);
      } else {
        // Now and then from 0, so that some discards cover the whole object.
        const from = rand(2) === 0 ? 0 : offset;
        await store.objects.discard('1.0', 'obj', from, length);
        model.discard(from, length);
      }
      if (i % 40 === 39) {
        await store.flush();
        store = await open(dev);
      }
    }
    assert.is((await store.objects.stat('1.0', 'obj'))?.size, model.exists ? model.bytes.length : undefined);
    const all = await store.objects.read('1.0', 'obj', 0, model.bytes.length + 5000);
    assert.ok(Buffer.from(all).equals(Buffer.concat([model.bytes, Buffer.alloc(5000)])));
    const piece = await store.objects.read('1.0', 'obj', 4097, 10000);
    assert.ok(Buffer.from(piece).equals(model.bytes.subarray(4097, 14097)));
    await store.close();
    dev.destroy();
  });

  test('discard: an absent object stays absent; one covering the whole object releases it, also after reopen', async () => {
    const dev = makeDevice(kind, 32 * MiB);
    let store = await open(dev);
    await store.objects.discard('1.0', 'never-written', 0, 4 * MiB);
    await store.objects.discard('1.0', 'never-written', 8192, 4096);
    assert.equal(await store.objects.list('1.0'), []);
    const empty = store.stats().usedBytes;
    await store.objects.write('1.0', 'a', 0, [pattern(1, 3 * CLUSTER)]);
    await store.objects.write('1.0', 'b', 0, [pattern(2, 3 * CLUSTER)]);
    await store.objects.discard('1.0', 'b', CLUSTER, CLUSTER);
    assert.equal(await store.objects.list('1.0'), ['a', 'b'], 'a partial discard keeps the object');
    assert.is((await store.objects.stat('1.0', 'b'))!.size, 3 * CLUSTER);
    await store.objects.discard('1.0', 'a', 0, 4 * MiB);
    await store.objects.discard('1.0', 'b', 0, 3 * CLUSTER);
    assert.equal(await store.objects.list('1.0'), []);
    assert.ok((await store.objects.read('1.0', 'a', 0, 8192)).every((b) => b === 0));
    await store.flush();
    // Released clusters are reused only once the deletion is durable.
    assert.is(store.stats().usedBytes, empty, 'their clusters are free again');
    store = await open(dev);
    assert.equal(await store.objects.list('1.0'), []);
    // Written again after its release, the object starts from zeroes.
    await store.objects.write('1.0', 'a', 4096, [pattern(3, 4096)]);
    assert.ok((await store.objects.read('1.0', 'a', 0, 4096)).every((b) => b === 0));
    await store.close();
    dev.destroy();
  });

  test('overlapping writes and zeroes issued without waiting land in issue order', async () => {
    const dev = makeDevice(kind, 32 * MiB);
    const store = await open(dev);
    const model = new Model();
    let seed = 11;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const work: Promise<void>[] = [];
    // A chain of ranges each overlapping the next (pages [k, k+2)) plus random ones: a later op
    // must never be overtaken by an earlier one that waits for a third.
    for (let k = 0; k < 12; k++) {
      const data = pattern(1000 + k, 2 * 4096);
      work.push(store.objects.write('1.0', 'o', k * 4096, [data]));
      model.write(k * 4096, data);
    }
    for (let i = 0; i < 80; i++) {
      const offset = rand(3) === 0 ? rand(40) * 4096 : rand(40 * 4096);
      const length = 1 + rand(3 * 4096);
      if (rand(4) === 0) {
        work.push(store.objects.writeZeroes('1.0', 'o', offset, length));
        model.zero(offset, length);
      } else {
        const data = pattern(i, length);
        work.push(store.objects.write('1.0', 'o', offset, [data]));
        model.write(offset, data);
      }
    }
    await Promise.all(work);
    const all = await store.objects.read('1.0', 'o', 0, model.bytes.length);
    assert.ok(Buffer.from(all).equals(model.bytes));
    await store.close();
    dev.destroy();
  });

  test('concurrent unaligned writes to one page all land', async () => {
    const dev = makeDevice(kind, 8 * MiB);
    const store = await open(dev);
    await Promise.all(Array.from({ length: 16 }, (_, i) => store.objects.write('1.0', 'o', i * 100, [Buffer.alloc(100, i + 1)])));
    const out = Buffer.from(await store.objects.read('1.0', 'o', 0, 1600));
    for (let i = 0; i < 16; i++) assert.ok(out.subarray(i * 100, i * 100 + 100).every((b) => b === i + 1), `write ${i}`);
    await store.close();
    dev.destroy();
  });

  test('missing objects read as zeroes; stat, list, remove, removePg', async () => {
    const dev = makeDevice(kind, 8 * MiB);
    let store = await open(dev);
    assert.ok(Buffer.from(await store.objects.read('1.0', 'nope', 100, 50)).equals(Buffer.alloc(50)));
    assert.is(await store.objects.stat('1.0', 'nope'), undefined);
    for (const name of ['b', 'a', 'c']) await store.objects.write('1.0', name, 0, [Buffer.from(name)]);
    await store.objects.write('1.1', 'x', 10, [Buffer.from('x')]);
    assert.equal(await store.objects.list('1.0'), ['a', 'b', 'c']);
    assert.equal(await store.objects.stat('1.1', 'x'), { size: 11 });
    await store.objects.remove('1.0', 'b');
    await store.flush();
    store = await open(dev);
    assert.equal(await store.objects.list('1.0'), ['a', 'c']);
    await store.objects.removePg('1.0');
    assert.equal(await store.objects.list('1.0'), []);
    assert.equal(await store.objects.list('1.1'), ['x']);
    await rejectsWith(store.objects.write('1.0', 'o', -1, [Buffer.alloc(1)]), 'INVALID_ARGUMENT');
    await store.close();
    dev.destroy();
  });

  test('export a PG in chunks and import it elsewhere: same objects, sizes, bytes, holes', async () => {
    const devA = makeDevice(kind, 16 * MiB);
    const devB = makeDevice(kind, 16 * MiB);
    const a = await open(devA);
    const b = await open(devB);
    await a.objects.write('3.1', 'sparse', 3 * CLUSTER + 5, [pattern(1, 9000)]);
    await a.objects.write('3.1', 'dense', 0, [pattern(2, 100_000)]);
    await a.objects.writeZeroes('3.1', 'empty', 0, 0);
    await a.objects.write('3.1', 'empty', 0, []);
    await a.objects.write('3.2', 'other', 0, [pattern(3, 10)]);
    await b.objects.write('3.1', 'stale', 0, [pattern(4, 10)]);
    const chunks: ObjectChunk[] = [];
    for await (const c of a.objects.exportPg('3.1', 16384)) chunks.push(c);
    assert.ok(chunks.every((c) => c.data.length <= 16384));
    assert.ok(chunks.filter((c) => c.object === 'sparse').length <= 2, 'holes are not exported');
    async function* replay(): AsyncIterable<ObjectChunk> {
      yield* chunks;
    }
    await b.objects.importPg('3.1', replay());
    assert.equal(await b.objects.list('3.1'), ['dense', 'empty', 'sparse']);
    for (const name of ['dense', 'sparse', 'empty']) {
      const stat = await a.objects.stat('3.1', name);
      assert.equal(await b.objects.stat('3.1', name), stat);
      assert.ok(Buffer.from(await b.objects.read('3.1', name, 0, stat!.size)).equals(Buffer.from(await a.objects.read('3.1', name, 0, stat!.size))));
    }
    await a.close();
    await b.close();
    devA.destroy();
    devB.destroy();
  });

  test('NO_SPACE on the write that does not fit; earlier objects stay readable', async () => {
    const dev = makeDevice(kind, 4 * MiB);
    const store = await open(dev);
    let written = 0;
    const err = await rejectsWith(
      (async () => {
        for (;;) {
          await store.objects.write('1.0', `o${written}`, 0, [pattern(written, CLUSTER * 2)]);
          written++;
        }
      })(),
      'NO_SPACE',
    );
    assert.ok(written > 5, err.message);
    await store.flush();
    for (let i = 0; i < written; i++) assert.ok(Buffer.from(await store.objects.read('1.0', `o${i}`, 0, CLUSTER * 2)).equals(pattern(i, CLUSTER * 2)));
    await store.objects.remove('1.0', 'o0');
    await store.flush();
    await store.objects.write('1.0', 'after', 0, [pattern(99, CLUSTER)]);
    await store.close();
    dev.destroy();
  });

  test('overwrites: only a whole-page write within the object, on held space, with nothing pending on its pages', async () => {
    const dev = makeDevice(kind, 8 * MiB);
    const store = await open(dev);
    const objects = store.objects;
    assert.not.ok(objects.overwrites('1.0', 'o', 0, 4096), 'an absent object');
    await objects.write('1.0', 'o', 0, [pattern(1, 3 * 4096)]);
    assert.ok(objects.overwrites('1.0', 'o', 0, 4096));
    assert.ok(objects.overwrites('1.0', 'o', 4096, 2 * 4096));
    assert.not.ok(objects.overwrites('1.0', 'o', 2 * 4096, 2 * 4096), 'grows the object');
    assert.not.ok(objects.overwrites('1.0', 'o', 100, 4096), 'unaligned: read-modify-write');
    assert.not.ok(objects.overwrites('1.0', 'o', 0, 0));
    assert.not.ok(objects.overwrites('1.0', 'other', 0, 4096));
    // A write of those pages still pending: the next one would wait for it.
    const pending = objects.write('1.0', 'o', 0, [pattern(2, 4096)]);
    assert.not.ok(objects.overwrites('1.0', 'o', 0, 4096));
    assert.ok(objects.overwrites('1.0', 'o', 4096, 4096), 'other pages are free');
    await pending;
    assert.ok(objects.overwrites('1.0', 'o', 0, 4096));
    // Unmapped space is not held: a write there allocates again.
    await objects.write('1.0', 'big', 0, [pattern(3, 2 * CLUSTER)]);
    await objects.discard('1.0', 'big', 0, CLUSTER);
    assert.not.ok(objects.overwrites('1.0', 'big', 0, 4096), 'a discarded cluster');
    assert.ok(objects.overwrites('1.0', 'big', CLUSTER, 4096));
    await objects.discard('1.0', 'big', 0, 2 * CLUSTER);
    assert.not.ok(objects.overwrites('1.0', 'big', CLUSTER, 4096), 'a removed object');
    await store.close();
    dev.destroy();
  });

  test.run();
}

for (const kind of deviceKinds()) suiteFor(kind);
