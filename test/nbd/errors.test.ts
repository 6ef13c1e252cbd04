/**
 * Volume errors as clients see them: a full pool is ENOSPC, an unreadable or timed-out object is
 * EIO, with the volume's message in structured error chunks; the connection carries on with the
 * next request. The volume's bad regions are injected by test/nbd/faulty-volume.ts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { TestGateway, run } from './harness.js';
import { RawSocket } from './raw-socket.js';

const test = suite('nbd: volume errors');
const MIB = 1024 * 1024;
const EIO = 5;
const ENOSPC = 28;
let gateway: TestGateway;

test.before(async () => {
  gateway = await TestGateway.start([
    '--volume', 'pool/a:16M',
    '--fault', 'pool/a:1M:64K:NO_SPACE',
    '--fault', 'pool/a:2M:64K:IO_ERROR',
    '--fault', 'pool/a:3M:4K:TIMEOUT',
  ]);
});

test.after(async () => {
  assert.is(await gateway.stop(), 0, 'gateway stops cleanly');
  assert.equal(gateway.errorLines(), [], 'nothing logged at error level');
});

test('qemu-io sees ENOSPC and EIO, and the same connection goes on', async () => {
  const result = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 1 1M 4k', '-c', 'read 2M 4k', '-c', 'read 3M 4k', '-c', 'write -P 2 0 4k', '-c', 'read -P 2 0 4k', gateway.uri('pool/a')], { timeoutMs: 30_000 });
  const output = result.stdout + result.stderr;
  assert.match(output, /write failed: No space left on device/);
  assert.match(output, /read failed: Input\/output error[\s\S]*read failed: Input\/output error/);
  assert.match(output, /read 4096\/4096 bytes at offset 0/, 'later requests on the connection succeed');
});

test('simple replies carry the errno values', async () => {
  const raw = await RawSocket.open(gateway.port);
  await raw.greet();
  await raw.go('pool/a');
  raw.request(1, 1 * MIB, 4096, { cookie: 1, payload: Buffer.alloc(4096) });
  raw.request(0, 2 * MIB, 4096, { cookie: 2 });
  raw.request(6, 1 * MIB, 8192, { cookie: 3 });
  raw.request(4, 2 * MIB, 8192, { cookie: 4 });
  const errors = new Map<number, number>();
  for (let i = 0; i < 4; i++) {
    const reply = await raw.simpleReply();
    errors.set(reply.cookie, reply.error);
  }
  assert.equal([...errors.entries()].sort(), [[1, ENOSPC], [2, EIO], [3, ENOSPC], [4, EIO]]);
  raw.request(2, 0, 0);
  await raw.closed;
});

test('structured replies carry the errno and the message in an error chunk', async () => {
  const raw = await RawSocket.open(gateway.port);
  await raw.greet();
  assert.is((await raw.option(8)).at(-1)!.type, 1, 'structured replies agreed');
  await raw.go('pool/a');
  raw.request(0, 2 * MIB, 4096, { cookie: 9 });
  const header = await raw.read(20);
  assert.is(header.readUInt32BE(0), 0x668e33ef, 'structured reply magic');
  assert.is(header.readUInt16BE(4) & 1, 1, 'DONE');
  assert.is(header.readUInt16BE(6), 0x8001, 'NBD_REPLY_TYPE_ERROR');
  assert.is(Number(header.readBigUInt64BE(8)), 9);
  const payload = await raw.read(header.readUInt32BE(16));
  assert.is(payload.readUInt32BE(0), EIO);
  assert.match(payload.subarray(6, 6 + payload.readUInt16BE(4)).toString(), /IO_ERROR/);
  raw.request(2, 0, 0);
  await raw.closed;
});

test('each failure is logged as a warning with its request', async () => {
  const line = await gateway.waitForLog((l) => l.msg === 'volume operation failed' && l.errno === ENOSPC);
  assert.is(line.level, 40);
  assert.is(line.cmd, 'write');
  assert.is(line.offset, 1 * MIB);
});

test.run();
