// The vhost plugin in the real fastblockd: a controller from config at start, then `fastblock vhost
// create | ls | rm` through the control RPC while the daemon runs; a front-end is served on the
// socket created at run time; bad arguments are clear errors and change nothing. Cache modes: the
// configured controller is writeback (from its entry), `--cache` picks one per controller, and
// `vhost ls` shows each mode (writeback: its dirty bytes).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExportInfo } from '../../kernel/contracts/frontend.js';
import { vhostNative } from '../../plugins/frontend-vhost/native.js';
import { HEADER_SIZE, HeaderFlag, Request, encodeMessage } from '../../plugins/frontend-vhost/protocol.js';
import { FASTBLOCK, FASTBLOCKD, run, start } from '../cli/daemon-process.js';
import { freePort } from '../support/ports.js';

const native = vhostNative();


/** GET_QUEUE_NUM over a fresh connection, as a front-end would ask it. */
async function queueNum(socket: string): Promise<bigint> {
  const fd = native.connect(socket);
  try {
    native.send(fd, encodeMessage(Request.GET_QUEUE_NUM, new Uint8Array(0), HeaderFlag.VERSION));
    const buf = new Uint8Array(HEADER_SIZE + 8);
    let got = 0;
    for (let waited = 0; got < buf.length && waited < 5000; waited += 5) {
      const [n] = native.recv(fd, buf.subarray(got));
      if (n === 0) throw new Error('back-end closed the connection');
      if (n! > 0) got += n!;
      else await sleep(5);
    }
    return new DataView(buf.buffer).getBigUint64(HEADER_SIZE, true);
  } finally {
    native.close(fd);
  }
}

test('controllers from config and at run time through `fastblock vhost`', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-vhost-daemon-'));
  const addr = `127.0.0.1:${await freePort()}`;
  const configured = join(dir, 'configured.sock');
  const runtime = join(dir, 'runtime.sock');
  const daemon = start(FASTBLOCKD, [
    '--plugins', 'tcp,./test/nbd/memory-plugin.ts,vhost',
    '--listen', addr,
    '--set', 'memory-volumes.volumes=rbd/a:16,rbd/b:16',
    '--set', `vhost.controllers=rbd/a=${configured}:3:writeback`,
    '--set', `vhost.writeBackDir=${join(dir, 'write-back')}`,
    '--set', 'vhost.writeBackMiB=4',
  ]);
  const cli = (...args: string[]) => run(FASTBLOCK, ['vhost', ...args, '--addr', addr, '--json']);
  try {
    await daemon.waitFor(/started|listening/);
    for (let i = 0; i < 100 && !existsSync(configured); i++) await sleep(50);
    assert.is(await queueNum(configured), 3n, 'the configured controller serves with its queue count');

    const created = await cli('create', 'rbd/b', '--socket', runtime, '--queues', '2');
    assert.is(created.code, 0, created.stderr + created.stdout);
    assert.equal(JSON.parse(created.stdout), { id: runtime, protocol: 'vhost-user-blk', volume: 'rbd/b', location: runtime, clients: 0, details: { cache: 'writethrough' } });
    assert.is(await queueNum(runtime), 2n);

    const listed = await cli('ls');
    const controllers = (JSON.parse(listed.stdout) as ExportInfo[]).sort((x, y) => x.volume.localeCompare(y.volume));
    assert.equal(controllers.map((c) => c.volume), ['rbd/a', 'rbd/b']);
    assert.equal(controllers[0]!.details, { cache: 'writeback', dirtyBytes: 0, dirtyRecords: 0, usedBytes: 0, capacityBytes: 4 * 1024 * 1024, retries: 0, replayed: 0, absorbed: 0, readCacheBytes: 0, readCacheCapacityBytes: 64 * 1024 * 1024, readCacheHits: 0, readCacheMisses: 0 });
    assert.ok(existsSync(join(dir, 'write-back', 'rbd%2Fa.wblog')), 'the configured writeback controller has its log');
    const human = await run(FASTBLOCK, ['vhost', 'ls', '--addr', addr]);
    assert.match(human.stdout, /rbd\/a .* cache=writeback dirty=0\.0 MiB log=0\.0 MiB\/4\.0 MiB/);
    assert.match(human.stdout, /rbd\/b .* cache=writethrough/);

    const badMode = await cli('create', 'rbd/b', '--socket', join(dir, 'y.sock'), '--cache', 'writearound');
    assert.is.not(badMode.code, 0);
    assert.match(badMode.stderr, 'writearound');
    assert.not.ok(existsSync(join(dir, 'y.sock')));
    const duplicate = await cli('create', 'rbd/a', '--socket', runtime);
    assert.is(duplicate.code, 1);
    assert.match(duplicate.stdout, 'ALREADY_EXISTS');
    const unknown = await cli('create', 'rbd/nope', '--socket', join(dir, 'x.sock'));
    assert.is(unknown.code, 1);
    assert.match(unknown.stdout, 'NOT_FOUND');
    assert.not.ok(existsSync(join(dir, 'x.sock')), 'a failed create leaves no socket');

    const removed = await cli('rm', runtime);
    assert.is(removed.code, 0, removed.stderr);
    assert.not.ok(existsSync(runtime));
    assert.is((await cli('rm', runtime)).code, 1);
    // rbd/b again, now writeback (no other controller serves it meanwhile).
    const writeBack = await cli('create', 'rbd/b', '--socket', join(dir, 'wb.sock'), '--cache', 'writeback');
    assert.is(writeBack.code, 0, writeBack.stderr + writeBack.stdout);
    assert.is((JSON.parse(writeBack.stdout) as ExportInfo).details?.cache, 'writeback');
    assert.is((await cli('rm', join(dir, 'wb.sock'))).code, 0);
    assert.not.ok(existsSync(join(dir, 'write-back', 'rbd%2Fb.wblog')), 'rm drains and removes the log');

    assert.is(await queueNum(configured), 3n, 'the other controller goes on');
  } finally {
    daemon.child.kill('SIGTERM');
    await daemon.exit;
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
