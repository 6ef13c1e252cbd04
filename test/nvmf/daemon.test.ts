/**
 * The nvmf plugin in a real fastblockd: exports from config at start, `fastblock nvmf create|ls|rm`
 * through the control RPC at runtime, a host doing I/O on a runtime export, removal disconnecting it,
 * a bad nvmf.* value refused at start, SIGTERM stopping cleanly.
 *
 * Writeback exports (their own daemons, writes held at the volumes by the test plugin): a
 * `:writeback` entry and `nvmf create --cache writeback`, ls showing the mode and dirty bytes, BUSY
 * for a writethrough export beside a writeback one, rm draining the log; a bad suffix stops the
 * start. On a FILE-backed volume: writes acknowledged from the log while the volume holds them,
 * SIGKILL, a restart on the same writeBackDir replays the log (the data reads back while its
 * write-back is still held), the orderly stop drains it into the file and removes the log.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes, createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeBackPath } from '../../kernel/block/export-cache.js';
import { FASTBLOCK, FASTBLOCKD, run } from '../cli/daemon-process.js';
import { startNvmfDaemon, type NvmfDaemon } from './support/daemon.js';
import { TestHost } from './support/test-host.js';

let daemon: NvmfDaemon;

test.before(async () => {
  // Writethrough exports look for a leftover write-back log: in a directory of this test, not the host's default.
  const writeBackDir = join(tmpdir(), `fastblock-nvmf-daemon-${process.pid}`);
  daemon = await startNvmfDaemon(['nvmf-test-volumes.volumes=rbd/a:64,rbd/b:16,rbd/c:8', 'nvmf.exports=rbd/a,rbd/c=nqn.2024-01.io.example:c', `nvmf.writeBackDir=${writeBackDir}`]);
});

test.after(async () => {
  await daemon.stop();
});

async function cli(...args: string[]): Promise<unknown> {
  const result = await run(FASTBLOCK, ['nvmf', ...args, '--addr', daemon.addr, '--json']);
  assert.is(result.code, 0, result.stderr + result.stdout);
  return JSON.parse(result.stdout);
}

test('config export at start; nvmf create / ls / rm at runtime; I/O on the runtime export', async () => {
  const initial = (await cli('ls')) as { nqn: string; volume: string; connect: string }[];
  assert.equal(initial.map((e) => [e.volume, e.nqn]), [['rbd/a', 'nqn.2024-01.io.fastblock:rbd:a'], ['rbd/c', 'nqn.2024-01.io.example:c']]);
  assert.match(initial[0]!.connect, new RegExp(`nvme connect -t tcp -a 127.0.0.1 -s ${daemon.port} -n nqn.2024-01.io.fastblock:rbd:a`));
  const created = (await cli('create', 'rbd/b', '--nqn', 'nqn.2024-01.io.example:b')) as { nqn: string; port: number };
  assert.is(created.nqn, 'nqn.2024-01.io.example:b');
  assert.is(created.port, daemon.port);
  assert.is(((await cli('ls')) as unknown[]).length, 3);

  const admin = await TestHost.open(daemon.port);
  const connected = await admin.connectAdmin(created.nqn);
  assert.is(connected.cqe.status, 0);
  await admin.enable();
  const io = await TestHost.open(daemon.port);
  assert.is((await io.connectQueue({ qid: 1, sqsize: 127, cntlid: connected.cqe.dw0, subnqn: created.nqn, hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf', hostId: undefined })).cqe.status, 0);
  const data = randomBytes(64 * 1024);
  assert.is((await io.write(1, 16, data)).cqe.status, 0);
  const seen = await daemon.digest('rbd/b', 16 * 4096, data.length);
  assert.is(seen.md5, createHash('md5').update(data).digest('hex'), 'the volume holds what the host wrote');
  const listed = (await cli('ls')) as { nqn: string; clients: number; controllers: { ioQueues: number; hostnqn: string }[] }[];
  const mine = listed.find((e) => e.nqn === created.nqn)!;
  assert.is(mine.clients, 1);
  assert.is(mine.controllers[0]!.ioQueues, 1);
  assert.match(mine.controllers[0]!.hostnqn, /^nqn.2014-08.org.nvmexpress:uuid:/);
  const text = await run(FASTBLOCK, ['nvmf', 'ls', '--addr', daemon.addr]);
  assert.match(text.stdout, /controller \d+: nqn.2014-08/);

  assert.equal(await cli('rm', created.nqn), { removed: created.nqn });
  await Promise.all([admin.closed, io.closed]);
  assert.is(((await cli('ls')) as unknown[]).length, 2);
  const again = await run(FASTBLOCK, ['nvmf', 'rm', created.nqn, '--addr', daemon.addr]);
  assert.is(again.code, 1);
  assert.match(again.stderr, /no NVMe\/TCP export/);
  const bad = await run(FASTBLOCK, ['nvmf', 'create', 'rbd/a', '--nqn', 'not-an-nqn', '--addr', daemon.addr]);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /invalid NQN/);
});

test('an invalid nvmf.* value is refused at start, naming the key', async () => {
  const result = await run(FASTBLOCKD, ['--plugins', 'tcp,./test/nvmf/support/volumes-plugin.ts,nvmf', '--listen', '127.0.0.1:0', '--set', 'nvmf.port=0', '--set', 'nvmf.maxTransferKiB=3']);
  assert.is(result.code, 1);
  assert.match(result.stderr + result.stdout, /maxTransferKiB/);
});

const HOST = 'nqn.2014-08.org.nvmexpress:uuid:a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf';

/** An admin queue and one I/O queue on `nqn` of `port`. */
async function associate(port: number, nqn: string): Promise<{ admin: TestHost; io: TestHost; close(): void }> {
  const admin = await TestHost.open(port);
  const connected = await admin.connectAdmin(nqn, 0, { hostnqn: HOST });
  assert.is(connected.cqe.status, 0, 'admin connect');
  await admin.enable();
  const io = await TestHost.open(port);
  assert.is((await io.connectQueue({ qid: 1, sqsize: 127, cntlid: connected.cqe.dw0 & 0xffff, subnqn: nqn, hostnqn: HOST })).cqe.status, 0, 'io connect');
  return {
    admin,
    io,
    close: () => {
      io.close();
      admin.close();
    },
  };
}

