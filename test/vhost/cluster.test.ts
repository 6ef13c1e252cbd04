// @slow
// The whole path: a QEMU TCG guest's virtio-blk disk served by the vhost plugin in a real fastblockd
// gateway (`--plugins tcp,client,vhost`) whose volume is a 1-replica image of a local cluster
// (monitor + OSD on the blobstore). dd written in the guest is what the host reads through the client
// library; discard reads back as zeroes; ext4 is made, used and checked on the image; an image resized
// in the cluster grows in the running guest (a config change notice through QEMU, the driver's
// capacity update).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startOneReplicaImage } from '../cluster/harness/test-cluster.js';
import { connect } from '../../client/connect.js';
import { bootGuest, vhostUserBlk, vmSkipReason } from '../support/vm.js';
import { FASTBLOCKD, start } from '../cli/daemon-process.js';

const MiB = 1024 * 1024;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const skip = vmSkipReason();
const md5 = (bytes: Uint8Array): string => createHash('md5').update(bytes).digest('hex');

const GUEST_SCRIPT = `
line() { echo "$1 $(dd if=/dev/vda bs=1M skip=$2 count=\${3:-1} iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"; }
echo "GEOMETRY $(cat /sys/block/vda/size) $(cat /sys/block/vda/queue/logical_block_size)"
dd if=/dev/urandom of=/tmp/pat bs=1M count=4 2>/dev/null
# [40, 44) MiB: a pattern; [48, 49) MiB: written, then discarded; ext4 in the first 32 MiB only
dd if=/tmp/pat of=/dev/vda bs=1M seek=40 count=4 oflag=direct conv=fsync 2>/dev/null
echo "DD_WRITE $(md5sum < /tmp/pat | cut -d' ' -f1)"
line DD_READ 40 4
dd if=/dev/urandom of=/dev/vda bs=1M seek=48 count=1 oflag=direct conv=fsync 2>/dev/null
blkdiscard -o $((48 * 1048576)) -l 1048576 /dev/vda
line DISCARDED 48
mkfs.ext4 -q -F -b 4096 -E nodiscard /dev/vda 8192
mount -t ext4 /dev/vda /mnt
dd if=/dev/urandom of=/mnt/big bs=64k count=16 2>/dev/null
big=$(md5sum < /mnt/big | cut -d' ' -f1)
umount /mnt
e2fsck -fn /dev/vda > /tmp/fsck.out 2>&1 && echo "FSCK clean" || { cat /tmp/fsck.out; echo "FSCK errors"; }
mount -t ext4 -o ro /dev/vda /mnt
[ "$(md5sum < /mnt/big | cut -d' ' -f1)" = "$big" ] && echo "EXT4 file intact"
umount /mnt
echo RESIZE_READY
i=0; while [ "$(cat /sys/block/vda/size)" = "$OLD_SECTORS" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo "RESIZED $(cat /sys/block/vda/size)"
dd if=/tmp/pat of=/dev/vda bs=1M seek=64 count=4 oflag=direct conv=fsync 2>/dev/null
line PAST_OLD_END 64 4
`;

test('a guest disk on a cluster image, through fastblockd with the client and vhost plugins', async () => {
  if (skip) return console.log(`SKIP ${skip}`);
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-vhost-cluster-'));
  const socket = join(dir, 'vm.sock');
  let gateway: ReturnType<typeof start> | undefined;
  let cleanup: (() => Promise<void>) | undefined;
  try {
    const started = await startOneReplicaImage('vhost-cluster');
    cleanup = started.cleanup;
    const cluster = started.cluster;
    gateway = start(FASTBLOCKD, [
      '--plugins', `tcp,${join(ROOT, 'client')},vhost`,
      '--listen', '127.0.0.1:0',
      '--set', `client.monitors=${cluster.monitorAddress}`,
      '--set', `vhost.controllers=rbd/vm=${socket}:2`,
    ]);
    for (let i = 0; i < 600 && !existsSync(socket); i++) {
      if (gateway.child.exitCode !== null) throw new Error(`gateway exited: ${gateway.stderr()}`);
      await sleep(50);
    }
    assert.ok(existsSync(socket), 'the gateway created the controller from its config');

    let resized: Promise<unknown> | undefined;
    const result = await bootGuest({
      devices: vhostUserBlk(socket, { queues: 2 }),
      modules: ['ext4'],
      env: { OLD_SECTORS: (64 * MiB) / 512 },
      script: GUEST_SCRIPT,
      timeoutMs: 180_000,
      onLine: (line) => {
        if (line.trim() === 'RESIZE_READY') resized ??= cluster.admin('image resize', { pool: 'rbd', name: 'vm', sizeBytes: 96 * MiB });
      },
    });
    assert.ok(resized, 'the guest reached the resize step');
    await resized;
    assert.is(result.exitCode, 0, result.console);
    const value = (key: string): string => new RegExp(`^${key} (.*)$`, 'm').exec(result.output)?.[1] ?? `<no ${key} in output>`;
    assert.is(value('GEOMETRY'), `${(64 * MiB) / 512} 4096`);
    assert.is(value('DD_READ'), value('DD_WRITE'));
    assert.is(value('DISCARDED'), md5(new Uint8Array(MiB)));
    assert.match(result.output, 'FSCK clean');
    assert.match(result.output, 'EXT4 file intact');
    assert.is(value('RESIZED'), String((96 * MiB) / 512), 'the running guest sees the new size');
    assert.is(value('PAST_OLD_END'), value('DD_WRITE'), 'and writes past the old end');

    // What the guest wrote is what the host reads through the client library.
    const client = await connect({ monitors: [cluster.monitorAddress], name: 'vhost-test' });
    try {
      const image = await client.open('rbd/vm');
      assert.is(md5(await image.read(40 * MiB, 4 * MiB)), value('DD_WRITE'));
      assert.is(md5(await image.read(48 * MiB, MiB)), md5(new Uint8Array(MiB)));
      assert.is(md5(await image.read(64 * MiB, 4 * MiB)), value('DD_WRITE'));
      await image.close();
    } finally {
      await client.close();
    }
  } finally {
    try {
      if (gateway) {
        gateway.child.kill('SIGTERM');
        await gateway.exit;
      }
      await cleanup?.();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test.run();
