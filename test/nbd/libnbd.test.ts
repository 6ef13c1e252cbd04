/**
 * libnbd's tools against the frontend: nbdinfo reads what negotiation advertises (size, flags,
 * block sizes, the export list, base:allocation), nbdcopy moves 256 MiB of random data in over
 * several connections and back out unchanged.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { TestGateway, run, runOk } from './harness.js';

const test = suite('nbd: libnbd tools');
const MIB = 1024 * 1024;
let gateway: TestGateway;
let dir: string;

interface NbdInfo {
  exports: Array<{
    'export-name': string;
    'export-size': number;
    is_read_only: boolean;
    can_flush: boolean;
    can_fua: boolean;
    can_multi_conn: boolean;
    can_trim: boolean;
    can_zero: boolean;
    can_fast_zero: boolean;
    block_size_minimum: number;
    block_size_preferred: number;
    block_size_maximum: number;
    contexts?: string[];
  }>;
  protocol: string;
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fastblock-nbd-'));
  gateway = await TestGateway.start(['--volume', 'pool/big:256M', '--volume', 'pool/small:1M', '--volume', 'pool/ro:1M:ro']);
});

test.after(async () => {
  try {
    assert.is(await gateway.stop(), 0, 'gateway stops cleanly');
    assert.equal(gateway.errorLines(), [], 'nothing logged at error level');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('nbdinfo: size, flags, block sizes and base:allocation', async () => {
  const { stdout } = await runOk('nbdinfo', ['--json', gateway.uri('pool/big')]);
  const info = JSON.parse(stdout) as NbdInfo;
  assert.match(info.protocol, /newstyle-fixed/);
  const [exp] = info.exports;
  assert.is(exp!['export-name'], 'pool/big');
  assert.is(exp!['export-size'], 256 * MIB);
  assert.is(exp!.is_read_only, false);
  for (const flag of ['can_flush', 'can_fua', 'can_multi_conn', 'can_trim', 'can_zero', 'can_fast_zero'] as const) assert.ok(exp![flag], flag);
  assert.is(exp!.block_size_minimum, 1);
  assert.is(exp!.block_size_preferred, 4096);
  assert.is(exp!.block_size_maximum, 32 * MIB);
  assert.ok(exp!.contexts?.includes('base:allocation'));
});

test('nbdinfo --list names every export, read-only where it is', async () => {
  const { stdout } = await runOk('nbdinfo', ['--list', '--json', gateway.uri()]);
  const info = JSON.parse(stdout) as NbdInfo;
  const names = info.exports.map((e) => e['export-name']).sort();
  assert.equal(names, ['pool/big', 'pool/ro', 'pool/small']);
  assert.is(info.exports.find((e) => e['export-name'] === 'pool/ro')!.is_read_only, true);
});

test('nbdinfo --map answers block status over the whole export', async () => {
  const { stdout } = await runOk('nbdinfo', ['--map', gateway.uri('pool/small')]);
  assert.match(stdout, /0\s+1048576\s+0\s+data/);
});

test('an unknown export name is refused with a clear error', async () => {
  const result = await run('nbdinfo', [gateway.uri('pool/nope')]);
  assert.is.not(result.code, 0);
  assert.match(result.stderr, /pool\/nope/);
});

test('nbdcopy: 256 MiB of random data in over 4 connections and back out, checksums equal', async () => {
  const source = join(dir, 'random.img');
  const copy = join(dir, 'copy.img');
  const data = randomBytes(256 * MIB);
  writeFileSync(source, data);
  const want = createHash('sha256').update(data).digest('hex');
  await runOk('nbdcopy', ['--connections=4', '--requests=16', source, gateway.uri('pool/big')], { timeoutMs: 120_000 });
  await runOk('nbdcopy', ['--connections=2', gateway.uri('pool/big'), copy], { timeoutMs: 120_000 });
  assert.is(createHash('sha256').update(readFileSync(copy)).digest('hex'), want);
  const stats = (await gateway.stats())['pool/big']!;
  assert.is(stats.allocatedBytes, 256 * MIB, 'every page reached the volume');
});

test.run();
