/**
 * Who may reuse received bytes, end to end over TCP: only what a consumer said it was done with
 * (a handler that borrows its requests, a reply used through requestBorrowed) goes back to the
 * receive slabs, and never while a view of it can still be used.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import type { InboundMessage } from '../../kernel/contracts/transport.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { silentLogger } from '../../kernel/logger.js';
import { FrameKind, encodeFrameHead } from '../../kernel/rpc/frame.js';
import { FrameDecoder } from '../../kernel/rpc/frame-decoder.js';
import { RpcServer } from '../../kernel/rpc/rpc-server.js';
import { HelloReplyCodec } from '../../kernel/rpc/wire.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { captureLog, helloFrame, rawSocket, sleep, until } from './support.js';

const BORROWING_ECHO = 0x1001;
const KEEPING_ECHO = 0x1002;

/** `count` requests of random payloads, `depth` at a time, through `send`; resolves when all are answered. */
async function traffic(count: number, depth: number, send: (payload: Buffer, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await send(randomBytes(20_000 + ((i * 7919) % 110_000)), i);
    }
  };
  await Promise.all(Array.from({ length: depth }, worker));
}

test('a borrowing handler and borrowed replies: bytes intact while in use, slabs reused on both sides', async () => {
  const rpc = new RpcServer();
  // Holds the request's payload across a delay while other requests keep arriving, then echoes it.
  rpc.handleRaw(
    BORROWING_ECHO,
    'test/BorrowingEcho',
    async (_connection, message) => {
      const before = Buffer.from(message.payload);
      await sleep(message.payload.length % 7);
      assert.ok(Buffer.from(message.payload).equals(before), 'a borrowed request changed while its handler ran');
      return { header: message.header, payload: [message.payload] };
    },
    { borrowsPayload: true },
  );
  const server = new TcpTransport({}, silentLogger());
  const client = new TcpTransport({}, silentLogger());
  try {
    const listener = await server.listen({ host: '127.0.0.1', port: 0 }, rpc);
    const connection = client.connect({ address: listener.address, shard: 0 });
    await traffic(600, 48, async (payload) => {
      const same = await connection.requestBorrowed!(BORROWING_ECHO, Buffer.from('h'), [payload], (reply) => Buffer.from(reply.payload).equals(payload));
      assert.ok(same, 'the echoed payload differs from what was sent');
    });
    assert.ok(server.stats().slabsReused > 0, 'the server reused receive slabs');
    assert.ok(client.stats().slabsReused > 0, 'the client reused receive slabs');
  } finally {
    await client.close();
    await server.close();
  }
});

test('one-way messages: a borrowing handler sees them intact and their slabs are reused; a keeping one keeps valid views', async () => {
  const BORROWED_MESSAGE = 0x1003;
  const KEPT_MESSAGE = 0x1004;
  const kept: { view: Uint8Array; copy: Buffer }[] = [];
  let borrowed = 0;
  const handler = {
    onRequest: () => ({ header: new Uint8Array(0) }),
    onMessage: (_connection: unknown, message: InboundMessage) => {
      const expected = message.payload[0]!;
      assert.ok(message.payload.every((b) => b === expected), 'a message changed under its handler');
      if (message.method === KEPT_MESSAGE) kept.push({ view: message.payload, copy: Buffer.from(message.payload) });
      else borrowed++;
    },
    borrowsMessage: (method: number) => method === BORROWED_MESSAGE,
  };
  const server = new TcpTransport({}, silentLogger());
  const client = new TcpTransport({}, silentLogger());
  try {
    const listener = await server.listen({ host: '127.0.0.1', port: 0 }, handler);
    const connection = client.connect({ address: listener.address, shard: 0 });
    await until(() => connection.state === 'connected');
    for (let i = 0; i < 40; i++) connection.send(KEPT_MESSAGE, Buffer.from('k'), [Buffer.alloc(4096, i)]);
    for (let round = 0; round < 60; round++) {
      for (let i = 0; i < 40; i++) connection.send(BORROWED_MESSAGE, Buffer.from('b'), [Buffer.alloc(16_384, (round + i) & 0xff)]);
      await sleep(1);
    }
    await until(() => borrowed === 2400 && kept.length === 40);
    assert.ok(server.stats().slabsReused > 0, 'the server reused the slabs of borrowed messages');
    for (const { view, copy } of kept) assert.ok(Buffer.from(view).equals(copy), 'a kept message changed after much more traffic');
  } finally {
    await client.close();
    await server.close();
  }
});

