/**
 * A real filesystem through the host kernel: nbdfuse exposes the export as a file, a loop device
 * turns it into a block device, and ext4 runs on it (mkfs, mount, files, umount, fsck, remount).
 * Then the image is copied out over NBD and checked again without any kernel cache in between.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { TestGateway, run, runOk, sleep } from './harness.js';

const test = suite('nbd: ext4 over nbdfuse + loop');
const MIB = 1024 * 1024;
let gateway: TestGateway;
let dir: string;
let fuseDir: string;
let mnt: string;
let nbdfuse: ChildProcess | undefined;
let loop: string | undefined;
const files = new Map<string, string>();

const available = existsSync('/dev/fuse') && process.getuid?.() === 0;
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

async function startNbdfuse(uri: string): Promise<void> {
  const pidFile = join(dir, 'nbdfuse.pid');
  nbdfuse = spawn('nbdfuse', ['-P', pidFile, fuseDir, uri], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  nbdfuse.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  // nbdfuse writes its pid file once the FUSE mount is ready.
  for (let i = 0; i < 200 && !existsSync(pidFile); i++) {
    if (nbdfuse.exitCode !== null) throw new Error(`nbdfuse exited ${nbdfuse.exitCode}: ${stderr}`);
    await sleep(25);
  }
  assert.ok(existsSync(join(fuseDir, 'nbd')), `nbdfuse mounted (${stderr})`);
}

async function stopNbdfuse(): Promise<void> {
  if (!nbdfuse) return;
  const exited = new Promise<void>((resolve) => (nbdfuse!.exitCode !== null ? resolve() : nbdfuse!.once('exit', () => resolve())));
  await run('fusermount3', ['-u', fuseDir]);
  // nbdfuse closes its NBD connections on unmount but its process can linger; end it.
  await Promise.race([exited, sleep(300)]);
  if (nbdfuse.exitCode === null) nbdfuse.kill('SIGTERM');
  await Promise.race([exited, sleep(2000)]);
  if (nbdfuse.exitCode === null) nbdfuse.kill('SIGKILL');
  nbdfuse = undefined;
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fastblock-nbd-ext4-'));
  fuseDir = join(dir, 'fuse');
  mnt = join(dir, 'mnt');
  mkdirSync(fuseDir);
  mkdirSync(mnt);
  gateway = await TestGateway.start(['--volume', 'pool/fs:128M']);
});

test.after(async () => {
  try {
    await run('umount', [mnt]);
    if (loop) await run('losetup', ['-d', loop]);
    await stopNbdfuse();
    assert.is(await gateway.stop(), 0, 'gateway stops cleanly');
    assert.equal(gateway.errorLines(), [], 'nothing logged at error level');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mkfs.ext4, mount, write files, umount, e2fsck -fn, remount, checksums', async () => {
  await startNbdfuse(gateway.uri('pool/fs'));
  loop = (await runOk('losetup', ['-f', '--show', join(fuseDir, 'nbd')])).stdout.trim();
  await runOk('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', loop]);
  await runOk('mount', [loop, mnt]);
  for (let i = 0; i < 4; i++) {
    const data = randomBytes(4 * MIB + i * 4099);
    writeFileSync(join(mnt, `big${i}`), data);
    files.set(`big${i}`, sha256(data));
  }
  mkdirSync(join(mnt, 'small'));
  for (let i = 0; i < 200; i++) {
    const data = randomBytes(100 + i * 37);
    writeFileSync(join(mnt, 'small', `f${i}`), data);
    files.set(`small/f${i}`, sha256(data));
  }
  await runOk('sync', []);
  await runOk('umount', [mnt]);
  await runOk('e2fsck', ['-fn', loop]);
  await runOk('mount', [loop, mnt]);
  for (const [name, sum] of files) assert.is(sha256(readFileSync(join(mnt, name))), sum, name);
  await runOk('umount', [mnt]);
  await runOk('losetup', ['-d', loop]);
  loop = undefined;
  await stopNbdfuse();
});

test('the image copied out over NBD is a clean ext4 holding the same files', async () => {
  const image = join(dir, 'fs.img');
  await runOk('nbdcopy', [gateway.uri('pool/fs'), image]);
  await runOk('e2fsck', ['-fn', image]);
  for (const name of ['big0', 'big3', 'small/f0', 'small/f199']) {
    const out = join(dir, 'dump');
    await runOk('debugfs', ['-R', `dump /${name} ${out}`, image]);
    assert.is(sha256(readFileSync(out)), files.get(name), name);
  }
});

if (available) test.run();
else {
  console.log('SKIP nbd ext4: needs root and /dev/fuse (nbdfuse + loop + mount)');
  const skipped = suite('nbd: ext4 over nbdfuse + loop (skipped)');
  skipped('reports the skip', () => undefined);
  skipped.run();
}
