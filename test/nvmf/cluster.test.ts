// @slow
// The whole path: the Linux NVMe/TCP initiator of a QEMU TCG guest against the nvmf plugin in a
// real fastblockd gateway (`--plugins tcp,client,nvmf`) whose namespace is a 1-replica image of a
// local cluster (monitor + OSD on the blobstore). What the guest writes with dd is what the host
// reads through the client library; a deallocated range reads back as zeroes on both sides; ext4 is
// made, used and checked on the image; an image resized in the cluster grows in the guest while it
// stays connected (Namespace Attribute Changed notice, the kernel's rescan).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOneReplicaImage } from '../cluster/harness/test-cluster.js';
import { connect } from '../../client/connect.js';
import { bootGuest, userNet, vmSkipReason } from '../support/vm.js';
import { startNvmfDaemon, type NvmfDaemon } from './support/daemon.js';

const MiB = 1024 * 1024;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NQN = 'nqn.2024-01.io.fastblock:rbd:vm';
const skip = vmSkipReason();
const md5 = (bytes: Uint8Array): string => createHash('md5').update(bytes).digest('hex');

const GUEST_SCRIPT = `
nvme connect -t tcp -a 10.0.2.2 -s $PORT -n ${NQN} -i 2 > /dev/null
i=0; while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
D=/dev/nvme0n1
line() { echo "$1 $(dd if=$D bs=1M skip=$2 count=\${3:-1} iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"; }
echo "GEOMETRY $(cat /sys/block/nvme0n1/size) $(cat /sys/block/nvme0n1/queue/logical_block_size)"
# [40, 44) MiB: a pattern; [48, 49) MiB: written, then deallocated; ext4 in the first 32 MiB only
dd if=/dev/urandom of=/tmp/pat bs=1M count=4 2>/dev/null
dd if=/tmp/pat of=$D bs=1M seek=40 count=4 oflag=direct 2>/dev/null
echo "DD_WRITE $(md5sum < /tmp/pat | cut -d' ' -f1)"
line DD_READ 40 4
dd if=/dev/urandom of=$D bs=1M seek=48 count=1 oflag=direct 2>/dev/null
blkdiscard -o $((48 * 1048576)) -l 1048576 $D
line DISCARDED 48
mkfs.ext4 -q -F -b 4096 -E nodiscard $D 8192
mount -t ext4 $D /mnt
dd if=/dev/urandom of=/mnt/big bs=64k count=16 2>/dev/null
big=$(md5sum < /mnt/big | cut -d' ' -f1)
umount /mnt
e2fsck -fn $D > /tmp/fsck.out 2>&1 && echo "FSCK clean" || { cat /tmp/fsck.out; echo "FSCK errors"; }
mount -t ext4 -o ro $D /mnt
[ "$(md5sum < /mnt/big | cut -d' ' -f1)" = "$big" ] && echo "EXT4 file intact"
umount /mnt
echo RESIZE_READY
i=0; while [ "$(cat /sys/block/nvme0n1/size)" = "$OLD_SECTORS" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo "RESIZED $(cat /sys/block/nvme0n1/size)"
dd if=/tmp/pat of=$D bs=1M seek=64 count=4 oflag=direct 2>/dev/null
line PAST_OLD_END 64 4
nvme flush $D -n 1 > /dev/null && echo "FLUSH ok"
nvme disconnect -n ${NQN} > /dev/null && echo "DISCONNECT ok"
`;

test('a guest namespace on a cluster image, through fastblockd with the client and nvmf plugins', async () => {
  if (skip) return console.log(`SKIP ${skip}`);
  let gateway: NvmfDaemon | undefined;
  let cleanup: (() => Promise<void>) | undefined;
  try {
    const started = await startOneReplicaImage('nvmf-cluster');
    cleanup = started.cleanup;
    const cluster = started.cluster;
    gateway = await startNvmfDaemon([`client.monitors=${cluster.monitorAddress}`, 'nvmf.exports=rbd/vm'], [], join(ROOT, 'client'));

    // The host grows the image once the guest has done the rest; the gateway's client learns the
    // size from the map and the target tells the guest.
    let resized: Promise<unknown> | undefined;
    const onLine = (line: string): void => {
      if (line.trim() === 'RESIZE_READY') resized ??= cluster.admin('image resize', { pool: 'rbd', name: 'vm', sizeBytes: 96 * MiB });
    };
    const result = await bootGuest({
      devices: userNet(),
      modules: ['nvme-tcp', 'ext4'],
      env: { PORT: gateway.port, OLD_SECTORS: (64 * MiB) / 512 },
      script: GUEST_SCRIPT,
      timeoutMs: 180_000,
      onLine,
    });
    assert.ok(resized, 'the guest reached the resize step');
    await resized;
    assert.is(result.exitCode, 0, result.console.slice(-4000));
    const value = (key: string): string => new RegExp(`^${key} (.*)$`, 'm').exec(result.output)?.[1] ?? `<no ${key} in output>`;
    assert.is(value('GEOMETRY'), `${(64 * MiB) / 512} 4096`);
    assert.is(value('DD_READ'), value('DD_WRITE'));
    assert.is(value('DISCARDED'), md5(new Uint8Array(MiB)));
    assert.match(result.output, 'FSCK clean');
    assert.match(result.output, 'EXT4 file intact');
    assert.is(value('RESIZED'), String((96 * MiB) / 512), 'the guest sees the new size without reconnecting');
    assert.is(value('PAST_OLD_END'), value('DD_WRITE'), 'and writes past the old end');
    assert.is(value('FLUSH'), 'ok');
    assert.is(value('DISCONNECT'), 'ok');

    // What the guest wrote is what the host reads through the client library.
    const client = await connect({ monitors: [cluster.monitorAddress], name: 'nvmf-test' });
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
      await gateway?.stop();
    } finally {
      await cleanup?.();
    }
  }
});

test.run();