interface Listed {
  nqn: string;
  volume: string;
  details?: Record<string, unknown>;
}

test('writeback: a :writeback entry, create --cache, ls shows mode and dirty bytes, BUSY beside it, rm drains the log', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-nvmf-daemon-wb-'));
  const wb = await startNvmfDaemon([
    'nvmf-test-volumes.volumes=rbd/w:16,rbd/x:16',
    'nvmf.exports=rbd/w:writeback',
    `nvmf.writeBackDir=${dir}`,
    'nvmf.writeBackMiB=8',
  ]).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  try {
    const cliOf = async (...args: string[]): Promise<unknown> => {
      const result = await run(FASTBLOCK, ['nvmf', ...args, '--addr', wb.addr, '--json']);
      assert.is(result.code, 0, result.stderr + result.stdout);
      return JSON.parse(result.stdout);
    };
    const first = (await cliOf('ls')) as Listed[];
    assert.equal(first.map((e) => [e.volume, e.details?.cache, e.details?.dirtyBytes]), [['rbd/w', 'writeback', 0]]);
    assert.ok(existsSync(writeBackPath(dir, 'rbd/w')), 'the entry\'s log');
    const created = (await cliOf('create', 'rbd/x', '--cache', 'writeback', '--nqn', 'nqn.2024-01.io.example:x')) as Listed;
    assert.is(created.details?.cache, 'writeback');
    assert.is(created.details?.capacityBytes, 8 * 1024 * 1024);
    const text = await run(FASTBLOCK, ['nvmf', 'ls', '--addr', wb.addr]);
    assert.match(text.stdout, /rbd\/x as nqn.2024-01.io.example:x on 127.0.0.1:\d+ \(cache=writeback dirty=0.0 MiB log=0.0 MiB\/8.0 MiB\)/);

    const host = await associate(wb.port, created.nqn);
    await wb.admin('test-volume hold');
    const data = randomBytes(64 * 1024);
    assert.is((await host.io.write(1, 16, data)).cqe.status, 0, 'acknowledged from the log while the volume holds it');
    const listed = ((await cliOf('ls')) as Listed[]).find((e) => e.nqn === created.nqn)!;
    assert.is(listed.details?.dirtyBytes, data.length);
    assert.is((await wb.digest('rbd/x', 16 * 4096, data.length)).zero, true, 'not in the volume yet');
    const busy = await run(FASTBLOCK, ['nvmf', 'create', 'rbd/x', '--nqn', 'nqn.2024-01.io.example:x2', '--cache', 'writethrough', '--addr', wb.addr]);
    assert.is(busy.code, 1);
    assert.match(busy.stderr, /BUSY|held|lock/i);
    const badMode = await run(FASTBLOCK, ['nvmf', 'create', 'rbd/x', '--cache', 'writearound', '--addr', wb.addr]);
    assert.is.not(badMode.code, 0, 'the CLI refuses an unknown mode');
    try {
      await wb.admin('nvmf create', { volume: 'rbd/x', nqn: 'nqn.2024-01.io.example:x3', cache: 'writearound' });
      assert.unreachable('an unknown mode was accepted');
    } catch (err) {
      assert.match((err as Error).message, /cache must be one of writethrough, writeback/);
    }

    // rm waits for the drain: it completes once the held write-back is released.
    const removing = run(FASTBLOCK, ['nvmf', 'rm', created.nqn, '--addr', wb.addr, '--json']);
    await host.io.closed;
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(existsSync(writeBackPath(dir, 'rbd/x')), 'the log stays while the drain waits');
    assert.equal(await wb.admin('test-volume release'), { released: 1 });
    const removed = await removing;
    assert.is(removed.code, 0, removed.stderr);
    assert.not.ok(existsSync(writeBackPath(dir, 'rbd/x')), 'removed with the export');
    assert.is((await wb.digest('rbd/x', 16 * 4096, data.length)).md5, createHash('md5').update(data).digest('hex'), 'drained into the volume');
    host.close();
  } finally {
    try {
      await wb.stop();
      assert.not.ok(existsSync(writeBackPath(dir, 'rbd/w')), 'the orderly stop drains and removes the entry\'s log');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('an unknown nvmf.exports suffix stops the start, naming the entry', async () => {
  const result = await run(FASTBLOCKD, [
    '--plugins', 'tcp,./test/nvmf/support/volumes-plugin.ts,nvmf', '--listen', '127.0.0.1:0',
    '--set', 'nvmf.port=0', '--set', 'nvmf-test-volumes.volumes=rbd/a:16', '--set', 'nvmf.exports=rbd/a:writearound',
  ]);
  assert.is(result.code, 1);
  assert.match(result.stderr + result.stdout, /rbd\/a:writearound/);
});

test('writeback on a file: acknowledged writes survive a SIGKILL, the restart replays the log, the stop drains it into the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-nvmf-kill-'));
  const image = join(dir, 'disk.img');
  writeFileSync(image, '');
  truncateSync(image, 16 * 1024 * 1024);
  const wbDir = join(dir, 'wb');
  const settings = [
    `nvmf-test-volumes.files=rbd/f=${image}`,
    'nvmf-test-volumes.holdWrites=true',
    'nvmf.exports=rbd/f:writeback',
    `nvmf.writeBackDir=${wbDir}`,
    'nvmf.writeBackMiB=8',
  ];
  const nqn = 'nqn.2024-01.io.fastblock:rbd:f';
  const big = randomBytes(512 * 1024);
  const small = randomBytes(4096);
  let second: NvmfDaemon | undefined;
  try {
    const first = await startNvmfDaemon(settings);
    const host = await associate(first.port, nqn);
    assert.is((await host.io.write(1, 64, big)).cqe.status, 0, 'acknowledged from the log');
    assert.is((await host.io.write(1, 3, small)).cqe.status, 0);
    // They stay in the log up to the write-back hold (nvmf.writeBackHoldMs, 500 ms by default), then reach the file, which holds them.
    let held: unknown;
    for (let waited = 0; waited < 5_000; waited += 50) {
      held = await first.admin('test-volume held');
      if ((held as { held: number }).held === 2) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(held, { held: 2 }, 'both write-backs held at the file');
    const listed = ((await first.admin('nvmf ls')) as Listed[])[0]!;
    assert.is(listed.details?.dirtyBytes, big.length + small.length);
    first.process.child.kill('SIGKILL');
    const killed = await first.process.exit;
    assert.is(killed.signal, 'SIGKILL');
    host.close();
    const file = readFileSync(image);
    assert.ok(file.subarray(64 * 4096, 64 * 4096 + big.length).every((b) => b === 0), 'the file never got the write');
    assert.ok(existsSync(writeBackPath(wbDir, 'rbd/f')), 'the log outlives the process');

    // Same settings: the file's writes are held again, so what reads back comes from the replayed log.
    second = await startNvmfDaemon(settings);
    const replayed = await second.process.waitFor(/write-back log replayed/);
    assert.is(replayed.records, 2);
    const again = await associate(second.port, nqn);
    const back = await again.io.read(1, 64, big.length / 4096);
    assert.is(back.cqe.status, 0);
    assert.equal(Buffer.from(back.data), big, 'read back from the replayed log');
    assert.equal(Buffer.from((await again.io.read(1, 3, 1)).data), small);
    const details = ((await second.admin('nvmf ls')) as Listed[])[0]!.details;
    assert.is(details?.replayed, 2);
    assert.is(details?.dirtyBytes, big.length + small.length);
    assert.ok(readFileSync(image).subarray(64 * 4096, 64 * 4096 + big.length).every((b) => b === 0), 'still only in the log');
    await second.admin('test-volume release');
    again.close();
    await second.stop();
    second = undefined;
    const after = readFileSync(image);
    assert.equal(after.subarray(64 * 4096, 64 * 4096 + big.length), big, 'the file has the replayed write');
    assert.equal(after.subarray(3 * 4096, 4 * 4096), small);
    assert.not.ok(existsSync(writeBackPath(wbDir, 'rbd/f')), 'the orderly stop removed the drained log');
  } finally {
    if (second) second.process.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
