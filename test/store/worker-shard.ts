/** A shard thread for worker.test.ts: opens its region of a shared file, writes, maybe closes. */
import { parentPort, workerData } from 'node:worker_threads';
import { BlobShardStore } from '../../plugins/store-blobstore/shard-store.js';
import { UringEngine } from '../../plugins/store-blobstore/bdev/uring-engine.js';

const { path, shard, close, spin, hammer } = workerData as { path: string; shard: number; close: boolean; spin: boolean; hammer?: boolean };
const MiB = 1 << 20;
const store = await BlobShardStore.open({ shard, path, sizeBytes: 32 * MiB, offsetBytes: shard * 32 * MiB, create: true, io: 'uring' });
await store.objects.write('1.0', `shard-${shard}`, 0, [new Uint8Array(8192).fill(shard + 1)]);
await store.flush();
if (close) await store.close();
parentPort!.postMessage('ready');
// Calls into the addon without a pause, so that terminate() lands inside a native call: the addon
// must not turn the refused call into a fatal error that takes the whole process down.
if (hammer) {
  const ring = (UringEngine.get() as unknown as { ring: { submit(): number } }).ring;
  for (;;) ring.submit();
}
// Keeps I/O in flight until the thread is terminated.
if (spin) for (;;) await store.objects.write('1.0', 'spin', 0, [new Uint8Array(4096)]);
