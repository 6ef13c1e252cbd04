/**
 * The NBD frontend's writeback exports (the kernel's WriteBackVolume under one export, shared by
 * all its connections).
 *
 * In process, with a raw client and volumes whose writes a test holds: a WRITE is replied once it
 * is in the log while the volume's write is held, a FLUSH and a FUA WRITE only once written back;
 * the listing shows the mode and dirty bytes; removing the export drains and removes the log. An
 * unknown mode is refused, a read-only export is writethrough, an export open in one mode is BUSY
 * for the other, a second cache of one image (another frontend on the same directory) is BUSY; a
 * writethrough export writes back a log an earlier process left; a dynamic export uses nbd.cache
 * and a client arriving while the last one's drain runs waits for it.
 *
 * With real clients against the test gateway in its own process, on a FILE-backed volume that
 * outlives it: qemu-io's FUA write waits for its write-back and its flush for the held writes; a
 * write acknowledged from the log survives a SIGKILL (the next process replays the log, qemu-io
 * reads the pattern back while that write-back is still held, and the orderly stop drains it into
 * the file); fio's crc32c verify over a writeback export with a ring smaller than what it writes.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openWriteBack } from '../../kernel/block/write-back-volume.js';
import type { BlockVolume, BlockVolumeProvider, BlockWriteOptions } from '../../kernel/contracts/block.js';
import type { ExportInfo } from '../../kernel/contracts/frontend.js';
import { ErrorCode, isFastblockError } from '../../kernel/errors.js';
import { NBD_CONFIG_DEFAULTS, type NbdConfig } from '../../plugins/frontend-nbd/config.js';
import { NbdFrontend } from '../../plugins/frontend-nbd/frontend.js';
import { MemoryVolumeProvider } from '../support/memory-volume.js';
import { ROOT, TestGateway, fioJson, runOk, sleep } from './harness.js';
import { RawSocket } from './raw-socket.js';

const test = suite('nbd: write-back cache');
const MiB = 1024 * 1024;
const READ = 0;
const WRITE = 1;
const DISC = 2;
const FLUSH = 3;
const FLAG_FUA = 1;
const log = pino({ level: 'silent' });
let dir: string;

test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'fastblock-nbd-wb-'));
});

test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Memory volumes whose writes wait while the gate is held. */
function gatedMemory(names: Record<string, number>): { memory: MemoryVolumeProvider; provider: BlockVolumeProvider; hold(): void; release(): void } {
  const memory = new MemoryVolumeProvider();
  for (const [name, size] of Object.entries(names)) memory.create(name, size);
  let holding = false;
  let waiting: Array<() => void> = [];
  const gate = (): Promise<void> => (holding ? new Promise<void>((resolve) => waiting.push(resolve)) : Promise.resolve());
  const provider: BlockVolumeProvider = {
    async open(name) {
      const volume = await memory.open(name);
      return Object.assign(Object.create(volume) as BlockVolume, {
        write: (offset: number, data: readonly Uint8Array[], options?: BlockWriteOptions) => gate().then(() => volume.write(offset, data, options)),
        writeZeroes: (offset: number, length: number, options?: BlockWriteOptions) => gate().then(() => volume.writeZeroes(offset, length, options)),
        discard: (offset: number, length: number) => gate().then(() => volume.discard(offset, length)),
      });
    },
    list: () => memory.list(),
  };
  return {
    memory,
    provider,
    hold: () => (holding = true),
    release: () => {
      holding = false;
      const wake = waiting;
      waiting = [];
      for (const go of wake) go();
    },
  };
}

function frontendOn(provider: BlockVolumeProvider, writeBackDir: string, config: Partial<NbdConfig> = {}): NbdFrontend {
  return new NbdFrontend(provider, { ...NBD_CONFIG_DEFAULTS, port: 0, dynamicExports: false, writeBackDir, writeBackMiB: 4, ...config }, log);
}

