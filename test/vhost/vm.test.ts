// @slow
// fastblock's vhost-user-blk controllers under a real front-end: one QEMU TCG guest whose kernel
// virtio-blk driver uses two controllers (one created at run time) of a daemon the test starts.
// In one boot: dd write and read back compared with what the host reads through the volume;
// discard and write-zeroes visible as zeroes; the GET_ID serial; mkfs.ext4, mount, files, umount,
// fsck on the second controller; fio random write with verify while the daemon is SIGKILLed and
// restarted (QEMU reconnect=1): the in-flight requests are replayed and the verify passes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGuest, vhostUserBlk, vmSkipReason } from '../support/vm.js';
import { FileVolume } from './file-volume.js';
import { VhostDaemon } from './daemon-process.js';
import type { DaemonSpec } from './daemon.js';

const MiB = 1024 * 1024;
const skip = vmSkipReason();
const md5 = (bytes: Uint8Array): string => createHash('md5').update(bytes).digest('hex');

const GUEST_SCRIPT = `
line() { echo "$1 $(dd if=$2 bs=1M skip=$3 count=\${4:-1} iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"; }
echo "GEOMETRY $(cat /sys/block/vda/size) $(cat /sys/block/vda/queue/logical_block_size) $(ls /sys/block/vda/mq | wc -l) $(cat /sys/block/vdb/size)"
echo "SERIAL $(cat /sys/block/vda/serial)"

# dd: 4 MiB at 1 MiB, written and read back with O_DIRECT
dd if=/dev/urandom of=/tmp/pat bs=1M count=4 2>/dev/null
dd if=/tmp/pat of=/dev/vda bs=1M seek=1 count=4 oflag=direct conv=fsync 2>/dev/null
echo "DD_WRITE $(md5sum < /tmp/pat | cut -d' ' -f1)"
line DD_READ /dev/vda 1 4

# discard [8,9) MiB and write-zeroes [10,11) MiB of a 4 MiB pattern at 8 MiB
dd if=/dev/urandom of=/dev/vda bs=1M seek=8 count=4 oflag=direct conv=fsync 2>/dev/null
line BEFORE /dev/vda 8
blkdiscard -o $((8 * 1048576)) -l 1048576 /dev/vda
host blkdiscard -z -o $((10 * 1048576)) -l 1048576 /dev/vda
line DISCARDED /dev/vda 8
line ZEROED /dev/vda 10
line KEPT /dev/vda 9

# ext4 on the second controller
mkfs.ext4 -q -F -b 4096 /dev/vdb
mount -t ext4 /dev/vdb /mnt
dd if=/dev/urandom of=/mnt/big bs=64k count=32 2>/dev/null
echo hello > /mnt/small; mkdir /mnt/dir; cp /mnt/big /mnt/dir/copy
big=$(md5sum < /mnt/big | cut -d' ' -f1)
umount /mnt
e2fsck -fn /dev/vdb > /tmp/fsck.out 2>&1 && echo "FSCK clean" || { cat /tmp/fsck.out; echo "FSCK errors"; }
mount -t ext4 -o ro /dev/vdb /mnt
[ "$(md5sum < /mnt/dir/copy | cut -d' ' -f1)" = "$big" ] && [ "$(cat /mnt/small)" = hello ] && echo "EXT4 files intact"
umount /mnt

# fio random write + verify; the host kills and restarts the back-end while it runs
host fio --name=reconnect --filename=/dev/vda --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \\
  --iodepth=16 --offset=16M --size=8M --verify=crc32c --verify_fatal=1 --do_verify=1 > /tmp/fio.out 2>&1 &
fio=$!
# once fio's writes are under way (300 of its 2048 completed), the host kills the back-end
w0=$(awk '{print $5}' /sys/block/vda/stat)
while [ $(awk '{print $5}' /sys/block/vda/stat) -lt $((w0 + 300)) ]; do sleep 0.05; done
echo "@@STEP kill-now $(cut -d" " -f1 /proc/uptime) writes=$(awk '{print $5}' /sys/block/vda/stat)"
rc=0; wait $fio || rc=$?
grep -E "err=|IOPS|verify" /tmp/fio.out | head -n 8
echo "FIO_RC $rc"; echo "END $(cut -d" " -f1 /proc/uptime) writes=$(awk '{print $5}' /sys/block/vda/stat)"
`;

