/**
 * The Frontend contract of NbdFrontend, in process: createExport gives a location a real client
 * can open, listExports counts clients, removeExport withdraws it, the default export serves the
 * empty name, 200 clients at once each get their own data back, and stop() answers what is in
 * flight before closing connections.
 */
import pino from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { BlockVolume, BlockVolumeProvider } from '../../kernel/contracts/block.js';
import { ErrorCode, FastblockError, isFastblockError } from '../../kernel/errors.js';
import { NBD_CONFIG_DEFAULTS } from '../../plugins/frontend-nbd/config.js';
import { NbdFrontend } from '../../plugins/frontend-nbd/frontend.js';
import { MemoryVolumeProvider } from '../support/memory-volume.js';
import { run, runOk, sleep } from './harness.js';
import { RawSocket } from './raw-socket.js';

const test = suite('nbd: Frontend contract');
const provider = new MemoryVolumeProvider();
provider.create('pool/x', 8 * 1024 * 1024);
// 200 clients x 4 blocks of 8 KiB fit in pool/x.
provider.create('pool/y', 4 * 1024 * 1024);
const frontend = new NbdFrontend(provider, { ...NBD_CONFIG_DEFAULTS, port: 0, dynamicExports: false, defaultExport: 'pool/x' }, pino({ level: 'silent' }));

test.before(async () => {
  await frontend.start();
});

test('createExport returns a location a real client opens', async () => {
  const info = await frontend.createExport({ volume: 'pool/x' });
  assert.is(info.protocol, 'nbd');
  assert.is(info.location, `nbd://127.0.0.1:${frontend.port}/pool/x`);
  const { stdout } = await runOk('nbdinfo', ['--size', info.location]);
  assert.is(Number(stdout.trim()), 8 * 1024 * 1024);
});

test('an export of a volume that does not exist is refused', async () => {
  try {
    await frontend.createExport({ volume: 'pool/none' });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.ok(isFastblockError(err, ErrorCode.NOT_FOUND), String(err));
  }
});

test('the empty export name reaches the default export', async () => {
  const { stdout } = await runOk('nbdinfo', ['--size', `nbd://127.0.0.1:${frontend.port}`]);
  assert.is(Number(stdout.trim()), 8 * 1024 * 1024);
});

test('listExports counts clients; removeExport withdraws the export from new clients only', async () => {
  await frontend.createExport({ volume: 'pool/y' });
  const raw = await RawSocket.open(frontend.port);
  await raw.greet();
  await raw.go('pool/y');
  assert.is(frontend.listExports().find((e) => e.volume === 'pool/y')!.clients, 1);
  await frontend.removeExport('pool/y');
  assert.not.ok(frontend.listExports().some((e) => e.volume === 'pool/y'));
  const gone = await run('nbdinfo', [`nbd://127.0.0.1:${frontend.port}/pool/y`]);
  assert.is.not(gone.code, 0, 'no new client reaches a removed export');
  raw.request(1, 0, 4096, { cookie: 5, payload: Buffer.alloc(4096, 9) });
  assert.is((await raw.simpleReply()).error, 0, 'the client already connected keeps it');
  raw.request(2, 0, 0);
  await raw.closed;
});

test('200 clients at once, each writing and reading back its own blocks', async () => {
  const clients = await Promise.all(
    Array.from({ length: 200 }, async (_, i) => {
      const raw = await RawSocket.open(frontend.port);
      await raw.greet();
      await raw.go('pool/x');
      return raw;
    }),
  );
  await Promise.all(
    clients.map(async (raw, i) => {
      for (let k = 0; k < 4; k++) raw.request(1, (i * 4 + k) * 8192, 8192, { cookie: k, payload: Buffer.alloc(8192, (i + k) & 0xff) });
      for (let k = 0; k < 4; k++) assert.is((await raw.simpleReply()).error, 0);
      for (let k = 0; k < 4; k++) raw.request(0, (i * 4 + k) * 8192, 8192, { cookie: 100 + k });
      for (let k = 0; k < 4; k++) {
        const reply = await raw.simpleReply(8192);
        assert.ok(reply.data.equals(Buffer.alloc(8192, (i + reply.cookie - 100) & 0xff)), `client ${i} block ${reply.cookie - 100}`);
      }
      raw.request(2, 0, 0);
      await raw.closed;
    }),
  );
});

