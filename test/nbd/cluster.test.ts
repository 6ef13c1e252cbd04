// @slow (a local cluster: monitor, 3 OSDs on the blobstore, NBD gateway)
/**
 * The NBD frontend on the whole path: real clients against the gateway of a local cluster
 * (`fastblockd --plugins tcp,client,nbd`, a pool of size 3 on three OSDs), so every request goes
 * through the client library and raft. The I/O is kept small: the cluster suites measure speed;
 * this one checks that what the NBD clients write and read survives the real data path.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LocalCluster } from '../../cli/commands/vstart-cluster.js';
import { fioJson, run, runOk } from './harness.js';
import { freePortBlock } from '../support/ports.js';

const test = suite('nbd: whole path (local cluster)');
const MIB = 1024 * 1024;
let dir: string;
let cluster: LocalCluster;
let uri: string;

async function startCluster(): Promise<LocalCluster> {
  // Fixed ports (a cluster keeps them across restarts), reserved against the suites running
  // beside this one: monitor P, NBD P+5, OSD i at P+10+10i and its shard port after it.
  const base = await freePortBlock([0, 5, 10, 11, 20, 21, 30, 31]);
  return LocalCluster.start({
    dir: join(dir, 'cluster'),
    osds: 3,
    monitorPort: base,
    osdBasePort: base + 10,
    nbdPort: base + 5,
    pool: { name: 'rbd', size: 3, pgNum: 16 },
    image: { name: 'disk', sizeBytes: 64 * MIB },
    storeSizeMb: 512,
    logLevel: 'warn',
  });
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fastblock-nbd-cluster-'));
  try {
    cluster = await startCluster();
  } catch (err) {
    // Most likely a port another process took meanwhile: once more on other ports, then fail.
    console.log(`first cluster start failed (${(err as Error).message}); retrying on other ports`);
    rmSync(join(dir, 'cluster'), { recursive: true, force: true });
    cluster = await startCluster();
  }
  uri = cluster.nbdUri;
});

test.after(async () => {
  let gatewayLog = '';
  try {
    await cluster?.stop();
  } finally {
    const logFile = join(dir, 'cluster', 'logs', 'gateway.log');
    gatewayLog = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    rmSync(dir, { recursive: true, force: true });
  }
  const errors = gatewayLog.split('\n').filter((l) => l.includes('"level":"error"') || l.includes('"level":"fatal"'));
  assert.equal(errors, [], 'the gateway logged no errors');
});

test('nbdinfo: the image with its size and flags', async () => {
  const { stdout } = await runOk('nbdinfo', ['--json', uri]);
  const [exp] = (JSON.parse(stdout) as { exports: Array<Record<string, unknown>> }).exports;
  assert.is(exp!['export-name'], 'rbd/disk');
  assert.is(exp!['export-size'], 64 * MIB);
  assert.is(exp!.can_multi_conn, true);
});

test('qemu-io patterns, FUA, write-zeroes, discard and aio through raft', async () => {
  const write = await run('qemu-io', ['-f', 'raw',
    '-c', 'write -P 0xa1 0 1M', '-c', 'write -f -P 0xa2 1M 64k', '-c', 'write -P 0xa3 3000 1000',
    '-c', 'write -P 0xa4 8M 1M', '-c', 'write -z 8M 64k', '-c', `discard ${8 * MIB + 512 * 1024} 512k`,
    '-c', 'aio_write -P 0xb1 16M 256k', '-c', 'aio_write -P 0xb2 17M 256k', '-c', 'aio_flush', uri], { timeoutMs: 60_000 });
  assert.is(write.code, 0, write.stdout + write.stderr);
  const read = await run('qemu-io', ['-f', 'raw',
    '-c', 'read -P 0xa1 0 3000', '-c', 'read -P 0xa3 3000 1000', '-c', 'read -P 0xa1 4000 1044576', '-c', 'read -P 0xa2 1M 64k',
    '-c', 'read -P 0 8M 64k', '-c', `read -P 0xa4 ${8 * MIB + 65536} ${512 * 1024 - 65536}`, '-c', `read -P 0 ${8 * MIB + 512 * 1024} 512k`,
    '-c', 'read -P 0xb1 16M 256k', '-c', 'read -P 0xb2 17M 256k', uri], { timeoutMs: 60_000 });
  assert.is(read.code, 0, read.stdout + read.stderr);
});

test('nbdcopy: 16 MiB of random data in over two connections, read back with qemu-img dd', async () => {
  const source = join(dir, 'random.img');
  const copy = join(dir, 'copy.img');
  const data = randomBytes(16 * MIB);
  writeFileSync(source, data);
  await runOk('nbdcopy', ['--connections=2', source, uri], { timeoutMs: 120_000 });
  await runOk('qemu-img', ['dd', '-f', 'raw', '-O', 'raw', `if=${uri}`, `of=${copy}`, 'bs=1M', 'count=16'], { timeoutMs: 120_000 });
  assert.is(createHash('sha256').update(readFileSync(copy)).digest('hex'), createHash('sha256').update(data).digest('hex'));
});

test('fio nbd engine: randwrite with crc32c verify and verify_backlog, then verify_only', async () => {
  const job = ['--name=cluster', '--ioengine=nbd', `--uri=${uri}`, '--rw=randwrite', '--bs=4k', '--iodepth=16', '--offset=32M', '--size=2M',
    '--verify=crc32c', '--verify_fatal=1', '--output-format=json'];
  const write = await runOk('fio', [...job, '--do_verify=1', '--verify_backlog=64'], { timeoutMs: 180_000, cwd: dir });
  assert.is(fioJson(write.stdout).jobs[0]!.error, 0);
  const verify = await runOk('fio', [...job, '--verify_only'], { timeoutMs: 180_000, cwd: dir });
  const [pass] = fioJson(verify.stdout).jobs;
  assert.is(pass!.error, 0);
  assert.is(pass!.read.io_bytes, 2 * MIB);
});

test.run();
