// The space of an image goes back to the OSDs: `fastblock image rm` releases every object on every
// replica before it drops the image, and a shrink releases the end it cut off, so growing the image
// again shows zeroes there. What is left is checked in the OSDs' own stores after the cluster stops.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { connect } from '../../client/connect.js';
import { FASTBLOCK, run } from '../cli/daemon-process.js';
import { BlobShardStore } from '../../plugins/store-blobstore/shard-store.js';
import { storePlugin, withTestCluster } from './harness/test-cluster.js';

const MiB = 1024 * 1024;
const STORE_MB = 256;
const md5 = (bytes: Uint8Array): string => createHash('md5').update(bytes).digest('hex');

/** The fastblock CLI as a user runs it; resolves with its last JSON line. */
async function cli(addr: string, ...args: string[]): Promise<Record<string, unknown>> {
  const done = await run(FASTBLOCK, [...args, '--json', '--addr', addr]);
  if (done.code !== 0) throw new Error(`fastblock ${args.join(' ')} exited ${done.code}: ${done.stderr}${done.stdout}`);
  return JSON.parse(done.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

test('image rm and a shrink release their objects on every replica; other images keep theirs', async () => {
  if (storePlugin() !== 'blobstore') return console.log('SKIP image-release reads the blobstore files of the OSDs');
  await withTestCluster({
    name: 'image-release',
    osds: 3,
    pool: { name: 'rbd', size: 3, pgNum: 16 },
    image: { name: 'disk', sizeBytes: 32 * MiB },
    storeSizeMb: STORE_MB,
    gateway: false,
    logLevel: 'warn',
  }, async (cluster) => {
    const addr = cluster.monitorAddress;
    await cli(addr, 'image', 'create', 'rbd/keep', '--size', '8M');
    const client = await connect({ monitors: [addr], name: 'image-release-test' });
    const data = randomBytes(32 * MiB);
    const kept = randomBytes(8 * MiB);
    try {
      const disk = await client.openImage('rbd/disk');
      await disk.write(0, [data]);
      await disk.close();
      const keep = await client.openImage('rbd/keep');
      await keep.write(0, [kept]);
      await keep.close();
    } finally {
      await client.close();
    }

    // Shrink to 13 MiB: objects 4..7 go whole, object 3 loses its last 3 MiB.
    const shrunk = await cli(addr, 'image', 'resize', 'rbd/disk', '--size', '13M', '--yes');
    assert.is(shrunk.sizeBytes, 13 * MiB);
    assert.is(shrunk.objectsReleased, 5);
    await cli(addr, 'image', 'resize', 'rbd/disk', '--size', '32M');
    const reader = await connect({ monitors: [addr], name: 'image-release-reader' });
    try {
      const disk = await reader.openImage('rbd/disk');
      assert.is(disk.size, 32 * MiB);
      assert.is(md5(await disk.read(0, 13 * MiB)), md5(data.subarray(0, 13 * MiB)), 'the kept part is intact');
      assert.ok((await disk.read(13 * MiB, 19 * MiB)).every((b) => b === 0), 'the released end reads as zeroes after the grow');
      await disk.close();
    } finally {
      await reader.close();
    }

    const removed = await cli(addr, 'image', 'rm', 'rbd/disk', '--yes');
    assert.is(removed.objectsReleased, 8);
    const images = (await cli(addr, 'image', 'ls')) as unknown as { name: string }[];
    assert.equal(images.map((i) => i.name), ['keep']);

    const after = await connect({ monitors: [addr], name: 'image-release-after' });
    try {
      const keep = await after.openImage('rbd/keep');
      assert.is(md5(await keep.read(0, 8 * MiB)), md5(kept), 'the other image is untouched');
      await keep.close();
    } finally {
      await after.close();
    }

    // Every replica holds rbd/keep's two objects and nothing of rbd/disk.
    await cluster.stop();
    for (let osd = 0; osd < 3; osd++) {
      const store = await BlobShardStore.open({ shard: 0, path: join(cluster.dir, `osd${osd}`, 'shard-0.blob'), sizeBytes: STORE_MB * MiB, create: false });
      try {
        assert.is(store.objects.objectCount, 2, `objects left on osd${osd}`);
      } finally {
        await store.close();
      }
    }
  });
});

test.run();