test('replies queued behind a peer that reads slowly still carry their borrowed bytes', async () => {
  const rpc = new RpcServer();
  rpc.handleRaw(BORROWING_ECHO, 'test/BorrowingEcho', (_connection, message) => ({ header: message.header, payload: [message.payload] }), { borrowsPayload: true });
  const server = new TcpTransport({}, silentLogger());
  try {
    const listener = await server.listen({ host: '127.0.0.1', port: 0 }, rpc);
    // A raw client that sends everything and reads nothing for a while: the replies wait in the
    // server's socket queue, views of requests whose slabs must not be read into meanwhile.
    const socket = await rawSocket(listener.address.port);
    socket.pause();
    const payloads = Array.from({ length: 400 }, (_, i) => randomBytes(60_000 + i * 100));
    socket.write(helloFrame());
    payloads.forEach((payload, i) => socket.write(Buffer.concat([encodeFrameHead(FrameKind.REQUEST, BORROWING_ECHO, i + 1, new Uint8Array(0), [payload], true), payload])));
    await sleep(300);
    const replies = new Map<number, Buffer>();
    const decoder = new FrameDecoder();
    let corrupt: unknown;
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk, (frame) => void (frame.kind === FrameKind.REPLY && replies.set(frame.requestId, Buffer.from(frame.payload))));
      } catch (err) {
        // Bytes of a queued reply were overwritten after its frame checksum was computed.
        corrupt ??= err;
        socket.destroy();
      }
    });
    socket.resume();
    await until(() => replies.size === payloads.length || corrupt !== undefined, 10_000, 'every reply');
    assert.is(corrupt, undefined, `a reply arrived corrupted: ${String(corrupt)}`);
    payloads.forEach((payload, i) => assert.ok(replies.get(i + 1)!.equals(payload), `reply ${i + 1}`));
    assert.ok(server.stats().slabsReused > 0, 'the server reused receive slabs');
    socket.destroy();
  } finally {
    await server.close();
  }
});

test('by default received bytes are never reused: kept requests and kept replies stay valid after much more traffic', async () => {
  const rpc = new RpcServer();
  const keptRequests: { view: Uint8Array; copy: Buffer }[] = [];
  rpc.handleRaw(KEEPING_ECHO, 'test/KeepingEcho', (_connection, message) => {
    if (keptRequests.length < 20) keptRequests.push({ view: message.payload, copy: Buffer.from(message.payload) });
    return { header: message.header, payload: [message.payload] };
  });
  const server = new TcpTransport({}, silentLogger());
  const client = new TcpTransport({}, silentLogger());
  try {
    const listener = await server.listen({ host: '127.0.0.1', port: 0 }, rpc);
    const connection = client.connect({ address: listener.address, shard: 0 });
    const keptReplies: { reply: InboundMessage; sent: Buffer }[] = [];
    await traffic(400, 48, async (payload, i) => {
      const reply = await connection.request(KEEPING_ECHO, new Uint8Array(0), [payload]);
      if (i < 20) keptReplies.push({ reply, sent: payload });
    });
    keptRequests.forEach(({ view, copy }, i) => assert.ok(Buffer.from(view).equals(copy), `kept request ${i}`));
    keptReplies.forEach(({ reply, sent }, i) => assert.ok(Buffer.from(reply.payload).equals(sent), `kept reply ${i}`));
    assert.is(server.stats().slabsReused, 0);
    assert.is(client.stats().slabsReused, 0);
  } finally {
    await client.close();
    await server.close();
  }
});

test('a borrowed reply whose use throws rejects that request alone', async () => {
  const rpc = new RpcServer();
  rpc.handleRaw(BORROWING_ECHO, 'test/BorrowingEcho', (_connection, message) => ({ header: message.header, payload: [message.payload] }), { borrowsPayload: true });
  const server = new TcpTransport({}, silentLogger());
  const client = new TcpTransport({}, silentLogger());
  try {
    const listener = await server.listen({ host: '127.0.0.1', port: 0 }, rpc);
    const connection = client.connect({ address: listener.address, shard: 0 });
    const failed = await connection.requestBorrowed!(BORROWING_ECHO, new Uint8Array(0), [Buffer.from('x')], () => {
      throw new FastblockError(ErrorCode.PROTOCOL, 'reply does not decode');
    }).catch((err: unknown) => err);
    assert.instance(failed, FastblockError);
    assert.match((failed as FastblockError).message, /reply does not decode/);
    const length = await connection.requestBorrowed!(BORROWING_ECHO, new Uint8Array(0), [Buffer.from('after')], (reply) => reply.payload.length);
    assert.is(length, 5);
    assert.is(connection.state, 'connected');
  } finally {
    await client.close();
    await server.close();
  }
});

test('a reply with a bad checksum fails its request and closes the connection, with a logged reason', async () => {
  const sockets: Socket[] = [];
  // A server speaking the protocol by hand: it accepts the hello, then answers with a corrupted payload.
  const liar = createServer((socket) => {
    sockets.push(socket);
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) =>
      decoder.push(chunk, (frame) => {
        if (frame.kind === FrameKind.HELLO) {
          socket.write(encodeFrameHead(FrameKind.HELLO_OK, 0, 0, HelloReplyCodec.encode({ shard: 0, daemon: 'liar' }), undefined, true));
          return;
        }
        const payload = Buffer.alloc(200_000, 3);
        const head = encodeFrameHead(FrameKind.REPLY, frame.method, frame.requestId, new Uint8Array(0), [payload], true);
        payload[123_456] ^= 1;
        socket.write(Buffer.concat([head, payload]));
      }),
    );
  });
  await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve));
  const log = captureLog();
  const client = new TcpTransport({ backoffMinMs: 1000 }, log.logger);
  try {
    const connection = client.connect({ address: { host: '127.0.0.1', port: (liar.address() as { port: number }).port }, shard: 0 });
    const failed = await connection.requestBorrowed!(1, new Uint8Array(0), undefined, () => assert.unreachable('a corrupt reply was used')).catch((err: unknown) => err);
    assert.instance(failed, FastblockError);
    assert.is((failed as FastblockError).code, ErrorCode.CLOSED);
    const line = await log.waitFor(/closing connection: bad frame from server/);
    assert.match(String(line.reason), /checksum mismatch/);
    assert.is.not(connection.state, 'connected');
  } finally {
    await client.close();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => liar.close(() => resolve()));
  }
});

test.run();