test('CAN_MULTI_CONN holds: a FLUSH on one connection makes writes acknowledged on another durable', async () => {
  // A provider whose every handle caches writes until its own flush(): if connections had handles
  // of their own, B's flush would leave A's write volatile.
  const handles: Array<{ dirty: Set<number> }> = [];
  const cached: BlockVolumeProvider = {
    async open(name) {
      const inner = await provider.open(name);
      const handle = { dirty: new Set<number>() };
      handles.push(handle);
      return Object.assign(Object.create(inner) as BlockVolume, {
        write: async (offset: number, data: readonly Uint8Array[]) => {
          await inner.write(offset, data);
          handle.dirty.add(offset);
        },
        flush: async () => handle.dirty.clear(),
      });
    },
    list: () => provider.list(),
  };
  const multi = new NbdFrontend(cached, { ...NBD_CONFIG_DEFAULTS, port: 0 }, pino({ level: 'silent' }));
  await multi.start();
  try {
    const a = await RawSocket.open(multi.port);
    const b = await RawSocket.open(multi.port);
    for (const raw of [a, b]) {
      await raw.greet();
      await raw.go('pool/x');
    }
    a.request(1, 0, 4096, { cookie: 1, payload: Buffer.alloc(4096, 7) });
    assert.is((await a.simpleReply()).error, 0);
    assert.ok(handles.some((h) => h.dirty.size > 0), 'the write is volatile until a flush');
    b.request(3, 0, 0, { cookie: 2 });
    assert.is((await b.simpleReply()).error, 0);
    assert.ok(handles.every((h) => h.dirty.size === 0), "B's flush covered A's write");
    for (const raw of [a, b]) raw.request(2, 0, 0);
    await Promise.all([a.closed, b.closed]);
  } finally {
    await multi.stop();
  }
});

test('replies leave as requests finish, not in the order they came', async () => {
  const slowFirstBlock: BlockVolumeProvider = {
    async open(name) {
      const inner = await provider.open(name);
      return Object.assign(Object.create(inner) as BlockVolume, {
        write: async (offset: number, data: readonly Uint8Array[]) => {
          if (offset === 0) await sleep(100);
          await inner.write(offset, data);
        },
      });
    },
    list: () => provider.list(),
  };
  const ordered = new NbdFrontend(slowFirstBlock, { ...NBD_CONFIG_DEFAULTS, port: 0 }, pino({ level: 'silent' }));
  await ordered.start();
  try {
    const raw = await RawSocket.open(ordered.port);
    await raw.greet();
    await raw.go('pool/x');
    raw.request(1, 0, 4096, { cookie: 1, payload: Buffer.alloc(4096, 1) });
    raw.request(1, 4096, 4096, { cookie: 2, payload: Buffer.alloc(4096, 2) });
    raw.request(3, 0, 0, { cookie: 3 });
    const order = [];
    for (let i = 0; i < 3; i++) order.push((await raw.simpleReply()).cookie);
    assert.is(order[2], 1, `the slow write is answered last (order ${order.join(',')})`);
    raw.request(2, 0, 0);
    await raw.closed;
  } finally {
    await ordered.stop();
  }
});

test('a provider that cannot list fails NBD_OPT_LIST only; the connection goes on', async () => {
  const unlisted: BlockVolumeProvider = {
    open: (name) => provider.open(name),
    list: async () => {
      throw new FastblockError(ErrorCode.CLOSED, 'not connected to the cluster');
    },
  };
  const front = new NbdFrontend(unlisted, { ...NBD_CONFIG_DEFAULTS, port: 0 }, pino({ level: 'silent' }));
  await front.start();
  try {
    const raw = await RawSocket.open(front.port);
    await raw.greet();
    const list = await raw.option(3);
    assert.is(list.at(-1)!.type, 0x80000007, 'ERR_SHUTDOWN');
    assert.match(list.at(-1)!.data.toString(), /not connected/);
    assert.is(await raw.go('pool/x'), 8 * 1024 * 1024, 'GO still works');
    raw.request(2, 0, 0);
    await raw.closed;
  } finally {
    await front.stop();
  }
});

