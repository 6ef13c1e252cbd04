/**
 * A full OSD: past osd.fullRatio its store refuses new writes with NO_SPACE (the client's write
 * fails, nothing else does), reads and discards still go, and once discards have given space back
 * writes are taken again, without a restart. The room left is what the raft logs need: a log append
 * that found no space would stop its PG.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '../../client/connect.js';
import type { Image } from '../../client/image.js';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { storePlugin, withTestCluster } from './harness/test-cluster.js';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes `chunk` after `chunk` from offset 0 until one is refused; the bytes written and the refusal. */
async function writeUntilRefused(image: Image, chunk: Uint8Array): Promise<{ written: number; refusal: unknown }> {
  let written = 0;
  while (written < 256 * MiB) {
    try {
      await image.write(written, [chunk]);
      written += chunk.length;
    } catch (refusal) {
      return { written, refusal };
    }
  }
  return { written, refusal: undefined };
}

/** Retries a write at 0 every 500 ms while it is refused with NO_SPACE; whether it was taken in time. */
async function writeOnceFreed(image: Image, chunk: Uint8Array, tries: number): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    await sleep(500);
    try {
      await image.write(0, [chunk]);
      return true;
    } catch (err) {
      if (!isFastblockError(err, ErrorCode.NO_SPACE)) throw err;
    }
  }
  return false;
}

test('past the full ratio writes fail with NO_SPACE, reads and discards go on, and freed space takes writes again', async () => {
  if (!storePlugin()) return console.log('SKIP full: no store plugin in the tree');
  await withTestCluster(
    {
      name: 'full',
      osds: 1,
      pool: { name: 'rbd', size: 1, pgNum: 4 },
      image: { name: 'disk', sizeBytes: 256 * MiB },
      storeSizeMb: 256,
      gateway: false,
      logLevel: 'warn',
      osdSettings: { 'osd.fullRatio': 0.3 },
    },
    async (cluster) => {
      const client = await connect({ monitors: [cluster.monitorAddress], retry: { opTimeoutMs: 20_000 } });
      try {
        const image = await client.openImage('rbd/disk');
        const chunk = new Uint8Array(MiB).fill(7);
        // The full check runs every raft tick: keep writing until it trips.
        const { written, refusal } = await writeUntilRefused(image, chunk);
        assert.ok(refusal, `no write was refused after ${written / MiB} MiB`);
        assert.ok(isFastblockError(refusal, ErrorCode.NO_SPACE), `refused with ${String(refusal)}`);
        assert.match(String((refusal as Error).message), /full/);
        console.log(`refused after ${written / MiB} MiB: ${(refusal as Error).message}`);

        // Reads still answer; the PG is healthy, not stopped.
        assert.ok((await image.read(0, MiB)).every((b) => b === 7));
        // Discards free space; at the next store flush (a checkpoint, every 5 s) it is free.
        await image.discard(0, written);
        assert.ok(await writeOnceFreed(image, chunk, 40), 'writes are taken again once space was freed');
        assert.ok((await image.read(0, MiB)).every((b) => b === 7));
        assert.ok((await image.read(MiB, MiB)).every((b) => b === 0), 'the discarded range reads as zeroes');
        await image.close();
      } finally {
        await client.close();
      }
    },
  );
});

test('an OSD past monitor.fullRatio makes the leaders of its PGs refuse writes, whatever their own stores hold', async () => {
  if (!storePlugin()) return console.log('SKIP full: no store plugin in the tree');
  await withTestCluster(
    {
      name: 'full-replica',
      osds: 3,
      pool: { name: 'rbd', size: 3, pgNum: 8 },
      image: { name: 'disk', sizeBytes: 256 * MiB },
      // The PGs' log rings stay as large as they grew (each up to about twice what a log holds
      // before it is compacted, ~4 MiB): on a 256 MiB store eight of them alone could hold the
      // OSD past 0.3 after the discard.
      storeSizeMb: 512,
      gateway: false,
      logLevel: 'warn',
      // The OSDs' own check would trip only at 0.99: what refuses writes here is the monitor's.
      osdSettings: { 'osd.fullRatio': 0.99, 'osd.heartbeatMs': 500 },
      monitorSettings: { 'monitor.nearFullRatio': 0.2, 'monitor.fullRatio': 0.3 },
    },
    async (cluster) => {
      const client = await connect({ monitors: [cluster.monitorAddress], retry: { opTimeoutMs: 20_000 } });
      try {
        const image = await client.openImage('rbd/disk');
        const chunk = new Uint8Array(MiB).fill(9);
        const { written, refusal } = await writeUntilRefused(image, chunk);
        assert.ok(refusal, `no write was refused after ${written / MiB} MiB`);
        assert.ok(isFastblockError(refusal, ErrorCode.NO_SPACE), `refused with ${String(refusal)}`);
        assert.match(String((refusal as Error).message), /osd\.\d+ holds a replica and is past monitor\.fullRatio/);
        console.log(`refused after ${written / MiB} MiB: ${(refusal as Error).message}`);
        assert.ok((await image.read(0, MiB)).every((b) => b === 9), 'reads go on');
        await image.discard(0, written);
        assert.ok(await writeOnceFreed(image, chunk, 60), 'writes are taken again once the OSDs report the space freed');
        await image.close();
      } finally {
        await client.close();
      }
    },
  );
});

test.run();