test('a guest uses two controllers: dd, discard, ext4, and fio verify across a back-end SIGKILL', async () => {
  if (skip) return console.log(`SKIP ${skip}`);
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-vhost-'));
  const images = { 'rbd/a': join(dir, 'a.img'), 'rbd/b': join(dir, 'b.img') };
  writeFileSync(images['rbd/a'], '');
  truncateSync(images['rbd/a'], 128 * MiB);
  writeFileSync(images['rbd/b'], '');
  truncateSync(images['rbd/b'], 64 * MiB);
  const sockets = { a: join(dir, 'a.sock'), b: join(dir, 'b.sock') };
  const base: Omit<DaemonSpec, 'controllers'> = { target: 'file', volumes: images, delayMs: 10 };
  let daemon = await VhostDaemon.start({ ...base, controllers: [{ volume: 'rbd/a', socket: sockets.a, queues: 2 }] }).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  let restarted: VhostDaemon | undefined;
  try {
    // The second controller is created while the daemon runs.
    const created = await daemon.command({ op: 'create', volume: 'rbd/b', socket: sockets.b, queues: 1 });
    assert.ok(created.ok, created.error);

    const guest = startGuest({
      devices: [...vhostUserBlk(sockets.a, { id: 'a', queues: 2, reconnectSeconds: 1 }), ...vhostUserBlk(sockets.b, { id: 'b', reconnectSeconds: 1 })],
      modules: ['ext4'],
      hostfs: true,
      memoryMiB: 512,
      script: GUEST_SCRIPT,
      timeoutMs: 240_000,
    });
    await guest.waitForLine(/^@@STEP kill-now/, 200_000);
    // Writes stop completing, so the kill is sure to catch some in flight (and not yet on the volume).
    assert.ok((await daemon.command({ op: 'hold' })).ok);
    let held = 0;
    for (let waited = 0; held === 0 && waited < 20_000; waited += 20) {
      held = Number((await daemon.command({ op: 'held' })).result);
      if (held === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(held > 0, 'writes were in flight at the kill');
    await daemon.kill();
    restarted = await VhostDaemon.start({
      ...base,
      controllers: [
        { volume: 'rbd/a', socket: sockets.a, queues: 2 },
        { volume: 'rbd/b', socket: sockets.b, queues: 1 },
      ],
    });
    const result = await guest.done;
    const out = result.output;
    if (process.env.VHOST_TEST_VERBOSE) console.log(out, "\n--- restarted daemon log:\n", restarted.log);
    assert.is(result.exitCode, 0, result.console);

    const value = (key: string): string => new RegExp(`^${key} (.*)$`, 'm').exec(out)?.[1] ?? `<no ${key} in output>`;
    assert.is(value('GEOMETRY'), `${(128 * MiB) / 512} 4096 2 ${(64 * MiB) / 512}`);
    assert.is(value('SERIAL'), 'rbd/a');

    // What the guest wrote is what the host reads through the volume.
    const volume = await FileVolume.open('rbd/a', images['rbd/a']);
    try {
      assert.is(value('DD_READ'), value('DD_WRITE'));
      assert.is(md5(await volume.read(1 * MiB, 4 * MiB)), value('DD_WRITE'));
      const zeroes = md5(new Uint8Array(MiB));
      assert.is.not(value('BEFORE'), zeroes);
      assert.is(value('DISCARDED'), zeroes);
      assert.is(value('ZEROED'), zeroes);
      assert.is.not(value('KEPT'), zeroes);
      assert.is(md5(await volume.read(8 * MiB, MiB)), zeroes);
      assert.is(md5(await volume.read(9 * MiB, MiB)), value('KEPT'));
    } finally {
      await volume.close();
    }

    assert.match(out, 'FSCK clean');
    assert.match(out, 'EXT4 files intact');
    assert.is(value('FIO_RC'), '0', out);
    // The kill caught requests in flight, and the new daemon replayed them from the inflight region.
    assert.match(restarted.log, 'resubmitting requests in flight', restarted.log.slice(-2000));
  } finally {
    try {
      await daemon.kill();
      await restarted?.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test.run();
