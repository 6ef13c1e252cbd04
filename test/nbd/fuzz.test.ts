/**
 * Bad input on the NBD port while a real client works: random byte streams, handshakes cut short
 * or left hanging, broken option and request framing. Each bad connection must be closed with a
 * logged reason; requests that are well framed but invalid get an error reply and their connection
 * goes on; a fio verify job on another connection runs through all of it without an error.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { TestGateway, fioJson, run, sleep, type LogLine, type RunResult } from './harness.js';
import { RawSocket, u32 } from './raw-socket.js';

const test = suite('nbd: bad input');
const MIB = 1024 * 1024;
const HANDSHAKE_TIMEOUT_MS = 1000;
let gateway: TestGateway;
let dir: string;
let fio: Promise<RunResult>;
let fioStarted = 0;

const EPERM = 1;
const EINVAL = 22;
const ENOSPC = 28;
const ENOTSUP = 95;

/** The log line that closed connection number `conn`. */
function closedLine(conn: number): (line: LogLine) => boolean {
  return (line) => line.conn === conn && line.msg === 'connection closed';
}

async function expectClosed(raw: RawSocket, reason: RegExp): Promise<LogLine> {
  await Promise.race([raw.closed, sleep(HANDSHAKE_TIMEOUT_MS + 10_000)]);
  assert.ok(raw.isClosed, 'the server closed the connection');
  const line = await gateway.waitForLog((l) => l.msg === 'connection closed' && typeof l.reason === 'string' && reason.test(l.reason) && !seen.has(l));
  seen.add(line);
  assert.is(line.level, 40, 'logged as a warning');
  return line;
}
const seen = new Set<LogLine>();

async function transmitting(exportName = 'pool/scratch'): Promise<RawSocket> {
  const raw = await RawSocket.open(gateway.port);
  await raw.greet();
  await raw.go(exportName);
  return raw;
}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fastblock-nbd-fuzz-'));
  gateway = await TestGateway.start([
    '--volume', 'pool/fio:64M',
    '--volume', 'pool/scratch:4M',
    '--volume', 'pool/ro:1M:ro',
    '--handshake-timeout', String(HANDSHAKE_TIMEOUT_MS),
  ]);
  fioStarted = Date.now();
  fio = run('fio', [
    '--name=bystander', '--ioengine=nbd', `--uri=${gateway.uri('pool/fio')}`,
    '--rw=randwrite', '--bs=4k', '--iodepth=16', '--size=64M', '--time_based', '--runtime=4',
    '--verify=crc32c', '--verify_backlog=64', '--verify_fatal=1', '--do_verify=1', '--output-format=json',
  ], { timeoutMs: 60_000, cwd: dir });
});

