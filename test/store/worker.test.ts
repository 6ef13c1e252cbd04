import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { BlobShardStore } from '../../plugins/store-blobstore/shard-store.js';
import { uringUnavailableReason } from '../../plugins/store-blobstore/bdev/file-bdev.js';
import { scratchDir } from './devices.js';

/** A worker running test/store/worker-shard.ts under tsx, as the OSD starts its shard threads. */
function shardThread(data: Record<string, unknown>): Worker {
  const api = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./worker-shard.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true, workerData: data });
}

const exited = (w: Worker): Promise<number> => new Promise((resolve, reject) => (w.on('exit', resolve), w.on('error', reject)));
const ready = (w: Worker): Promise<void> => new Promise((resolve) => w.once('message', () => resolve()));

const reason = uringUnavailableReason();
if (reason !== undefined) console.log(`SKIP worker suite needs io_uring: ${reason}`);

test('shard threads on regions of one file: each has its ring; threads exit with or without closing', async () => {
  if (reason !== undefined) return;
  const path = join(scratchDir(), 'threads.img');
  for (const close of [true, false]) {
    const threads = [0, 1, 2].map((shard) => shardThread({ path, shard, close, spin: false }));
    assert.equal(await Promise.all(threads.map(exited)), [0, 0, 0]);
  }
  const spinning = shardThread({ path, shard: 0, close: false, spin: true });
  await ready(spinning);
  await spinning.terminate();
  // The data of every shard is there, and the regions are free again.
  for (const shard of [0, 1, 2]) {
    const store = await BlobShardStore.open({ shard, path, sizeBytes: 32 << 20, offsetBytes: shard * (32 << 20), create: false });
    assert.ok(Buffer.from(await store.objects.read('1.0', `shard-${shard}`, 0, 8192)).every((b) => b === shard + 1));
    await store.close();
  }
});

test('a thread terminated in the middle of a native call ends alone; the process goes on', async () => {
  if (reason !== undefined) return;
  const path = join(scratchDir(), 'hammer.img');
  for (let round = 0; round < 20; round++) {
    const thread = shardThread({ path, shard: 0, close: false, spin: false, hammer: true });
    await ready(thread);
    await new Promise((resolve) => setTimeout(resolve, 2));
    assert.is(await thread.terminate(), 1);
  }
});

test.run();
