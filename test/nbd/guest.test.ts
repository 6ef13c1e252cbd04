// @slow (boots a QEMU TCG guest; the first run also builds the guest image)
/**
 * The Linux kernel's own NBD client (nbd.ko + Debian nbd-client in a QEMU TCG guest) against the
 * frontend on this host: the export list, raw O_DIRECT writes read back identically (in the guest
 * and, over NBD, on the host), and an ext4 made, filled, checked and remounted on a second device
 * that the kernel drives over two connections.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { bootGuest, userNet, vmSkipReason } from '../support/vm.js';
import { TestGateway, runOk } from './harness.js';

const test = suite('nbd: guest kernel client');
const skip = vmSkipReason();
let gateway: TestGateway;
let dir: string;

const GUEST_SCRIPT = `
nbd-client -l 10.0.2.2 $PORT | sed 's/^/LIST /'
nbd-client 10.0.2.2 $PORT /dev/nbd0 -N pool/raw -b 4096
# two connections for one device: the kernel spreads requests over both (CAN_MULTI_CONN)
nbd-client 10.0.2.2 $PORT /dev/nbd1 -N pool/fs -b 4096 -C 2

# raw device: 8 MiB of random data with O_DIRECT, read back and compare
dd if=/dev/urandom of=/tmp/pattern bs=1M count=8 2>/dev/null
dd if=/tmp/pattern of=/dev/nbd0 bs=1M oflag=direct conv=fsync 2>/dev/null
dd if=/dev/nbd0 of=/tmp/back bs=1M count=8 iflag=direct 2>/dev/null
cmp /tmp/pattern /tmp/back
echo "RAW_MD5 $(md5sum < /tmp/pattern | cut -d' ' -f1)"

# ext4: make, fill, unmount, check, remount, verify
mkfs.ext4 -q -F -b 4096 /dev/nbd1
mkdir -p /mnt/fs
mount -t ext4 /dev/nbd1 /mnt/fs
dd if=/dev/urandom of=/mnt/fs/file bs=1M count=4 2>/dev/null
want=$(md5sum < /mnt/fs/file | cut -d' ' -f1)
sync
umount /mnt/fs
e2fsck -fn /dev/nbd1
mount -t ext4 /dev/nbd1 /mnt/fs
got=$(md5sum < /mnt/fs/file | cut -d' ' -f1)
umount /mnt/fs
test "$want" = "$got"
echo "FS_MD5 $want"

nbd-client -d /dev/nbd0
nbd-client -d /dev/nbd1
echo GUEST_OK
`;

test.before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'fastblock-nbd-guest-'));
  gateway = await TestGateway.start(['--volume', 'pool/raw:16M', '--volume', 'pool/fs:64M', '--no-dynamic']);
});

test.after(async () => {
  if (skip) return;
  try {
    assert.is(await gateway.stop(), 0, 'gateway stops cleanly');
    assert.equal(gateway.errorLines(), [], 'nothing logged at error level');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('nbd-client in a guest: O_DIRECT dd round trip, ext4 mkfs + mount + fsck + remount', async () => {
  if (skip) return console.log(`SKIP nbd guest: ${skip}`);
  const result = await bootGuest({
    devices: userNet(),
    modules: ['nbd'],
    env: { PORT: gateway.port },
    script: GUEST_SCRIPT,
    timeoutMs: 150_000,
  });
  assert.is(result.exitCode, 0, result.console.slice(-4000));
  assert.match(result.output, /GUEST_OK/);
  const connected = gateway.logs.filter((l) => l.msg === 'client connected');
  assert.is(connected.filter((l) => l.export === 'pool/raw').length, 1);
  assert.is(connected.filter((l) => l.export === 'pool/fs').length, 2, 'two kernel connections to pool/fs');
  assert.match(result.output, /LIST pool\/raw/, 'nbd-client -l lists the exports (NBD_OPT_LIST)');
  assert.match(result.output, /LIST pool\/fs/);

  // What the guest wrote is on the volume: read it back over NBD from the host.
  const rawMd5 = /RAW_MD5 ([0-9a-f]{32})/.exec(result.output)![1];
  const raw = join(dir, 'raw.img');
  await runOk('nbdcopy', [gateway.uri('pool/raw'), raw]);
  assert.is(createHash('md5').update(readFileSync(raw).subarray(0, 8 * 1024 * 1024)).digest('hex'), rawMd5);
  const fs = join(dir, 'fs.img');
  await runOk('nbdcopy', [gateway.uri('pool/fs'), fs]);
  await runOk('e2fsck', ['-fn', fs]);

  const fsStats = (await gateway.stats())['pool/fs']!;
  assert.ok(fsStats.flushes! > 0, 'the guest kernel sent flushes');
  assert.ok(fsStats.fuaWrites! > 0, 'and FUA writes (the ext4 journal)');
  assert.ok(fsStats.discards! > 0, 'and trims (mkfs discards the device)');
});

test.run();
