// @slow
// A writeback vhost-user-blk controller under a real front-end: one QEMU TCG guest whose kernel
// virtio-blk driver runs fio random write with verify, and a dd of a random 4 MiB pattern with
// O_DIRECT and no flush, while the back-end's volume finishes no write (the test daemon's hold,
// from before the guest starts): the guest's writes are acknowledged from the write-back log and
// pile up there as dirty records, and its reads of them are served from the log's memory. The host then SIGKILLs the daemon and starts it again on the same write-back directory
// (QEMU reconnect=1): the new daemon replays the log, fio's verify passes, the pattern reads back in
// the guest, and after an orderly stop (which drains the log) the host reads it from the image file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExportInfo } from '../../kernel/contracts/frontend.js';
import { startGuest, vhostUserBlk, vmSkipReason } from '../support/vm.js';
import { FileVolume } from './file-volume.js';
import { VhostDaemon } from './daemon-process.js';
import type { DaemonSpec } from './daemon.js';

const MiB = 1024 * 1024;
const skip = vmSkipReason();
const md5 = (bytes: Uint8Array): string => createHash('md5').update(bytes).digest('hex');

// No signal from the host is needed (an earlier version waited for a marker file, which a guest
// cannot see when the repository is under the host's /tmp): the volume is held from the start.
const GUEST_SCRIPT = `
line() { echo "$1 $(dd if=$2 bs=1M skip=$3 count=\${4:-1} iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"; }
echo "CACHE $(cat /sys/block/vda/queue/write_cache)"
dd if=/dev/urandom of=/tmp/pat bs=1M count=4 2>/dev/null
echo "DD_WRITE $(md5sum < /tmp/pat | cut -d' ' -f1)"

host fio --name=writeback --filename=/dev/vda --direct=1 --ioengine=libaio --rw=randwrite --bs=4k \\
  --iodepth=16 --offset=16M --size=8M --verify=crc32c --verify_fatal=1 --do_verify=1 > /tmp/fio.out 2>&1 &
fio=$!
# once fio's writes are under way; acknowledged from the write-back log: no fsync, no flush
w0=$(awk '{print $5}' /sys/block/vda/stat)
while [ $(awk '{print $5}' /sys/block/vda/stat) -lt $((w0 + 100)) ]; do sleep 0.05; done
dd if=/tmp/pat of=/dev/vda bs=1M seek=1 count=4 oflag=direct 2>/dev/null
echo "@@STEP dd-done writes=$(awk '{print $5}' /sys/block/vda/stat)"
rc=0; wait $fio || rc=$?
grep -E "err=|IOPS|verify" /tmp/fio.out | head -n 8
echo "FIO_RC $rc"
line DD_READ /dev/vda 1 4
echo "END $(cut -d" " -f1 /proc/uptime)"
`;

async function details(daemon: VhostDaemon): Promise<NonNullable<ExportInfo['details']>> {
  const reply = await daemon.command({ op: 'ls' });
  assert.ok(reply.ok, reply.error);
  return (reply.result as ExportInfo[])[0]!.details ?? {};
}

test('writeback: acknowledged writes held in the log survive a back-end SIGKILL (replayed on restart)', async () => {
  if (skip) return console.log(`SKIP ${skip}`);
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-vhost-wb-'));
  const image = join(dir, 'a.img');
  writeFileSync(image, '');
  truncateSync(image, 64 * MiB);
  const socket = join(dir, 'a.sock');
  const writeBackDir = join(dir, 'write-back');
  const base: DaemonSpec = {
    target: 'file',
    volumes: { 'rbd/a': image },
    controllers: [{ volume: 'rbd/a', socket, queues: 2, cache: 'writeback' }],
    delayMs: 10,
    writeBackDir,
    // fio's 8 MiB and dd's 4 MiB all fit: the hold never makes a write wait for ring space.
    writeBackMiB: 32,
  };
  let daemon = await VhostDaemon.start(base).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  let restarted: VhostDaemon | undefined;
  try {
    assert.is((await details(daemon)).cache, 'writeback');
    // From here on the volume finishes no write: what the guest is told is written is in the log only.
    assert.ok((await daemon.command({ op: 'hold' })).ok);
    const guest = startGuest({
      devices: vhostUserBlk(socket, { queues: 2, reconnectSeconds: 1 }),
      hostfs: true,
      memoryMiB: 512,
      script: GUEST_SCRIPT,
      timeoutMs: 240_000,
    });
    await guest.waitForLine(/^@@STEP dd-done/, 200_000);
    let dirty = await details(daemon);
    for (let waited = 0; Number(dirty.dirtyBytes) < 4 * MiB && waited < 20_000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      dirty = await details(daemon);
    }
    assert.ok(Number(dirty.dirtyBytes) >= 4 * MiB, `the dd pattern is acknowledged and dirty in the log: ${JSON.stringify(dirty)}`);
    assert.ok(Number(dirty.usedBytes) > Number(dirty.dirtyBytes), 'records take their headers too');
    // Writes stay in the log up to the write-back hold (vhost.writeBackHoldMs, 500 ms by default) before they reach the volume, and
    // then wait there: the kill finds some at the volume, unfinished, and the rest in the log only.
    let held = 0;
    for (let waited = 0; held === 0 && waited < 5_000; waited += 50) {
      held = Number((await daemon.command({ op: 'held' })).result);
      if (held === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(held > 0, 'volume writes were held at the kill');
    await daemon.kill();
    assert.ok(existsSync(join(writeBackDir, 'rbd%2Fa.wblog')), 'a SIGKILL leaves the log');

    restarted = await VhostDaemon.start(base);
    const result = await guest.done;
    const out = result.output;
    if (process.env.VHOST_TEST_VERBOSE) console.log(out, '\n--- restarted daemon log:\n', restarted.log);
    assert.is(result.exitCode, 0, result.console);
    const value = (key: string): string => new RegExp(`^${key} (.*)$`, 'm').exec(out)?.[1] ?? `<no ${key} in output>`;
    assert.is(value('CACHE'), 'write back', 'the guest was offered a volatile cache (VIRTIO_BLK_F_FLUSH)');
    assert.is(value('FIO_RC'), '0', out);
    assert.is(value('DD_READ'), value('DD_WRITE'), 'the guest reads back the pattern it never flushed');
    // The new daemon wrote back what the killed one had acknowledged.
    assert.match(restarted.log, 'write-back log replayed', restarted.log.slice(-2000));
    const replayed = (await details(restarted)).replayed;
    assert.ok(Number(replayed) > 0, `records replayed: ${String(replayed)}`);

    // An orderly stop drains the log into the image and removes it.
    await restarted.stop();
    assert.equal(readdirSync(writeBackDir), [], 'stop drained and removed the log and its lock');
    const volume = await FileVolume.open('rbd/a', image);
    try {
      assert.is(md5(await volume.read(1 * MiB, 4 * MiB)), value('DD_WRITE'), 'the host reads the pattern from the image file');
    } finally {
      await volume.close();
    }
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
