import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { BlobStoreFactory } from '../../plugins/store-blobstore/store-factory.js';
import { FileBdev } from '../../plugins/store-blobstore/bdev/file-bdev.js';
import { allocAligned } from '../../plugins/store-blobstore/bdev/aligned-memory.js';
import { pattern, rejectsWith, scratchDir } from './devices.js';

const MiB = 1 << 20;
const factory = new BlobStoreFactory({ clusterSize: 256 * 1024 });

test('factory: a shard store on a new file, formatted once, reopened with its data', async () => {
  const path = join(scratchDir(), 'shard-0.img');
  let store = await factory.open({ shard: 0, path, sizeBytes: 64 * MiB, create: true });
  await store.objects.write('1.0', 'o', 0, [pattern(1, 10_000)]);
  await (await store.diskLog('1.0')).append([{ index: 1, term: 1, type: 0, data: pattern(2, 50) }]);
  store.kv.set('k', new Uint8Array([1]));
  await store.kv.flush();
  assert.ok(store.stats().usedBytes > 0 && store.stats().capacityBytes > 60 * MiB);
  await store.close();
  store = await factory.open({ shard: 0, path, sizeBytes: 64 * MiB, create: true });
  assert.ok(Buffer.from(await store.objects.read('1.0', 'o', 0, 10_000)).equals(pattern(1, 10_000)));
  assert.is((await store.diskLog('1.0')).lastIndex, 1);
  assert.equal([...store.kv.get('k')!], [1]);
  await store.close();
});

test('missing device without create is NOT_FOUND; a device too small is refused', async () => {
  await rejectsWith(factory.open({ shard: 0, path: join(scratchDir(), 'none.img'), sizeBytes: 64 * MiB, create: false }), 'NOT_FOUND');
  await rejectsWith(factory.open({ shard: 0, path: join(scratchDir(), 'tiny.img'), sizeBytes: 256 * 1024, create: true }), 'INVALID_ARGUMENT');
});

test('exclusive: a second opener in this process or another one gets BUSY', async () => {
  const path = join(scratchDir(), 'locked.img');
  const store = await factory.open({ shard: 0, path, sizeBytes: 16 * MiB, create: true });
  await rejectsWith(factory.open({ shard: 0, path, sizeBytes: 16 * MiB, create: true }), 'BUSY');
  const child = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `import { FileBdev } from ${JSON.stringify(join(process.cwd(), 'plugins/store-blobstore/bdev/file-bdev.ts'))};
       try { FileBdev.open({ path: ${JSON.stringify(path)}, sizeBytes: ${16 * MiB}, create: false }); console.log('opened'); }
       catch (e) { console.log(e.code); }`,
    ],
    { encoding: 'utf8' },
  );
  assert.is(child.stdout.trim(), 'BUSY', child.stderr);
  await store.close();
  const again = await factory.open({ shard: 0, path, sizeBytes: 16 * MiB, create: true });
  await again.close();
});

test('one device, one region per shard: shards coexist, overlapping regions are refused', async () => {
  const path = join(scratchDir(), 'shared.img');
  const shards = await Promise.all([0, 1, 2].map((shard) => factory.open({ shard, path, sizeBytes: 16 * MiB, offsetBytes: shard * 16 * MiB, create: true })));
  await rejectsWith(factory.open({ shard: 3, path, sizeBytes: 16 * MiB, offsetBytes: 8 * MiB, create: true }), 'BUSY');
  for (const s of shards) await s.objects.write('1.0', 'o', 0, [pattern(s.shard, 5000)]);
  await Promise.all(shards.map((s) => s.close()));
  const reopened = await Promise.all([0, 1, 2].map((shard) => factory.open({ shard, path, sizeBytes: 16 * MiB, offsetBytes: shard * 16 * MiB, create: true })));
  for (const s of reopened) assert.ok(Buffer.from(await s.objects.read('1.0', 'o', 0, 5000)).equals(pattern(s.shard, 5000)));
  await Promise.all(reopened.map((s) => s.close()));
});

test('file bdev: misaligned or out-of-range I/O is refused; unaligned memory is bounced', async () => {
  for (const io of ['uring', 'fs'] as const) {
    const bdev = FileBdev.open({ path: join(scratchDir(), `raw-${io}.img`), sizeBytes: 4 * MiB, create: true, io });
    assert.is(bdev.backend, io);
    await rejectsWith(async () => bdev.write(100, allocAligned(4096)), 'INVALID_ARGUMENT');
    await rejectsWith(async () => bdev.read(4 * MiB, allocAligned(4096)), 'INVALID_ARGUMENT');
    const unaligned = Buffer.alloc(8193).subarray(1);
    pattern(5, 8192).copy(unaligned);
    await bdev.write(8192, [unaligned.subarray(0, 4096), unaligned.subarray(4096)]);
    await bdev.flush();
    const back = Buffer.alloc(8193).subarray(1);
    await bdev.read(8192, back);
    assert.ok(back.equals(pattern(5, 8192)));
    await bdev.writeZeroes(8192, 4096);
    await bdev.read(8192, back);
    assert.ok(back.subarray(0, 4096).equals(Buffer.alloc(4096)) && back.subarray(4096).equals(pattern(5, 8192).subarray(4096)));
    await bdev.close();
    await rejectsWith(async () => bdev.read(0, allocAligned(4096)), 'CLOSED');
  }
});

test('FASTBLOCK_STORE_IO forces the backend', async () => {
  const saved = process.env.FASTBLOCK_STORE_IO;
  process.env.FASTBLOCK_STORE_IO = 'fs';
  try {
    const bdev = FileBdev.open({ path: join(scratchDir(), 'forced.img'), sizeBytes: 4 * MiB, create: true, io: 'uring' });
    assert.is(bdev.backend, 'fs');
    await bdev.close();
  } finally {
    if (saved === undefined) delete process.env.FASTBLOCK_STORE_IO;
    else process.env.FASTBLOCK_STORE_IO = saved;
  }
});

test.run();
