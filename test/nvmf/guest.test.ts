// @slow
// fastblock's NVMe/TCP target under the Linux kernel initiator (nvme-tcp + nvme-cli in one QEMU TCG
// guest) against a fastblockd the test starts (nvmf plugin over in-memory volumes). In one boot:
// nvme discover; connect with 1 then 2 I/O queues; dd write/read compared with what the host reads
// through the volume; a second subsystem created at run time (`nvmf create`) carrying ext4 (mkfs,
// mount, files, fsck; connected with header and data digests and SQ flow control disabled, so
// reads complete by C2HData with SUCCESS); fio random write with verify; nvme flush; blkdiscard read back as zeroes on
// both sides; then the guest is paused (QMP stop): its controllers are torn down by the keep-alive
// timer while the namespaces stay, and after `cont` the kernel reconnects and reads its data back;
// nvme disconnect at the end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createConnection } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGuest, userNet, vmSkipReason, type Guest } from '../support/vm.js';
import { startNvmfDaemon, type NvmfDaemon } from './support/daemon.js';
import { Namespace } from '../../plugins/frontend-nvmf/subsystem/namespace.js';
import type { BlockVolume } from '../../kernel/contracts/block.js';

const MiB = 1024 * 1024;
const skip = vmSkipReason();
const NQN_A = 'nqn.2024-01.io.fastblock:rbd:a';
const NQN_B = 'nqn.2024-01.io.example:ext4';
const ZERO_MIB_MD5 = 'b6d81b360a5672d80c27430f39153e2c';

const GUEST_SCRIPT = `
md5() { dd if=$1 bs=1M skip=$2 count=\${3:-1} iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1; }
# The block device of a subsystem, found by its NQN (names depend on connection order).
# (nvmeXcYnZ are the hidden per-path nodes of native multipath; the usable disk is nvmeXnZ.)
dev_of() { for d in /sys/block/nvme*n1; do case \${d##*/} in *c*) continue;; esac; [ "$(cat $d/device/subsysnqn 2>/dev/null)" = "$1" ] && { echo /dev/\${d##*/}; return; }; done; echo none; }
ctrl_of() { for c in /sys/class/nvme/nvme*; do [ "$(cat $c/subsysnqn)" = "$1" ] && { echo \${c##*/}; return; }; done; echo none; }
wait_dev() { i=0; while [ "$(dev_of $1)" = none ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; }

nvme discover -t tcp -a 10.0.2.2 -s $PORT > /tmp/disc
grep -q "subnqn:  $NQN_A" /tmp/disc && grep -q "current discovery subsystem" /tmp/disc && echo "DISCOVER ok $(grep -c '^=====' /tmp/disc)"

# One I/O queue, then two.
nvme connect -t tcp -a 10.0.2.2 -s $PORT -n $NQN_A -i 1
wait_dev $NQN_A
echo "QUEUES1 $(dmesg | grep -c 'creating 1 I/O queues')"
nvme disconnect -n $NQN_A > /dev/null
nvme connect -t tcp -a 10.0.2.2 -s $PORT -n $NQN_A -i 2 -k 4 -c 1
wait_dev $NQN_A
A=$(dev_of $NQN_A)
echo "QUEUES2 $(dmesg | grep -c 'creating 2 I/O queues')"
echo "GEOMETRY $(cat /sys/block/\${A##*/}/size) $(cat /sys/block/\${A##*/}/queue/logical_block_size)"
# nvme-cli's own decoding of the admin data: identify, log pages, features, descriptors
C=/dev/$(ctrl_of $NQN_A)
nvme id-ctrl $C > /dev/null && nvme id-ns $A -n 1 > /dev/null && nvme smart-log $C > /dev/null \
  && nvme error-log $C -e 4 > /dev/null && nvme fw-log $C > /dev/null && nvme get-feature $C -f 7 > /dev/null && echo "ADMIN ok"
echo "UUID $(nvme ns-descs $A -n 1 | grep -i uuid | awk '{print $NF}')"
echo "ONCS $(nvme id-ctrl $C | grep '^oncs' | awk '{print $NF}') VWC $(nvme id-ctrl $C | grep '^vwc ' | awk '{print $NF}')"

# dd: 4 MiB at 1 MiB, O_DIRECT, read back
dd if=/dev/urandom of=/tmp/pat bs=1M count=4 2>/dev/null
dd if=/tmp/pat of=$A bs=1M seek=1 count=4 oflag=direct 2>/dev/null
echo "DD_WRITE $(md5sum < /tmp/pat | cut -d' ' -f1)"
echo "DD_READ $(md5 $A 1 4)"

# flush; discard [8,9) MiB of a pattern written over [8,11) MiB
nvme flush $A -n 1 > /dev/null && echo "FLUSH ok"
dd if=/dev/urandom of=$A bs=1M seek=8 count=3 oflag=direct 2>/dev/null
blkdiscard -o $((8 * 1048576)) -l 1048576 $A
echo "DISCARDED $(md5 $A 8)"
echo "KEPT $(md5 $A 9)"
# Write Zeroes (blkdiscard -z: REQ_OP_WRITE_ZEROES, ONCS bit 3) over [10,11) MiB
host blkdiscard -z -o $((10 * 1048576)) -l 1048576 $A
echo "ZEROED $(md5 $A 10) $(cat /sys/block/\${A##*/}/queue/write_zeroes_max_bytes)"

# ext4 on the subsystem the host created at run time, with digests and without SQ flow control
echo "@@STEP create-b"
i=0; while ! nvme discover -t tcp -a 10.0.2.2 -s $PORT | grep -q "$NQN_B"; do sleep 0.2; i=$((i+1)); [ $i -lt 50 ]; done
# header and data digests (CRC32C) on, SQ flow control off: reads complete by C2HData SUCCESS
nvme connect -t tcp -a 10.0.2.2 -s $PORT -n $NQN_B -k 4 -c 1 --hdr-digest --data-digest --disable-sqflow
wait_dev $NQN_B
B=$(dev_of $NQN_B)
mkfs.ext4 -q -F -b 4096 $B
mount -t ext4 $B /mnt
dd if=/dev/urandom of=/mnt/big bs=64k count=32 2>/dev/null
echo hello > /mnt/small; mkdir /mnt/dir; cp /mnt/big /mnt/dir/copy
big=$(md5sum < /mnt/big | cut -d' ' -f1)
umount /mnt
e2fsck -fn $B > /tmp/fsck.out 2>&1 && echo "FSCK clean" || { cat /tmp/fsck.out; echo "FSCK errors"; }
mount -t ext4 -o ro $B /mnt
[ "$(md5sum < /mnt/dir/copy | cut -d' ' -f1)" = "$big" ] && [ "$(cat /mnt/small)" = hello ] && echo "EXT4 files intact"
umount /mnt

# fio: 4 KiB random writes with verify over [16, 24) MiB, QD16
host fio --name=verify --filename=$A --direct=1 --ioengine=libaio --rw=randwrite --bs=4k --iodepth=16 \\
  --offset=16M --size=8M --verify=crc32c --verify_fatal=1 --do_verify=1 > /tmp/fio.out 2>&1 && echo "FIO_RC 0" || { tail -20 /tmp/fio.out; echo "FIO_RC 1"; }

# Keep-alive expiry: the host pauses this guest (QMP stop) until the target has torn both
# controllers down, then resumes it; the kernel reconnects (reconnect delay 1 s) to the namespaces
# that stayed.
before=$(md5 $A 1 4)
echo "@@STEP pause-me"
sleep 1
live() { [ "$(cat /sys/class/nvme/$(ctrl_of $1)/state)" = live ]; }
i=0; while ! live $NQN_A || ! live $NQN_B || ! dd if=$A of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null; do sleep 0.2; i=$((i+1)); [ $i -lt 150 ]; done
echo "RECONNECTS $(dmesg | grep -c 'Successfully reconnected')"
echo "AFTER_PAUSE $(md5 $A 1 4) $before"
mount -t ext4 -o ro $B /mnt
[ "$(md5sum < /mnt/dir/copy | cut -d' ' -f1)" = "$big" ] && echo "EXT4 intact after reconnect"
umount /mnt

nvme disconnect -n $NQN_A > /dev/null && nvme disconnect -n $NQN_B > /dev/null && echo "DISCONNECT ok"
echo "LEFT $(ls /sys/class/nvme | wc -l)"
`;

