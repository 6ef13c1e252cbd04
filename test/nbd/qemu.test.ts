/**
 * QEMU's NBD client (qemu-img, qemu-io) against the frontend: data written with patterns reads
 * back, FUA and flush reach the volume, write-zeroes and discard read as zeroes, aio requests run
 * concurrently, a wrong pattern is caught, a read-only export refuses writes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { TestGateway, run, runOk } from './harness.js';

const test = suite('nbd: qemu clients');
let gateway: TestGateway;
const MIB = 1024 * 1024;

function qemuIo(uri: string, ...commands: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run('qemu-io', ['-f', 'raw', ...commands.flatMap((c) => ['-c', c]), uri], { timeoutMs: 30_000 });
}

test.before(async () => {
  gateway = await TestGateway.start(['--volume', 'pool/img:64M', '--volume', 'pool/ro:4M:ro', '--no-dynamic']);
});

test.after(async () => {
  assert.is(await gateway.stop(), 0, 'gateway stops cleanly');
  assert.equal(gateway.errorLines(), [], 'nothing logged at error level');
});

test('qemu-img info sees a raw 64 MiB image', async () => {
  const { stdout } = await runOk('qemu-img', ['info', '--output=json', gateway.uri('pool/img')]);
  const info = JSON.parse(stdout) as { format: string; 'virtual-size': number };
  assert.is(info.format, 'raw');
  assert.is(info['virtual-size'], 64 * MIB);
});

test('patterns written with qemu-io read back; FUA reaches the volume', async () => {
  const before = (await gateway.stats())['pool/img']!;
  const uri = gateway.uri('pool/img');
  await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 0 1M', '-c', 'write -f -P 0xcd 1M 64k', '-c', 'write -P 0x5a 3000 1000', '-c', 'flush', uri]);
  // A second connection reads what the first wrote.
  const read = await qemuIo(uri, 'read -P 0xab 0 3000', 'read -P 0x5a 3000 1000', 'read -P 0xab 4000 1044576', 'read -P 0xcd 1M 64k', 'read -P 0 2M 1M');
  assert.is(read.code, 0, read.stdout + read.stderr);
  const after = (await gateway.stats())['pool/img']!;
  assert.ok(after.fuaWrites! > before.fuaWrites!, 'write -f arrives with FUA');
  assert.ok(after.flushes! > before.flushes!, 'flush arrives');
});

test('a wrong pattern is detected (the check can fail)', async () => {
  const uri = gateway.uri('pool/img');
  await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 8M 4k', uri]);
  const wrong = await qemuIo(uri, 'read -P 0x12 8M 4k');
  assert.is.not(wrong.code, 0);
  assert.match(wrong.stdout + wrong.stderr, /Pattern verification failed/);
});

test('write -z (NO_HOLE), write -z -u and discard read back as zeroes; discard frees space', async () => {
  const uri = gateway.uri('pool/img');
  await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x77 16M 4M', uri]);
  const filled = (await gateway.stats())['pool/img']!;
  const result = await qemuIo(uri, 'write -z 16M 64k', 'write -z -u 17M 64k', 'discard 18M 1M', 'read -P 0 16M 64k', 'read -P 0x77 16448k 960k', 'read -P 0 17M 64k', 'read -P 0 18M 1M', 'read -P 0x77 19M 1M');
  assert.is(result.code, 0, result.stdout + result.stderr);
  const after = (await gateway.stats())['pool/img']!;
  assert.ok(after.writeZeroes! > filled.writeZeroes!, 'write -z -u is a write-zeroes on the volume');
  assert.ok(after.allocatedBytes! <= filled.allocatedBytes! - MIB, 'discard released the trimmed megabyte');
});

test('aio writes in flight together, then aio_flush; readv/writev', async () => {
  const uri = gateway.uri('pool/img');
  const commands = [];
  for (let i = 0; i < 16; i++) commands.push(`aio_write -P ${0x20 + i} ${32 + i}M 256k`);
  commands.push('aio_flush', 'writev -P 0x99 40M 4k 8k 4k');
  const write = await qemuIo(uri, ...commands);
  assert.is(write.code, 0, write.stdout + write.stderr);
  const reads = [];
  for (let i = 0; i < 16; i++) reads.push(`aio_read -P ${0x20 + i} ${32 + i}M 256k`);
  reads.push('aio_flush', 'readv -P 0x99 40M 8k 8k');
  const read = await qemuIo(uri, ...reads);
  assert.is(read.code, 0, read.stdout + read.stderr);
});

test('the last block of the export is usable', async () => {
  const uri = gateway.uri('pool/img');
  const last = 64 * MIB - 4096;
  const edge = await qemuIo(uri, `write -P 0x42 ${last} 4k`, `read -P 0x42 ${last} 4k`, `write -P 0x43 ${last + 4000} 96`, `read -P 0x43 ${last + 4000} 96`);
  assert.is(edge.code, 0, edge.stdout + edge.stderr);
});

test('qemu-img convert of a sparse image onto the export, then qemu-img compare', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fastblock-nbd-qemu-'));
  try {
    const image = join(dir, 'sparse.raw');
    await runOk('qemu-img', ['create', '-f', 'raw', image, '64M']);
    await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x3e 5M 3M', '-c', 'write -P 0x3f 40M 64k', image]);
    // The export holds older data everywhere; convert must zero what the source leaves sparse.
    await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x99 0 64M', gateway.uri('pool/img')]);
    await runOk('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', image, gateway.uri('pool/img')], { timeoutMs: 60_000 });
    const compare = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', image, gateway.uri('pool/img')], { timeoutMs: 60_000 });
    assert.is(compare.code, 0, compare.stdout + compare.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a read-only export reads but refuses writes', async () => {
  const uri = gateway.uri('pool/ro');
  const read = await run('qemu-io', ['-r', '-f', 'raw', '-c', 'read -P 0 0 1M', uri], { timeoutMs: 30_000 });
  assert.is(read.code, 0, read.stdout + read.stderr);
  const write = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 1 0 4k', uri], { timeoutMs: 30_000 });
  assert.is.not(write.code, 0);
  assert.match(write.stdout + write.stderr, /read-only|Operation not permitted|Permission denied/i);
});

test.run();