async function connect(port: number, name: string): Promise<RawSocket> {
  const raw = await RawSocket.open(port);
  await raw.greet();
  await raw.go(name);
  return raw;
}

/** Resolves with the promise's value, or 'pending' if it has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | 'pending'> {
  return Promise.race([promise, sleep(ms).then(() => 'pending' as const)]);
}

function refusedWith(code: ErrorCode, promise: Promise<unknown>, what?: string | RegExp): Promise<void> {
  return promise.then(
    () => assert.unreachable(`accepted; expected ${code}`),
    (err: unknown) => {
      assert.ok(isFastblockError(err, code), String(err));
      if (what) assert.match((err as Error).message, what);
    },
  );
}

const detailsOf = (frontend: NbdFrontend, volume: string): ExportInfo['details'] => frontend.listExports().find((e) => e.volume === volume)?.details;

test('a WRITE is replied from the log while the volume write is held; FLUSH and FUA wait for the write-back; rm drains the log', async () => {
  const wbDir = join(dir, 'inproc-a');
  const g = gatedMemory({ 'pool/a': 4 * MiB });
  const frontend = frontendOn(g.provider, wbDir);
  await frontend.start();
  try {
    const created = await frontend.createExport({ volume: 'pool/a', options: { cache: 'writeback' } });
    assert.equal(created.details, { cache: 'writeback', readOnly: false, dirtyBytes: 0, dirtyRecords: 0, usedBytes: 0, capacityBytes: 4 * MiB, retries: 0, replayed: 0, absorbed: 0, readCacheBytes: 0, readCacheCapacityBytes: 64 * MiB, readCacheHits: 0, readCacheMisses: 0 });
    const logFile = join(wbDir, 'pool%2Fa.wblog');
    assert.ok(existsSync(logFile), 'the log is a file under writeBackDir named after the image (as the vhost plugin names it)');
    assert.is(statSync(wbDir).mode & 0o777, 0o700, 'writeBackDir is created private');

    g.hold();
    const a = await connect(frontend.port, 'pool/a');
    const b = await connect(frontend.port, 'pool/a');
    const data = Buffer.alloc(8192, 0x5a);
    a.request(WRITE, 8192, 8192, { cookie: 1, payload: data });
    assert.equal(await within(a.simpleReply(), 2000), { error: 0, cookie: 1, data: Buffer.alloc(0) }, 'acknowledged while the volume write is held');
    assert.is(detailsOf(frontend, 'pool/a')?.dirtyBytes, 8192);
    assert.is(detailsOf(frontend, 'pool/a')?.dirtyRecords, 1);
    const inner = await g.memory.open('pool/a');
    assert.equal(await inner.read(8192, 8192), new Uint8Array(8192), 'the volume does not have it yet');

    // Another connection reads the acknowledged write (from the log's memory) and its FLUSH covers it (CAN_MULTI_CONN).
    b.request(READ, 8192, 8192, { cookie: 2 });
    const read = await within(b.simpleReply(8192), 2000);
    assert.ok(read !== 'pending' && read.data.equals(data), 'a read on another connection sees the acknowledged write');
    b.request(FLUSH, 0, 0, { cookie: 3 });
    const flushed = b.simpleReply();
    assert.is(await within(flushed, 200), 'pending', 'FLUSH waits while the write-back is held');
    const fua = Buffer.alloc(4096, 0xf1);
    a.request(WRITE, 65536, 4096, { cookie: 4, flags: FLAG_FUA, payload: fua });
    const fuaReply = a.simpleReply();
    assert.is(await within(fuaReply, 200), 'pending', 'a FUA write waits for its own write-back');
    assert.is(detailsOf(frontend, 'pool/a')?.dirtyBytes, 8192 + 4096, 'though it is in the log');

    g.release();
    assert.equal(await flushed, { error: 0, cookie: 3, data: Buffer.alloc(0) });
    assert.equal(await fuaReply, { error: 0, cookie: 4, data: Buffer.alloc(0) });
    assert.equal(Buffer.from(await inner.read(8192, 8192)), data, 'the flush returned once the volume had the write');
    assert.equal(Buffer.from(await inner.read(65536, 4096)), fua);
    assert.is(detailsOf(frontend, 'pool/a')?.dirtyBytes, 0);
    assert.is(frontend.listExports()[0]!.clients, 2);

    // Written back and dropped from the log: the write-back filled the read cache on its way.
    a.request(READ, 8192, 8192, { cookie: 5 });
    assert.ok((await a.simpleReply(8192)).data.equals(data));
    a.request(READ, 8192, 8192, { cookie: 51 });
    assert.ok((await a.simpleReply(8192)).data.equals(data));
    assert.is(detailsOf(frontend, 'pool/a')?.readCacheHits, 2, 'served from the read cache');
    assert.is(detailsOf(frontend, 'pool/a')?.readCacheMisses, 0);
    assert.is(detailsOf(frontend, 'pool/a')?.readCacheBytes, 8192 + 4096, 'the FUA write is cached too');
    // A write over cached blocks drops them: the bytes read next are the new ones, once written back too.
    const newer = Buffer.alloc(4096, 0x3c);
    a.request(WRITE, 8192, 4096, { cookie: 52, flags: FLAG_FUA, payload: newer });
    assert.is((await a.simpleReply()).error, 0);
    a.request(READ, 8192, 8192, { cookie: 53 });
    assert.ok((await a.simpleReply(8192)).data.equals(Buffer.concat([newer, data.subarray(4096)])), 'not the cached bytes from before the write');
    assert.equal(Buffer.from(await inner.read(8192, 4096)), newer);

    // rm with clients: they keep it; the last one's leaving drains (nothing left here) and removes the log.
    g.hold();
    a.request(WRITE, 0, 4096, { cookie: 6, payload: Buffer.alloc(4096, 0x77) });
    assert.is((await a.simpleReply()).error, 0);
    await frontend.removeExport('pool/a');
    assert.ok(existsSync(logFile), 'clients still hold the export');
    for (const raw of [a, b]) raw.request(DISC, 0, 0);
    await Promise.all([a.closed, b.closed]);
    await sleep(100);
    assert.ok(existsSync(logFile), 'the drain waits for the held write');
    g.release();
    for (let i = 0; i < 100 && existsSync(logFile); i++) await sleep(20);
    assert.not.ok(existsSync(logFile), 'the close drained and removed the log');
    assert.not.ok(existsSync(`${logFile}.lock`), 'and its lock');
    assert.equal(Buffer.from(await inner.read(0, 4096)), Buffer.alloc(4096, 0x77), 'the drained write is in the volume');
  } finally {
    g.release();
    await frontend.stop();
  }
});

test('cache modes: unknown refused, read-only is writethrough, another mode of an open export or a second cache of the image is BUSY', async () => {
  const wbDir = join(dir, 'inproc-b');
  const g = gatedMemory({ 'pool/a': MiB, 'pool/b': MiB, 'pool/c': MiB });
  const frontend = frontendOn(g.provider, wbDir, { cache: 'writeback' });
  const other = frontendOn(g.provider, wbDir);
  try {
    await refusedWith(ErrorCode.INVALID_ARGUMENT, frontend.createExport({ volume: 'pool/c', options: { cache: 'writearound' } }), 'cache must be one of writethrough, writeback');
    assert.equal(frontend.listExports(), []);

    const ro = await frontend.createExport({ volume: 'pool/b', options: { readOnly: true, cache: 'writeback' } });
    assert.equal(ro.details, { cache: 'writethrough', readOnly: true }, 'a read-only export never uses the write-back cache');
    assert.not.ok(existsSync(join(wbDir, 'pool%2Fb.wblog')));

    const byDefault = await frontend.createExport({ volume: 'pool/a' });
    assert.is(byDefault.details?.cache, 'writeback', 'nbd.cache is the default of exports');
    await refusedWith(ErrorCode.BUSY, frontend.createExport({ volume: 'pool/a', options: { cache: 'writethrough' } }), 'is open writeback');
    await refusedWith(ErrorCode.BUSY, frontend.createExport({ volume: 'pool/a', options: { readOnly: true } }), 'is open writeback');
    const again = await frontend.createExport({ volume: 'pool/a', options: { cache: 'writeback' } });
    assert.is(again.details?.cache, 'writeback', 'creating it again in its mode is fine');

    // One log per image on the host: another frontend (or process) cannot cache it, nor serve it
    // writethrough past the live cache (it would read stale data).
    await refusedWith(ErrorCode.BUSY, other.createExport({ volume: 'pool/a', options: { cache: 'writeback' } }), 'is already open in this process');
    await refusedWith(ErrorCode.BUSY, other.createExport({ volume: 'pool/a', options: { cache: 'writethrough' } }), 'is already open in this process');
    assert.equal(other.listExports(), []);
    assert.equal(frontend.listExports().map((e) => e.volume).sort(), ['pool/a', 'pool/b']);
  } finally {
    await other.stop();
    await frontend.stop();
  }
});

test('nbd.writeBackHoldMs reaches the export\'s cache: at 0 a write goes back at once, at 10 s it waits past the default hold until a FLUSH', async () => {
  const g = gatedMemory({ 'pool/now': MiB, 'pool/later': MiB });
  const prompt = frontendOn(g.provider, join(dir, 'inproc-hold-0'), { writeBackHoldMs: 0, exports: ['pool/now:writeback'] });
  const holding = frontendOn(g.provider, join(dir, 'inproc-hold-10s'), { writeBackHoldMs: 10_000, exports: ['pool/later:writeback'] });
  await prompt.start();
  await holding.start();
  const clients: RawSocket[] = [];
  try {
    const data = Buffer.alloc(4096, 0x42);
    const written = async (frontend: NbdFrontend, name: string): Promise<RawSocket> => {
      const raw = await connect(frontend.port, name);
      clients.push(raw);
      raw.request(WRITE, 4096, 4096, { cookie: 1, payload: data });
      assert.is((await raw.simpleReply()).error, 0);
      return raw;
    };
    const innerNow = await g.memory.open('pool/now');
    const innerLater = await g.memory.open('pool/later');
    const has = async (volume: BlockVolume): Promise<boolean> => Buffer.from(await volume.read(4096, 4096)).equals(data);

    const start = performance.now();
    await written(prompt, 'pool/now');
    while (!(await has(innerNow)) && performance.now() - start < 2000) await sleep(5);
    const elapsed = performance.now() - start;
    assert.ok(await has(innerNow), 'hold 0: written back without a flush');
    // Well under the default 500 ms hold: the setting, not the default, reached the cache.
    assert.ok(elapsed < 300, `hold 0: in the volume after ${elapsed.toFixed(0)} ms`);
    assert.is(detailsOf(prompt, 'pool/now')?.dirtyBytes, 0);

    const later = await written(holding, 'pool/later');
    await sleep(800);
    assert.not.ok(await has(innerLater), 'hold 10 s: still only in the log past the default hold');
    assert.is(detailsOf(holding, 'pool/later')?.dirtyBytes, 4096);
    later.request(FLUSH, 0, 0, { cookie: 2 });
    assert.equal(await within(later.simpleReply(), 2000), { error: 0, cookie: 2, data: Buffer.alloc(0) }, 'a FLUSH does not wait for the hold');
    assert.ok(await has(innerLater), 'the FLUSH wrote it back');
    assert.is(detailsOf(holding, 'pool/later')?.dirtyBytes, 0);
  } finally {
    for (const raw of clients) raw.request(DISC, 0, 0);
    await Promise.all(clients.map((raw) => raw.closed));
    await holding.stop();
    await prompt.stop();
  }
});

test('a writethrough export writes back the log an earlier (killed) process left before serving', async () => {
  const wbDir = join(dir, 'inproc-c');
  mkdirSync(wbDir, { recursive: true });
  const g = gatedMemory({ 'pool/c': MiB });
  // The earlier process's cache: it acknowledged a write its volume never finished, then died.
  const stuck = await g.memory.open('pool/c');
  const never: BlockVolume = Object.assign(Object.create(stuck) as BlockVolume, { write: () => new Promise<void>(() => {}) });
  const earlier = openWriteBack(never, { path: join(wbDir, 'pool%2Fc.wblog'), capacityBytes: 4 * MiB, log });
  const data = new Uint8Array(4096).fill(0xa5);
  await earlier.write(12288, [data]);
  earlier.abandon();

  const lines: string[] = [];
  const frontend = new NbdFrontend(g.provider, { ...NBD_CONFIG_DEFAULTS, port: 0, dynamicExports: false, writeBackDir: wbDir, writeBackMiB: 4 }, pino({ level: 'info' }, { write: (line: string) => lines.push(line) }));
  try {
    const info = await frontend.createExport({ volume: 'pool/c' });
    assert.equal(info.details, { cache: 'writethrough', readOnly: false });
    assert.match(lines.join(''), 'writing it back before serving writethrough');
    assert.match(lines.join(''), 'write-back log replayed');
    assert.equal(await (await g.memory.open('pool/c')).read(12288, 4096), data, 'the acknowledged write reached the volume before the export served');
    assert.not.ok(existsSync(join(wbDir, 'pool%2Fc.wblog')), 'the log is gone');
  } finally {
    await frontend.stop();
  }
});

test('dynamic exports use nbd.cache; a client arriving while the last one\'s drain runs waits for it', async () => {
  const wbDir = join(dir, 'inproc-d');
  const g = gatedMemory({ 'pool/d': MiB });
  const frontend = frontendOn(g.provider, wbDir, { dynamicExports: true, cache: 'writeback' });
  await frontend.start();
  try {
    g.hold();
    const first = await connect(frontend.port, 'pool/d');
    assert.ok(existsSync(join(wbDir, 'pool%2Fd.wblog')), 'opened writeback');
    first.request(WRITE, 0, 4096, { cookie: 1, payload: Buffer.alloc(4096, 0xd1) });
    assert.is((await first.simpleReply()).error, 0, 'acknowledged from the log');
    first.request(DISC, 0, 0);
    await first.closed;

    // The volume closes as the last client leaves; its log drains, held. A new client's open
    // needs the same log (and lock): it waits instead of failing with BUSY.
    const second = RawSocket.open(frontend.port).then(async (raw) => {
      await raw.greet();
      await raw.go('pool/d');
      return raw;
    });
    assert.is(await within(second, 300), 'pending', 'the open waits for the drain');
    g.release();
    const raw = await second;
    raw.request(READ, 0, 4096, { cookie: 2 });
    assert.ok((await raw.simpleReply(4096)).data.equals(Buffer.alloc(4096, 0xd1)), 'the drained write reads back');
    raw.request(DISC, 0, 0);
    await raw.closed;
  } finally {
    g.release();
    await frontend.stop();
  }
});

// ---- Real clients against the test gateway in its own process, on a file that outlives it ----

/** A client whose stdout is read as it comes (qemu-io prints "wrote ..." before its closing flush). */
function client(args: string[]): { output: () => string; exited: Promise<number | null>; kill: () => void } {
  // stdbuf: qemu-io's stdout is a pipe here, fully buffered otherwise.
  const child = spawn('stdbuf', ['-o0', 'qemu-io', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { output: () => out, exited, kill: () => child.kill('SIGKILL') };
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function imageFile(name: string, bytes: number): string {
  const path = join(dir, name);
  writeFileSync(path, Buffer.alloc(bytes));
  return path;
}

function fileBytes(path: string, offset: number, length: number): Buffer {
  return readFileSync(path).subarray(offset, offset + length);
}

async function lsDetails(gateway: TestGateway, volume: string): Promise<ExportInfo['details']> {
  return ((await gateway.control('ls')) as ExportInfo[]).find((e) => e.volume === volume)?.details;
}

test('qemu-io: a FUA write waits for its write-back; a flush completes only once the held writes are released', async () => {
  const image = imageFile('flush.img', 16 * MiB);
  const gateway = await TestGateway.start(['--file', `pool/f:writeback=${image}`, '--write-back-dir', join(dir, 'wb-flush'), '--write-back-mib', '16', '--hold-writes', '--control']);
  const uri = gateway.uri('pool/f');
  try {
    // -t writeback: qemu-io's default (writethrough) would make every write FUA; here only `write -f` is.
    const fua = client(['-f', 'raw', '-t', 'writeback', '-c', 'write -f -P 0x11 0 64k', uri]);
    await until('the FUA write\'s write-back to be held', async () => (await gateway.control('held')) === 1);
    await sleep(300);
    assert.not.match(fua.output(), 'wrote', 'the FUA write is not acknowledged while its write-back is held');
    assert.is((await lsDetails(gateway, 'pool/f'))?.dirtyBytes, 65536, 'though it is in the log');
    assert.is(await gateway.control('release'), 1);
    assert.is(await fua.exited, 0, fua.output());
    assert.match(fua.output(), 'wrote 65536/65536 bytes at offset 0');
    assert.ok(fileBytes(image, 0, 65536).equals(Buffer.alloc(65536, 0x11)));

    await gateway.control('hold');
    const flush = client(['-f', 'raw', '-t', 'writeback', '-c', 'write -P 0x22 64k 64k', '-c', 'flush', uri]);
    await until('the write to be acknowledged', () => flush.output().includes('wrote 65536/65536 bytes at offset 65536'));
    await sleep(300);
    assert.is(await within(flush.exited, 10), 'pending', 'the flush waits for the held write-back');
    assert.is((await lsDetails(gateway, 'pool/f'))?.dirtyBytes, 65536);
    assert.ok(fileBytes(image, 65536, 65536).equals(Buffer.alloc(65536)), 'the file does not have the write yet');
    assert.is(await gateway.control('release'), 1);
    assert.is(await flush.exited, 0, flush.output());
    assert.ok(fileBytes(image, 65536, 65536).equals(Buffer.alloc(65536, 0x22)), 'the flush returned once the file had the write');
    assert.is((await lsDetails(gateway, 'pool/f'))?.dirtyBytes, 0);
  } finally {
    await gateway.control('release').catch(() => undefined);
    assert.is(await gateway.stop(), 0);
  }
  assert.equal(gateway.errorLines(), []);
  assert.not.ok(existsSync(join(dir, 'wb-flush', 'pool%2Ff.wblog')), 'the orderly stop removed the log');
});

test('SIGKILL with an acknowledged write dirty in the log: the next process replays it, qemu-io reads it back, the orderly stop drains it', async () => {
  const image = imageFile('kill.img', 16 * MiB);
  const wbDir = join(dir, 'wb-kill');
  const logFile = join(wbDir, 'pool%2Fk.wblog');
  const args = ['--file', `pool/k:writeback=${image}`, '--write-back-dir', wbDir, '--write-back-mib', '16', '--hold-writes', '--control'];
  const first = await TestGateway.start(args);
  const writer = client(['-f', 'raw', '-t', 'writeback', '-c', 'write -P 0xab 0 1M', first.uri('pool/k')]);
  try {
    await until('the write to be acknowledged', () => writer.output().includes('wrote 1048576/1048576 bytes at offset 0'));
    const dirty = await lsDetails(first, 'pool/k');
    assert.is(dirty?.dirtyBytes, MiB, 'acknowledged while dirty in the log');
    assert.is(await first.control('held'), 1, 'its write-back is held');
    assert.ok(fileBytes(image, 0, MiB).equals(Buffer.alloc(MiB)), 'the file does not have it');
  } finally {
    await first.kill();
  }
  // qemu-io's closing flush dies with the gateway (qemu-io ignores that failure: it exits 0).
  await writer.exited;
  assert.ok(existsSync(logFile) && existsSync(`${logFile}.lock`), 'the killed process left its log and a stale lock');
  assert.ok(fileBytes(image, 0, MiB).equals(Buffer.alloc(MiB)), 'nothing reached the file');

  // Same file, same writeBackDir; its write-back is held again, so the read is served by the replayed log.
  const second = await TestGateway.start(args);
  try {
    await second.waitForLog((l) => l.msg.startsWith('write-back log replayed'));
    const replayed = await lsDetails(second, 'pool/k');
    assert.is(replayed?.replayed, 1);
    assert.is(replayed?.dirtyBytes, MiB);
    const reader = client(['-f', 'raw', '-t', 'writeback', '-c', 'read -P 0xab 0 1M', second.uri('pool/k')]);
    await until('the read', () => reader.output().includes('read 1048576/1048576 bytes at offset 0'));
    assert.not.match(reader.output(), 'Pattern verification failed');
    await second.control('release');
    assert.is(await reader.exited, 0, reader.output());
    await runOk('qemu-io', ['-f', 'raw', '-c', 'read -P 0xab 0 1M', '-c', 'read -P 0 1M 1M', second.uri('pool/k')]);
  } finally {
    await second.control('release').catch(() => undefined);
    assert.is(await second.stop(), 0, 'the orderly stop drains and exits 0');
  }
  assert.ok(fileBytes(image, 0, MiB).equals(Buffer.alloc(MiB, 0xab)), 'the file has the pattern');
  assert.not.ok(existsSync(logFile), 'the log is gone');
  assert.not.ok(existsSync(`${logFile}.lock`), 'and its lock');
  assert.equal(second.errorLines(), []);
});

test('fio nbd engine: randwrite QD16 with crc32c verify over a writeback export whose ring is smaller than what it writes', async () => {
  const wbDir = join(dir, 'wb-fio');
  // 4 MiB ring, 8 MiB written: appends wait for ring space; random completion delays reorder the write-back.
  const gateway = await TestGateway.start(['--volume', 'pool/fio:16M:writeback', '--write-back-dir', wbDir, '--write-back-mib', '4', '--jitter-ms', '2']);
  const job = (extra: string[]): string[] => [
    '--name=wb',
    '--ioengine=nbd',
    `--uri=${gateway.uri('pool/fio')}`,
    '--rw=randwrite',
    '--bs=4k',
    '--iodepth=16',
    '--size=8M',
    '--verify=crc32c',
    '--verify_fatal=1',
    '--output-format=json',
    ...extra,
  ];
  try {
    const write = await runOk('fio', job(['--do_verify=1', '--verify_backlog=128']), { timeoutMs: 120_000, cwd: dir });
    const [written] = fioJson(write.stdout).jobs;
    assert.is(written!.error, 0);
    assert.is(written!.write.io_bytes, 8 * MiB);
    assert.ok(written!.read.io_bytes > 0, 'the backlog verified as it wrote');
    const verify = await runOk('fio', job(['--verify_only']), { timeoutMs: 120_000, cwd: dir });
    const [pass] = fioJson(verify.stdout).jobs;
    assert.is(pass!.error, 0);
    assert.is(pass!.read.io_bytes, 8 * MiB, 'every written block was read back and verified');
  } finally {
    assert.is(await gateway.stop(), 0);
  }
  assert.equal(gateway.errorLines(), []);
  assert.not.ok(existsSync(join(wbDir, 'pool%2Ffio.wblog')));
});

test.run();