/** QEMU's QMP over a unix socket: capabilities negotiation, then commands by name. */
async function qmp(socket: string, commands: readonly string[]): Promise<void> {
  const connection = createConnection(socket);
  let buffer = '';
  const replies: string[] = [];
  connection.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      replies.push(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
  });
  const returned = async (count: number): Promise<void> => {
    const deadline = Date.now() + 5000;
    while (replies.filter((r) => r.includes('"return"')).length < count) {
      if (Date.now() > deadline) throw new Error(`QMP: no reply; got ${replies.join(' | ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await new Promise<void>((resolve, reject) => connection.once('connect', resolve).once('error', reject));
  connection.write('{"execute":"qmp_capabilities"}\n');
  await returned(1);
  for (const [i, command] of commands.entries()) {
    connection.write(JSON.stringify({ execute: command }) + '\n');
    await returned(i + 2);
  }
  connection.destroy();
}

function keepAliveExpiries(daemon: NvmfDaemon): number {
  return daemon.process.lines.filter((l) => /keep alive timeout/.test(String(l.msg))).length;
}

/** Waits for a guest's step marker; if the guest ends first, fails with its console. */
async function step(guest: Guest, marker: RegExp, timeoutMs: number): Promise<void> {
  try {
    await guest.waitForLine(marker, timeoutMs);
  } catch (err) {
    guest.kill();
    const result = await guest.done;
    assert.unreachable(`${(err as Error).message}\n${result.output}\n--- console tail:\n${result.console.slice(-3000)}`);
  }
}

test('kernel initiator: discover, 1 and 2 queues, dd, runtime subsystem with ext4, fio verify, flush, discard, keep-alive expiry, disconnect', async () => {
  if (skip) return console.log(`SKIP ${skip}`);
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-nvmf-'));
  const qmpSocket = join(dir, 'qmp.sock');
  const daemon = await startNvmfDaemon(['nvmf-test-volumes.volumes=rbd/a:64,rbd/b:32', 'nvmf.exports=rbd/a', 'nvmf.advertiseAddress=10.0.2.2']).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  try {
    const guest = startGuest({
      devices: [...userNet(), '-qmp', `unix:${qmpSocket},server=on,wait=off`],
      modules: ['nvme-tcp', 'ext4'],
      hostfs: true,
      memoryMiB: 512,
      env: { PORT: daemon.port, NQN_A, NQN_B },
      script: GUEST_SCRIPT,
      timeoutMs: 240_000,
    });
    await step(guest, /^@@STEP create-b/, 120_000);
    await daemon.admin('nvmf create', { volume: 'rbd/b', nqn: NQN_B });

    await step(guest, /^@@STEP pause-me/, 180_000);
    const expiredBefore = keepAliveExpiries(daemon);
    await qmp(qmpSocket, ['stop']);
    const paused = Date.now();
    // KATO 4 s (nvme connect -k 4) + 1 s grace: both associations go; the exports stay.
    while (keepAliveExpiries(daemon) < expiredBefore + 2) {
      assert.ok(Date.now() - paused < 20_000, 'both controllers expire while the guest is paused');
      await new Promise((r) => setTimeout(r, 100));
    }
    const exports = async () => (await daemon.admin('nvmf ls')) as { nqn: string; clients: number }[];
    for (let i = 0; i < 50 && (await exports()).some((e) => e.clients > 0); i++) await new Promise((r) => setTimeout(r, 100));
    const tornDownAfter = Date.now() - paused;
    const listed = await exports();
    assert.equal(listed.map((e) => [e.nqn, e.clients]).sort(), [[NQN_B, 0], [NQN_A, 0]].sort(), 'controllers gone, namespaces stay');
    assert.ok(tornDownAfter < 15_000, `torn down ${tornDownAfter} ms after the pause`);
    await qmp(qmpSocket, ['cont']);

    const result = await guest.done;
    const out = result.output;
    if (process.env.NVMF_TEST_VERBOSE) console.log(out);
    assert.is(result.exitCode, 0, result.console.slice(-4000));
    const value = (key: string): string => new RegExp(`^${key} (.*)$`, 'm').exec(out)?.[1] ?? `<no ${key} in output>`;

    assert.is(value('DISCOVER'), 'ok 2');
    assert.is(value('QUEUES1'), '1');
    assert.is(value('QUEUES2'), '1');
    assert.is(value('GEOMETRY'), `${(64 * MiB) / 512} 4096`);
    assert.is(value('ADMIN'), 'ok');
    const namespace = new Namespace(1, { name: 'rbd/a', size: 64 * MiB, blockSize: 4096 } as BlockVolume, NQN_A);
    assert.is(value('UUID'), namespace.uuidString, 'the namespace UUID the host sees');
    assert.is(value('ONCS'), '0xc VWC 0');
    assert.is(value('DD_READ'), value('DD_WRITE'));
    assert.is((await daemon.digest('rbd/a', 1 * MiB, 4 * MiB)).md5, value('DD_WRITE'), 'the volume holds what the guest wrote');
    assert.is(value('FLUSH'), 'ok');
    assert.is(value('DISCARDED'), ZERO_MIB_MD5);
    assert.ok((await daemon.digest('rbd/a', 8 * MiB, MiB)).zero, 'discarded range reads as zeroes on the host');
    assert.is((await daemon.digest('rbd/a', 9 * MiB, MiB)).md5, value('KEPT'));
    assert.is.not(value('KEPT'), ZERO_MIB_MD5);
    const [zeroed, writeZeroesMax] = value('ZEROED').split(' ');
    assert.is(zeroed, ZERO_MIB_MD5);
    assert.ok(Number(writeZeroesMax) > 0, 'the kernel uses Write Zeroes (not zero-filled writes)');
    assert.ok((await daemon.digest('rbd/a', 10 * MiB, MiB)).zero, 'write-zeroed range reads as zeroes on the host');
    assert.match(out, 'FSCK clean');
    assert.match(out, 'EXT4 files intact');
    assert.is(value('FIO_RC'), '0', out);
    // Two reconnects at least (more if a starved guest also missed a keep-alive elsewhere).
    assert.ok(Number(value('RECONNECTS')) >= 2, 'both controllers reconnected after the teardown');
    const [after, before] = value('AFTER_PAUSE').split(' ');
    assert.is(after, before, 'data survives the controller teardown');
    assert.match(out, 'EXT4 intact after reconnect');
    assert.is(value('DISCONNECT'), 'ok');
    assert.is(value('LEFT'), '0');
  } finally {
    try {
      await daemon.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test.run();
