// @slow
/**
 * Real third-party clients against a whole cluster through the NBD gateway (3 OSDs, size 3):
 * qemu-img and qemu-io with patterns, nbdinfo, nbdcopy of a 256 MiB random file in and out with
 * equal checksums, and fio's nbd engine with crc32c verification, then a full verify pass.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFio } from './harness/fio.js';
import { startTestCluster, storePlugin } from './harness/test-cluster.js';

const MiB = 1024 * 1024;

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
}

if (!storePlugin()) {
  console.log('SKIP real-clients: the blobstore plugin manifest is not in the tree');
} else {
  test('qemu-img, qemu-io, nbdinfo, nbdcopy and fio against the cluster through NBD', async () => {
    const { cluster, cleanup } = await startTestCluster({ name: 'clients', pool: { name: 'rbd', size: 3, pgNum: 32 }, image: { name: 'disk', sizeBytes: 512 * MiB } });
    let failure: unknown;
    const scratch = mkdtempSync(join(tmpdir(), 'fastblock-clients-'));
    try {
      const uri = cluster.nbdUri;
      assert.match(run('qemu-img', ['info', uri]), /virtual size: 512 MiB/);
      assert.match(run('nbdinfo', [uri]), /export-size: 536870912/);

      run('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 0 1M', '-c', 'write -P 0x5c 5M 64k', '-c', 'write -z 3M 4k', uri]);
      run('qemu-io', ['-f', 'raw', '-c', 'read -P 0xab 0 1M', '-c', 'read -P 0x5c 5M 64k', '-c', 'read -P 0 3M 4k', uri]);
      let mismatch = false;
      try {
        run('qemu-io', ['-f', 'raw', '-c', 'read -P 0xcd 0 4k', uri]);
      } catch {
        mismatch = true;
      }
      assert.ok(mismatch, 'qemu-io notices a wrong pattern (the check can fail)');

      const file = join(scratch, 'random.img');
      writeFileSync(file, randomBytes(256 * MiB));
      const started = Date.now();
      run('nbdcopy', [file, uri]);
      const inSeconds = (Date.now() - started) / 1000;
      const back = join(scratch, 'back.img');
      run('nbdcopy', [uri, back]);
      const sha = (path: string, bytes?: number) => createHash('sha256').update(bytes === undefined ? readFileSync(path) : readFileSync(path).subarray(0, bytes)).digest('hex');
      assert.is(sha(back, 256 * MiB), sha(file), 'nbdcopy out of the image returns what went in');
      console.log(`nbdcopy 256 MiB in: ${inSeconds.toFixed(1)} s (${(256 / inSeconds).toFixed(1)} MiB/s)`);

      const job = { uri, rw: 'randwrite' as const, bs: '4k', iodepth: 16, size: '16M', extra: ['--offset=300M', '--verify=crc32c', '--verify_fatal=1', '--do_verify=1', '--verify_backlog=128'] };
      const written = await runFio(job);
      assert.is(written.error, 0, written.stderr);
      const verified = await runFio({ ...job, extra: ['--offset=300M', '--verify=crc32c', '--verify_fatal=1', '--verify_only'] });
      assert.is(verified.error, 0, verified.stderr);
      console.log(`fio randwrite 4k QD16 with crc32c verify: ${written.write.iops} IOPS; verify pass ${verified.read.iops} IOPS`);
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      rmSync(scratch, { recursive: true, force: true });
      await cleanup(failure);
    }
  });
}

test.run();