test.after(async () => {
  try {
    assert.is(await gateway.stop(), 0, 'gateway stops cleanly');
    assert.equal(gateway.errorLines(), [], 'nothing logged at error level');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('random byte streams: every connection closed with a reason', async () => {
  const sockets = await Promise.all(Array.from({ length: 16 }, () => RawSocket.open(gateway.port)));
  for (const raw of sockets) raw.write(randomBytes(1 + Math.floor(Math.random() * 8192)));
  await Promise.race([Promise.all(sockets.map((s) => s.closed)), sleep(HANDSHAKE_TIMEOUT_MS + 10_000)]);
  for (const raw of sockets) assert.ok(raw.isClosed, 'closed by the server');
  // The gateway's log lines arrive through a pipe, possibly after the sockets closed.
  const warnings = (): LogLine[] => gateway.logs.filter((l) => l.msg === 'connection closed' && l.level === 40);
  for (let i = 0; i < 250 && warnings().length < 16; i++) await sleep(20);
  assert.ok(warnings().length >= 16, `16 warnings with a reason, got ${warnings().length}`);
  assert.ok(warnings().every((l) => typeof l.reason === 'string' && l.reason.length > 0));
});

test('a handshake cut short (client closes mid-message) is logged', async () => {
  const raw = await RawSocket.open(gateway.port);
  await raw.read(18);
  raw.write(Buffer.from([0, 0]));
  raw.end();
  await expectClosed(raw, /closed mid-message during handshake/);
});

test('a port probe (connect, send nothing, close) is logged as such, not as an attack', async () => {
  const probe = await RawSocket.open(gateway.port);
  probe.end();
  await probe.closed;
  const line = await gateway.waitForLog((l) => l.reason === 'connection closed before sending anything');
  assert.is(line.level, 30, 'info');
});

test('a handshake left hanging is closed at the deadline', async () => {
  const silent = await RawSocket.open(gateway.port);
  const partial = await RawSocket.open(gateway.port);
  await partial.greet();
  partial.write(Buffer.from('IHAVEOPT'));
  await expectClosed(silent, /handshake not finished within/);
  await expectClosed(partial, /handshake not finished within/);
});

test('unknown client flags and bad option magic close the connection', async () => {
  const flags = await RawSocket.open(gateway.port);
  await flags.read(18);
  flags.write(u32(0x80));
  await expectClosed(flags, /unknown client flags/);

  const magic = await RawSocket.open(gateway.port);
  await magic.greet();
  magic.write(Buffer.concat([Buffer.from('IHAVEOPX'), u32(7), u32(0)]));
  await expectClosed(magic, /bad option magic/);

  const huge = await RawSocket.open(gateway.port);
  await huge.greet();
  huge.write(Buffer.concat([Buffer.from('IHAVEOPT'), u32(7), u32(0x7fffffff)]));
  await expectClosed(huge, /option data too long/);
});

test('bad options get error replies and negotiation goes on', async () => {
  const raw = await RawSocket.open(gateway.port);
  await raw.greet();
  const unknown = await raw.option(99);
  assert.is(unknown.at(-1)!.type, 0x80000001, 'unknown option: ERR_UNSUP');
  const tls = await raw.option(5);
  assert.is(tls.at(-1)!.type, 0x80000001, 'STARTTLS: ERR_UNSUP (no TLS)');
  const list = await raw.option(3, Buffer.from('x'));
  assert.is(list.at(-1)!.type, 0x80000003, 'LIST with data: ERR_INVALID');
  const info = await raw.option(6, Buffer.from([0, 0, 0, 50, 1]));
  assert.is(info.at(-1)!.type, 0x80000003, 'truncated INFO: ERR_INVALID');
  const meta = await raw.option(10, Buffer.concat([u32(12), Buffer.from('pool/scratch'), u32(0)]));
  assert.is(meta.at(-1)!.type, 0x80000003, 'SET_META_CONTEXT before structured replies: ERR_INVALID');
  const missing = Buffer.from('pool/missing');
  const go = await raw.option(7, Buffer.concat([u32(missing.length), missing, Buffer.alloc(2)]));
  assert.is(go.at(-1)!.type, 0x80000006, 'GO to an unknown export: ERR_UNKNOWN');
  assert.match(go.at(-1)!.data.toString(), /pool\/missing/);
  assert.is(await raw.go('pool/scratch'), 4 * MIB, 'then GO to a real export works');
  raw.request(2, 0, 0);
  await raw.closed;

  const aborting = await RawSocket.open(gateway.port);
  await aborting.greet();
  assert.is((await aborting.option(2)).at(-1)!.type, 1, 'ABORT is acknowledged');
  await aborting.closed;
});

test('NBD_OPT_EXPORT_NAME: size, flags and the 124 zero bytes; an unknown name hangs up with a reason', async () => {
  const raw = await RawSocket.open(gateway.port);
  await raw.read(18);
  raw.write(u32(1)); // fixed newstyle, but zeroes wanted
  const name = Buffer.from('pool/scratch');
  raw.write(Buffer.concat([Buffer.from('IHAVEOPT'), u32(1), u32(name.length), name]));
  const reply = await raw.read(8 + 2 + 124);
  assert.is(Number(reply.readBigUInt64BE(0)), 4 * MIB);
  assert.ok((reply.readUInt16BE(8) & 1) === 1, 'HAS_FLAGS');
  assert.ok(reply.subarray(10).equals(Buffer.alloc(124)), 'zero padding');
  raw.request(0, 0, 512, { cookie: 7 });
  assert.is((await raw.simpleReply(512)).cookie, 7, 'in transmission');
  raw.request(2, 0, 0);
  await raw.closed;

  const unknown = await RawSocket.open(gateway.port);
  await unknown.greet();
  const missing = Buffer.from('pool/missing');
  unknown.write(Buffer.concat([Buffer.from('IHAVEOPT'), u32(1), u32(missing.length), missing]));
  await expectClosed(unknown, /EXPORT_NAME for an export that cannot be opened/);
});

test('well-framed invalid requests get errno replies; the connection goes on', async () => {
  const raw = await transmitting();
  const size = 4 * MIB;
  raw.request(0, size - 4096, 8192, { cookie: 11 });
  assert.equal(await raw.simpleReply(), { error: EINVAL, cookie: 11, data: Buffer.alloc(0) }, 'read past the end');
  raw.request(1, size, 4096, { cookie: 12, payload: Buffer.alloc(4096, 1) });
  assert.is((await raw.simpleReply()).error, ENOSPC, 'write past the end');
  raw.request(99, 0, 4096, { cookie: 13 });
  assert.is((await raw.simpleReply()).error, EINVAL, 'unknown command');
  raw.request(0, 0, 4096, { cookie: 14, flags: 1 << 7 });
  assert.is((await raw.simpleReply()).error, EINVAL, 'unknown flag');
  raw.request(0, 0, 4096, { cookie: 15, flags: 1 << 2 });
  assert.is((await raw.simpleReply()).error, EINVAL, 'DF without structured replies');
  raw.request(3, 4096, 0, { cookie: 16 });
  assert.is((await raw.simpleReply()).error, EINVAL, 'flush with an offset');
  raw.request(0, 0, 64 * MIB, { cookie: 17 });
  assert.is((await raw.simpleReply()).error, EINVAL, 'read larger than the maximum');
  raw.request(6, 0, 4096, { cookie: 20, flags: (1 << 4) | (1 << 1) });
  assert.is((await raw.simpleReply()).error, ENOTSUP, 'FAST_ZERO with NO_HOLE: not fast, refused at once');
  raw.request(6, 0, 4096, { cookie: 21, flags: 1 << 4 });
  assert.is((await raw.simpleReply()).error, 0, 'FAST_ZERO alone: done');
  raw.request(1, 0, 4096, { cookie: 18, payload: Buffer.alloc(4096, 0x3c) });
  assert.is((await raw.simpleReply()).error, 0, 'then a good write');
  raw.request(0, 0, 4096, { cookie: 19 });
  const read = await raw.simpleReply(4096);
  assert.is(read.error, 0);
  assert.ok(read.data.equals(Buffer.alloc(4096, 0x3c)), 'and a good read of it');
  raw.request(2, 0, 0);
  await raw.closed;
});

test('writes to a read-only export get EPERM', async () => {
  const raw = await transmitting('pool/ro');
  raw.request(1, 0, 512, { cookie: 21, payload: Buffer.alloc(512) });
  assert.is((await raw.simpleReply()).error, EPERM);
  raw.request(4, 0, 4096, { cookie: 22 });
  assert.is((await raw.simpleReply()).error, EPERM, 'trim too');
  raw.request(2, 0, 0);
  await raw.closed;
});

test('broken request framing closes only that connection', async () => {
  const magic = await transmitting();
  magic.request(0, 0, 4096, { magic: 0x12345678 });
  await expectClosed(magic, /bad request magic/);

  const oversize = await transmitting();
  oversize.request(1, 0, 0x40000000);
  await expectClosed(oversize, /write payload larger than the advertised maximum/);

  const truncated = await transmitting();
  truncated.write(Buffer.alloc(10, 0x25));
  truncated.end();
  await expectClosed(truncated, /closed mid-message during transmission/);

  const garbage = await transmitting();
  garbage.write(randomBytes(4096));
  await expectClosed(garbage, /bad request magic|write payload/);
});

test('the fio verify job beside all of this finished without an error', async () => {
  const result = await fio;
  assert.is(result.code, 0, result.stderr);
  const [job] = fioJson(result.stdout).jobs;
  assert.is(job!.error, 0);
  assert.ok(job!.write.io_bytes > 0 && job!.read.io_bytes > 0, 'it wrote and verified');
  assert.ok(Date.now() - fioStarted >= 4000, 'it ran through the attacks');
  const fioConn = gateway.logs.find((l) => l.msg === 'client connected' && l.export === 'pool/fio');
  assert.ok(fioConn, 'fio connected');
  const closed = gateway.logs.find(closedLine(fioConn!.conn!));
  assert.ok(closed === undefined || /NBD_CMD_DISC/.test(closed.reason ?? ''), 'fio left by its own disconnect');
});

test.run();
