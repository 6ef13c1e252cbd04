import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Blobstore } from '../../plugins/store-blobstore/blobstore/blobstore.js';
import type { Blob } from '../../plugins/store-blobstore/blobstore/blob.js';
import { MemoryBdev } from '../../plugins/store-blobstore/bdev/memory-bdev.js';
import { type DeviceKind, deviceKinds, makeDevice, pattern, rejectsWith } from './devices.js';

const MiB = 1 << 20;
const CLUSTER = 64 * 1024;
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

async function readBlob(bs: Blobstore, id: number, offset: number, length: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  await bs.openBlob(id).read(offset, out);
  return out;
}

function suiteFor(kind: DeviceKind): void {
  const test = suite(`blobstore on ${kind}`);

  test('format, write, close, load clean: blobs, xattrs and data come back', async () => {
    const dev = makeDevice(kind, 32 * MiB);
    let bs = await Blobstore.open(dev.open(), { create: true, clusterSize: CLUSTER });
    const a = bs.createBlob(new Map([['name', text('a')]]));
    a.resize(4);
    await a.write(0, pattern(1, 8192));
    await a.write(3 * CLUSTER + 4096, pattern(2, 4096));
    const b = bs.createBlob();
    b.setXattr('kind', text('object'));
    b.resize(1);
    await b.write(0, [pattern(3, 4096), pattern(4, 4096)]);
    await bs.close();
    bs = await Blobstore.open(dev.open(), { create: true });
    assert.equal(bs.blobIds(), [a.id, b.id]);
    assert.equal(Buffer.from(bs.openBlob(a.id).getXattr('name')!).toString(), 'a');
    assert.equal(bs.openBlob(a.id).clusterCount, 4);
    assert.ok((await readBlob(bs, a.id, 0, 8192)).equals(pattern(1, 8192)));
    assert.ok((await readBlob(bs, a.id, 3 * CLUSTER + 4096, 4096)).equals(pattern(2, 4096)));
    assert.ok((await readBlob(bs, b.id, 0, 8192)).equals(Buffer.concat([pattern(3, 4096), pattern(4, 4096)])));
    assert.equal(bs.openBlob(a.id).allocatedClusters(), 2, 'thin: only written clusters allocated');
    assert.ok((await bs.fsck()).ok);
    await bs.close();
    dev.destroy();
  });

  test('thin provisioning: holes and the rest of a new cluster read as zeroes, even over old bytes', async () => {
    const dev = makeDevice(kind, 16 * MiB);
    const bdev = dev.open();
    // Leave junk where clusters will be allocated.
    for (let off = 2 * MiB; off < 16 * MiB; off += MiB) await bdev.write(off, pattern(off, MiB));
    const bs = await Blobstore.format(bdev, { clusterSize: CLUSTER });
    const blob = bs.createBlob();
    blob.resize(8);
    assert.ok((await readBlob(bs, blob.id, 0, 8 * CLUSTER)).equals(Buffer.alloc(8 * CLUSTER)));
    for (let i = 0; i < 40; i++) {
      const other = bs.createBlob();
      other.resize(1);
      await other.write(0, Buffer.alloc(CLUSTER, 1));
    }
    await blob.write(5 * CLUSTER + 8192, pattern(9, 4096));
    const all = await readBlob(bs, blob.id, 0, 8 * CLUSTER);
    const expected = Buffer.alloc(8 * CLUSTER);
    pattern(9, 4096).copy(expected, 5 * CLUSTER + 8192);
    assert.ok(all.equals(expected));
    assert.equal(blob.allocatedClusters(), 1);
    await bs.close();
    await bdev.close();
    dev.destroy();
  });

  test('unclean shutdown: load rebuilds the masks from md pages', async () => {
    const dev = makeDevice(kind, 16 * MiB);
    let bs = await Blobstore.open(dev.open(), { create: true, clusterSize: CLUSTER });
    const ids: number[] = [];
    for (let i = 0; i < 10; i++) {
      const blob = bs.createBlob(new Map([['i', text(String(i))]]));
      blob.resize(3);
      await blob.write(CLUSTER, pattern(i, 8192));
      ids.push(blob.id);
    }
    bs.deleteBlob(bs.openBlob(ids[3]));
    await bs.flush();
    const used = bs.usedClusters;
    // No close(): the clean flag stays clear.
    bs = await Blobstore.load(dev.open());
    assert.equal(bs.blobIds(), ids.filter((id) => id !== ids[3]));
    assert.equal(bs.usedClusters, used);
    for (const id of bs.blobIds()) {
      const i = Number(Buffer.from(bs.openBlob(id).getXattr('i')!).toString());
      assert.ok((await readBlob(bs, id, CLUSTER, 8192)).equals(pattern(i, 8192)));
    }
    const report = await bs.fsck();
    assert.ok(report.ok, report.errors.join('; '));
    await bs.close();
    dev.destroy();
  });

  test('md spanning several chained pages: many xattrs and a fragmented cluster map', async () => {
    const dev = makeDevice(kind, 32 * MiB);
    let bs = await Blobstore.open(dev.open(), { create: true, clusterSize: 16 * 1024 });
    const big = bs.createBlob();
    const other = bs.createBlob();
    big.resize(1200);
    other.resize(1200);
    for (let i = 0; i < 1200; i += 2) {
      await big.write(i * 16384, pattern(i, 4096));
      await other.write(i * 16384, pattern(-i, 4096));
    }
    for (let i = 0; i < 30; i++) big.setXattr(`attr-${i}`, pattern(i, 300));
    await bs.flush();
    // Rewrite it (new chain, old chain released) and reload without a clean close.
    big.setXattr('attr-0', text('changed'));
    await bs.flush();
    bs = await Blobstore.load(dev.open());
    const b = bs.openBlob(big.id);
    assert.equal(Buffer.from(b.getXattr('attr-0')!).toString(), 'changed');
    assert.ok(Buffer.from(b.getXattr('attr-29')!).equals(pattern(29, 300)));
    assert.equal(b.allocatedClusters(), 600);
    for (const i of [0, 2, 598, 1198]) assert.ok((await readBlob(bs, big.id, i * 16384, 4096)).equals(pattern(i, 4096)));
    const report = await bs.fsck();
    assert.ok(report.ok, report.errors.join('; '));
    await bs.close();
    dev.destroy();
  });

  test('delete: space comes back after a flush, and the blob stays gone', async () => {
    const dev = makeDevice(kind, 8 * MiB);
    let bs = await Blobstore.open(dev.open(), { create: true, clusterSize: CLUSTER });
    const blob = bs.createBlob();
    blob.resize(10);
    await blob.write(0, Buffer.alloc(10 * CLUSTER, 7));
    await bs.flush();
    const free = bs.freeClusters;
    bs.deleteBlob(blob);
    await rejectsWith(blob.read(0, Buffer.alloc(4096)), 'NOT_FOUND');
    assert.equal(bs.freeClusters, free, 'not reusable before the delete is durable');
    await bs.flush();
    assert.equal(bs.freeClusters, free + 10);
    await bs.close();
    bs = await Blobstore.load(dev.open());
    assert.equal(bs.blobIds(), []);
    await rejectsWith(async () => bs.openBlob(blob.id), 'NOT_FOUND');
    await bs.close();
    dev.destroy();
  });

  test('resize: growing is thin, shrinking frees the clusters past the new end once durable', async () => {
    const dev = makeDevice(kind, 8 * MiB);
    let bs = await Blobstore.open(dev.open(), { create: true, clusterSize: CLUSTER });
    const blob = bs.createBlob();
    blob.resize(6);
    for (let i = 0; i < 6; i++) await blob.write(i * CLUSTER, pattern(i, 4096));
    await bs.flush();
    const free = bs.freeClusters;
    blob.resize(2);
    await rejectsWith(blob.read(2 * CLUSTER, Buffer.alloc(4096)), 'INVALID_ARGUMENT');
    await bs.flush();
    await bs.flush();
    assert.is(bs.freeClusters, free + 4);
    blob.resize(4);
    assert.is(bs.freeClusters, free + 4, 'growing allocates nothing');
    assert.ok((await readBlob(bs, blob.id, 3 * CLUSTER, 4096)).equals(Buffer.alloc(4096)), 'regrown range reads as zeroes');
    await bs.flush();
    bs = await Blobstore.load(dev.open());
    const b = bs.openBlob(blob.id);
    assert.is(b.clusterCount, 4);
    assert.is(b.allocatedClusters(), 2);
    for (const i of [0, 1]) assert.ok((await readBlob(bs, blob.id, i * CLUSTER, 4096)).equals(pattern(i, 4096)));
    assert.ok((await bs.fsck()).ok);
    await bs.close();
    dev.destroy();
  });

  test('NO_SPACE on the write that does not fit; everything written stays readable', async () => {
    const dev = makeDevice(kind, 4 * MiB);
    const bs = await Blobstore.open(dev.open(), { create: true, clusterSize: CLUSTER });
    const blobs: Blob[] = [];
    let failed = false;
    for (let i = 0; !failed; i++) {
      const blob = bs.createBlob();
      blob.resize(2);
      try {
        await blob.write(0, pattern(i, 2 * CLUSTER));
        blobs.push(blob);
      } catch (err) {
        assert.is((err as { code: string }).code, 'NO_SPACE');
        assert.is(blob.allocatedClusters(), 0, 'the failed write allocated nothing');
        failed = true;
      }
    }
    assert.ok(blobs.length > 10);
    await bs.flush();
    for (const [i, blob] of blobs.entries()) {
      const out = Buffer.alloc(2 * CLUSTER);
      await blob.read(0, out);
      assert.ok(out.equals(pattern(i, 2 * CLUSTER)));
    }
    assert.ok((await bs.fsck()).ok);
    await bs.close();
    dev.destroy();
  });

  test('reads and writes past the end, or misaligned, are refused', async () => {
    const dev = makeDevice(kind, 4 * MiB);
    const bs = await Blobstore.open(dev.open(), { create: true, clusterSize: CLUSTER });
    const blob = bs.createBlob();
    blob.resize(1);
    await rejectsWith(blob.read(CLUSTER, Buffer.alloc(4096)), 'INVALID_ARGUMENT');
    await rejectsWith(blob.write(CLUSTER - 4096, Buffer.alloc(8192)), 'INVALID_ARGUMENT');
    await rejectsWith(blob.write(100, Buffer.alloc(4096)), 'INVALID_ARGUMENT');
    await bs.close();
    dev.destroy();
  });

  test('bad super block: signature and CRC', async () => {
    const dev = makeDevice(kind, 4 * MiB);
    let bdev = dev.open();
    await rejectsWith(Blobstore.open(bdev, { create: false }), 'CORRUPT');
    const bs = await Blobstore.open(bdev, { create: true, clusterSize: CLUSTER });
    await bs.close();
    const page = Buffer.alloc(4096);
    await bdev.read(0, page);
    page[100] ^= 0xff;
    await bdev.write(0, page);
    const err = await rejectsWith(Blobstore.open(bdev, { create: true }), 'CORRUPT');
    assert.match(err.message, /CRC/);
    page.write('NOTBLOBS', 0);
    await bdev.write(0, page);
    const err2 = await rejectsWith(Blobstore.open(bdev, { create: true }), 'CORRUPT');
    assert.match(err2.message, /signature/);
    await bdev.close();
    dev.destroy();
  });

  test('an md page with a bad CRC: that blob is reported, the others stay usable', async () => {
    for (const clean of [true, false]) {
      const dev = makeDevice(kind, 8 * MiB);
      const bdev = dev.open();
      let bs = await Blobstore.open(bdev, { create: true, clusterSize: CLUSTER });
      const ids: number[] = [];
      for (let i = 0; i < 3; i++) {
        const blob = bs.createBlob();
        blob.resize(1);
        await blob.write(0, pattern(i, 4096));
        ids.push(blob.id);
      }
      if (clean) await bs.close();
      else await bs.flush();
      const mdPage = (bs.geometry.mdStart + ids[1]) * 4096;
      const page = Buffer.alloc(4096);
      await bdev.read(mdPage, page);
      page[40] ^= 0x55;
      await bdev.write(mdPage, page);
      bs = await Blobstore.load(bdev);
      assert.ok(bs.damaged.has(ids[1]), `blob ${ids[1]} reported (clean=${clean})`);
      await rejectsWith(async () => bs.openBlob(ids[1]), 'CORRUPT');
      for (const i of [0, 2]) assert.ok((await readBlob(bs, ids[i], 0, 4096)).equals(pattern(i, 4096)));
      const fresh = bs.createBlob();
      assert.not.equal(fresh.id, ids[1], 'the damaged page is not reused');
      await bs.close();
      await bdev.close();
      dev.destroy();
    }
  });

  test.run();
}

const small = suite('blobstore geometry');
small('device too small is a clear error', async () => {
  const err = await rejectsWith(Blobstore.format(new MemoryBdev(256 * 1024), { clusterSize: 1 << 20 }), 'INVALID_ARGUMENT');
  assert.match(err.message, /too small/);
});
small.run();

for (const kind of deviceKinds()) suiteFor(kind);
