/** Per-export frontend counters: requests as issued, bytes, and the requests the image failed. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Registry } from 'prom-client';
import type { BlockVolume, BlockVolumeProvider } from '../../kernel/contracts/block.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { meteredVolumes } from '../../kernel/metrics/metered-volumes.js';

/** A 1 MiB volume that fails every I/O touching its second half. */
function halfBrokenProvider(): BlockVolumeProvider {
  const MiB = 1 << 20;
  const fail = (offset: number): Promise<never> | undefined =>
    offset >= MiB / 2 ? Promise.reject(new FastblockError(ErrorCode.IO_ERROR, 'injected', { offset })) : undefined;
  const volume: BlockVolume = {
    name: 'rbd/half',
    size: MiB,
    blockSize: 4096,
    read: (offset, length) => fail(offset) ?? Promise.resolve(new Uint8Array(length)),
    write: (offset) => fail(offset) ?? Promise.resolve(),
    flush: () => Promise.resolve(),
    discard: (offset) => fail(offset) ?? Promise.resolve(),
    writeZeroes: (offset) => fail(offset) ?? Promise.resolve(),
    close: () => Promise.resolve(),
  };
  return { list: async () => [volume.name], open: async () => volume };
}

const sample = (text: string, line: string): number => {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? Number.NaN : Number(found.slice(line.length + 1));
};

test('a failed I/O is counted as a request and as an error of its op, and still fails for the caller', async () => {
  const registry = new Registry();
  const volume = await meteredVolumes(halfBrokenProvider(), registry, 'nbd').open('rbd/half');
  await volume.write(0, [new Uint8Array(4096)]);
  await volume.read(0, 4096);
  const failures = await Promise.allSettled([volume.write(1 << 19, [new Uint8Array(4096)]), volume.read(1 << 19, 8192), volume.discard(1 << 19, 4096), volume.writeZeroes(1 << 19, 4096)]);
  assert.equal(
    failures.map((f) => f.status === 'rejected' && (f.reason as FastblockError).code),
    [ErrorCode.IO_ERROR, ErrorCode.IO_ERROR, ErrorCode.IO_ERROR, ErrorCode.IO_ERROR],
    'the caller sees the error unchanged',
  );
  await volume.flush();
  const text = await registry.metrics();
  const labels = (op: string) => `{frontend="nbd",export="rbd/half",op="${op}"}`;
  assert.is(sample(text, `fastblock_frontend_requests_total${labels('write')}`), 2);
  assert.is(sample(text, `fastblock_frontend_errors_total${labels('write')}`), 1);
  assert.is(sample(text, `fastblock_frontend_requests_total${labels('read')}`), 2);
  assert.is(sample(text, `fastblock_frontend_errors_total${labels('read')}`), 1);
  assert.is(sample(text, `fastblock_frontend_errors_total${labels('discard')}`), 1);
  assert.is(sample(text, `fastblock_frontend_errors_total${labels('write_zeroes')}`), 1);
  assert.is(sample(text, `fastblock_frontend_errors_total${labels('flush')}`), 0);
  assert.is(sample(text, 'fastblock_frontend_read_bytes_total{frontend="nbd",export="rbd/half"}'), 4096 + 8192);
});

test.run();