test('the server-wide byte budget stops every connection from reading more requests', async () => {
  let arrived = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const gated: BlockVolumeProvider = {
    async open(name) {
      const inner = await provider.open(name);
      return Object.assign(Object.create(inner) as BlockVolume, {
        write: async (offset: number, data: readonly Uint8Array[]) => {
          arrived++;
          await gate;
          await inner.write(offset, data);
        },
      });
    },
    list: () => provider.list(),
  };
  const KIB64 = 64 * 1024;
  const tight = new NbdFrontend(gated, { ...NBD_CONFIG_DEFAULTS, port: 0, maxPayload: KIB64, maxInFlightBytes: KIB64 }, pino({ level: 'silent' }));
  await tight.start();
  try {
    const clients = [await RawSocket.open(tight.port), await RawSocket.open(tight.port)];
    for (const [c, raw] of clients.entries()) {
      await raw.greet();
      await raw.go('pool/x');
      for (let i = 0; i < 3; i++) raw.request(1, (c * 3 + i) * KIB64, KIB64, { cookie: i, payload: Buffer.alloc(KIB64, c) });
    }
    await sleep(200);
    // Each connection starts at most the request that spent the budget, then waits.
    assert.ok(arrived <= 2, `${arrived} writes reached the volume while the budget was spent`);
    release();
    for (const raw of clients) {
      for (let i = 0; i < 3; i++) assert.is((await raw.simpleReply()).error, 0);
      raw.request(2, 0, 0);
    }
    await Promise.all(clients.map((c) => c.closed));
    assert.is(arrived, 6);
  } finally {
    await tight.stop();
  }
});

test('past maxConnections a new connection is closed at once; the others go on', async () => {
  const small = new NbdFrontend(provider, { ...NBD_CONFIG_DEFAULTS, port: 0, maxConnections: 2 }, pino({ level: 'silent' }));
  await small.start();
  try {
    const [a, b] = await Promise.all([RawSocket.open(small.port), RawSocket.open(small.port)]);
    for (const raw of [a!, b!]) await raw.greet();
    const c = await RawSocket.open(small.port);
    await c.closed;
    await a!.go('pool/x');
    a!.request(0, 0, 4096, { cookie: 1 });
    assert.is((await a!.simpleReply(4096)).error, 0);
    for (const raw of [a!, b!]) raw.destroy();
  } finally {
    await small.stop();
  }
});

test('stop() answers requests in flight, then closes the connection', async () => {
  // Writes are held in the volume until released, so they are certainly in flight when stop() starts.
  let arrived = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const gated: BlockVolumeProvider = {
    async open(name) {
      const inner = await provider.open(name);
      return Object.assign(Object.create(inner) as BlockVolume, {
        write: async (offset: number, data: readonly Uint8Array[]) => {
          arrived++;
          await gate;
          await inner.write(offset, data);
        },
      });
    },
    list: () => provider.list(),
  };
  const stopping = new NbdFrontend(gated, { ...NBD_CONFIG_DEFAULTS, port: 0 }, pino({ level: 'silent' }));
  await stopping.start();
  const raw = await RawSocket.open(stopping.port);
  await raw.greet();
  await raw.go('pool/x');
  for (let i = 0; i < 8; i++) raw.request(1, i * 4096, 4096, { cookie: 100 + i, payload: Buffer.alloc(4096, i) });
  while (arrived < 8) await sleep(5);
  const stopped = stopping.stop();
  release();
  const cookies = [];
  for (let i = 0; i < 8; i++) {
    const reply = await raw.simpleReply();
    assert.is(reply.error, 0);
    cookies.push(reply.cookie);
  }
  assert.equal(cookies.sort(), [100, 101, 102, 103, 104, 105, 106, 107]);
  await raw.closed;
  await stopped;
});

test.after(async () => {
  await frontend.stop();
});

test.run();
