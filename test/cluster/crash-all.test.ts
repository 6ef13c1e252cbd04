// @slow
/**
 * kill -9 of every OSD at once in the middle of a write stream, then a restart: every write the
 * client saw acknowledged (before the kill, or after the restart) reads back. Each write goes to
 * its own block with its own stamp, and the test keeps the log of acknowledgements.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '../../client/connect.js';
import { storePlugin, withTestCluster } from './harness/test-cluster.js';

// Large enough blocks over few PGs that the logs pass their byte bound: checkpoints compact them mid-run.
const BLOCK = 32 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function stamped(block: number): Uint8Array {
  const out = new Uint8Array(BLOCK);
  const view = new DataView(out.buffer);
  for (let at = 0; at < BLOCK; at += 8) view.setUint32(at, block, true), view.setUint32(at + 4, (block * 2654435761 + at) >>> 0, true);
  return out;
}

if (!storePlugin()) {
  console.log('SKIP crash-all: the blobstore plugin manifest (plugins/store-blobstore/plugin.ts) is not in the tree yet');
} else {
  test('SIGKILL of all three OSDs mid-write: every acknowledged write reads back after restart', async () => {
    await withTestCluster({ name: 'crash-all', gateway: false, pool: { name: 'rbd', size: 3, pgNum: 8 }, image: { name: 'disk', sizeBytes: 256 * 1024 * 1024 } }, async (cluster) => {
      const client = await connect({ monitors: [cluster.monitorAddress], retry: { opTimeoutMs: 90_000 } });
      try {
        const image = await client.openImage('rbd/disk');
        const acknowledged: number[] = [];
        const failed: number[] = [];
        let next = 0;
        let writing = true;
        const writer = async () => {
          while (writing && (next + 1) * BLOCK <= image.size) {
            const block = next++;
            try {
              await image.write(block * BLOCK, [stamped(block)]);
              acknowledged.push(block);
            } catch {
              failed.push(block);
            }
          }
        };
        const writers = Array.from({ length: 16 }, writer);
        await sleep(5000);
        const before = acknowledged.length;
        for (let i = 0; i < 3; i++) cluster.kill(`osd${i}`);
        writing = false;
        for (let i = 0; i < 3; i++) await cluster.exited(`osd${i}`);
        console.log(`killed all OSDs with ${before} writes acknowledged and ${next - before} in flight`);
        for (let i = 0; i < 3; i++) cluster.startOsd(i);
        await Promise.all(writers);
        console.log(`after restart: ${acknowledged.length} acknowledged, ${failed.length} failed`);
        assert.ok(before > 0, 'writes were acknowledged before the kill');
        for (const block of acknowledged) {
          const bytes = await image.read(block * BLOCK, BLOCK);
          assert.ok(Buffer.compare(bytes, stamped(block)) === 0, `acknowledged block ${block} does not read back`);
        }
      } finally {
        await client.close();
      }
    });
  });
}

test.run();
