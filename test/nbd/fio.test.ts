/**
 * fio's nbd engine (libnbd) against the frontend: a random-write job at QD32 that checks every
 * block with crc32c as it goes (verify_backlog), then a read-only pass that verifies the whole
 * written area again; and several fio clients at once on separate regions and connections. The
 * volume completes operations after random delays, so replies leave out of order.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { TestGateway, fioJson, run, runOk } from './harness.js';

const test = suite('nbd: fio nbd engine');
let gateway: TestGateway;
let dir: string;

function verifyJob(uri: string, name: string, extra: string[]): string[] {
  return [
    `--name=${name}`,
    '--ioengine=nbd',
    `--uri=${uri}`,
    '--rw=randwrite',
    '--bs=4k',
    '--iodepth=32',
    '--size=48M',
    '--verify=crc32c',
    '--verify_fatal=1',
    '--output-format=json',
    ...extra,
  ];
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fastblock-nbd-fio-'));
  // Random completion delays: replies on each connection go back out of order.
  gateway = await TestGateway.start(['--volume', 'pool/fio:128M', '--volume', 'pool/multi:64M', '--jitter-ms', '2']);
});

test.after(async () => {
  try {
    assert.is(await gateway.stop(), 0, 'gateway stops cleanly');
    assert.equal(gateway.errorLines(), [], 'nothing logged at error level');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('random writes with crc32c verify and verify_backlog, then a full verify_only pass', async () => {
  const uri = gateway.uri('pool/fio');
  const write = await runOk('fio', verifyJob(uri, 'vjob', ['--do_verify=1', '--verify_backlog=256']), { timeoutMs: 120_000, cwd: dir });
  const [job] = fioJson(write.stdout).jobs;
  assert.is(job!.error, 0);
  assert.is(job!.write.io_bytes, 48 * 1024 * 1024);
  assert.ok(job!.read.io_bytes > 0, 'the backlog verified as it wrote');

  const verify = await runOk('fio', verifyJob(uri, 'vjob', ['--verify_only']), { timeoutMs: 120_000, cwd: dir });
  const [pass] = fioJson(verify.stdout).jobs;
  assert.is(pass!.error, 0);
  assert.is(pass!.read.io_bytes, 48 * 1024 * 1024, 'every written block was read and verified');
});

test('the verify pass fails when the data is not what fio wrote (the check can fail)', async () => {
  const uri = gateway.uri('pool/fio');
  await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0 8M 4k', uri]);
  const verify = await run('fio', verifyJob(uri, 'vjob', ['--verify_only']), { timeoutMs: 120_000, cwd: dir });
  assert.is.not(verify.code, 0);
  assert.match(verify.stdout + verify.stderr, /verify|bad magic/i);
});

test('four fio clients at once, each on its own region and connection, all verify', async () => {
  const uri = gateway.uri('pool/multi');
  const jobs = [0, 1, 2, 3].map((i) =>
    run('fio', [
      `--name=client${i}`,
      '--ioengine=nbd',
      `--uri=${uri}`,
      '--rw=randrw',
      '--bs=4k',
      '--iodepth=16',
      `--offset=${i * 16}M`,
      '--size=16M',
      '--io_size=16M',
      '--verify=crc32c',
      '--verify_fatal=1',
      '--do_verify=1',
      '--output-format=json',
    ], { timeoutMs: 120_000, cwd: dir }),
  );
  const results = await Promise.all(jobs);
  for (const [i, result] of results.entries()) {
    assert.is(result.code, 0, `client ${i}: ${result.stderr}`);
    assert.is(fioJson(result.stdout).jobs[0]!.error, 0);
  }
  const connected = gateway.logs.filter((l) => l.msg === 'client connected' && l.export === 'pool/multi');
  assert.ok(connected.length >= 4, 'one connection per client');
});

test.run();
