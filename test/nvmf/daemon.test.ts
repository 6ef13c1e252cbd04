/**
 * The nvmf plugin in a real fastblockd: exports from config at start, `fastblock nvmf create|ls|rm`
 * through the control RPC at runtime, a host doing I/O on a runtime export, removal disconnecting it,
 * a bad nvmf.* value refused at start, SIGTERM stopping cleanly.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes, createHash } from 'node:crypto';
import { FASTBLOCK, FASTBLOCKD, run } from '../cli/daemon-process.js';
import { startNvmfDaemon, type NvmfDaemon } from './support/daemon.js';
import { TestHost } from './support/test-host.js';

let daemon: NvmfDaemon;

test.before(async () => {
  daemon = await startNvmfDaemon(['nvmf-test-volumes.volumes=rbd/a:64,rbd/b:16,rbd/c:8', 'nvmf.exports=rbd/a,rbd/c=nqn.2024-01.io.example:c']);
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

test.run();
