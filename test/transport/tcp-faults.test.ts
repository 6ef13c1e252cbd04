import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Socket } from 'node:net';
import type { TransportListener } from '../../kernel/contracts/transport.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { silentLogger } from '../../kernel/logger.js';
import { FrameKind, PREAMBLE_BYTES, encodeFrameHead } from '../../kernel/rpc/frame.js';
import { FrameDecoder } from '../../kernel/rpc/frame-decoder.js';
import { HelloReplyCodec } from '../../kernel/rpc/wire.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { ECHO, echoHandler } from './echo-peer.js';
import { captureLog, closed, exited, helloFrame, rawSocket, spawnPeer, until } from './support.js';

const MiB = 1024 * 1024;
const log = captureLog();
const server = new TcpTransport({ maxPayloadBytes: 32 * MiB, maxBufferedBytes: 64 * MiB, highWaterBytes: 1 * MiB }, log.logger);
let listener: TransportListener;
const BIG_REPLY = 7;

test.before(async () => {
  listener = await server.listen({ host: '127.0.0.1', port: 0 }, {
    onRequest(connection, message) {
      if (message.method === BIG_REPLY) return { header: new Uint8Array(0), payload: [Buffer.alloc(256 * 1024, 1)] };
      return echoHandler.onRequest(connection, message);
    },
  });
});

test.after(async () => {
  await server.close();
});

/** A healthy client on the same listener, to show that one bad connection hurts nobody else. */
async function healthyRoundTrip(): Promise<void> {
  const client = new TcpTransport({}, silentLogger());
  const reply = await client.connect({ address: listener.address, shard: 0 }).request(ECHO, Buffer.from('ok'));
  assert.is(Buffer.from(reply.header).toString(), 'ok');
  await client.close();
}

test('a malformed frame closes only that connection, with a logged reason', async () => {
  const socket = await rawSocket(listener.address.port);
  socket.write(helloFrame());
  socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: fastblock\r\n\r\n'));
  await closed(socket);
  const line = await log.waitFor(/closing connection: bad frame/);
  assert.match(String(line.reason), /bad frame magic 0x2f/);
  assert.match(String(line.remote), /^127\.0\.0\.1:\d+$/);
  await healthyRoundTrip();
});

test('a frame before the hello, and a frame with a bad checksum, are refused the same way', async () => {
  const early = await rawSocket(listener.address.port);
  early.write(encodeFrameHead(FrameKind.REQUEST, ECHO, 1, new Uint8Array(0), undefined, true));
  await closed(early);
  assert.match(String((await log.waitFor(/bad frame/)).reason), /.+/);
  const before = log.lines.length;
  const corrupt = await rawSocket(listener.address.port);
  const payload = Buffer.from('payload');
  const head = encodeFrameHead(FrameKind.REQUEST, ECHO, 1, new Uint8Array(0), [payload], true);
  corrupt.write(helloFrame());
  corrupt.write(Buffer.concat([head, Buffer.from('pAyload')]));
  await closed(corrupt);
  await until(() => log.lines.slice(before).some((l) => /checksum mismatch/.test(String(l.reason))), 3000, 'checksum log line');
  await healthyRoundTrip();
});

test('a one-way message whose handler throws is dropped alone; the connection stays', async () => {
  const throwing = new TcpTransport({}, log.logger);
  const other = await throwing.listen({ host: '127.0.0.1', port: 0 }, {
    onRequest: (connection, message) => echoHandler.onRequest(connection, message),
    onMessage() {
      throw new FastblockError(ErrorCode.PROTOCOL, 'malformed gossip header');
    },
  });
  const client = new TcpTransport({}, silentLogger());
  const connection = client.connect({ address: other.address, shard: 0 });
  await connection.request(ECHO, new Uint8Array(0));
  connection.send(9, Buffer.from('x'));
  const line = await log.waitFor(/one-way message dropped/);
  assert.match(String(line.reason), /malformed gossip header/);
  const after = await connection.request(ECHO, Buffer.from('same connection'));
  assert.is(Buffer.from(after.header).toString(), 'same connection');
  assert.is(connection.state, 'connected');
  await client.close();
  await throwing.close();
});

test('a peer that connects and never says hello is closed after connectTimeoutMs', async () => {
  const strict = new TcpTransport({ connectTimeoutMs: 150 }, log.logger);
  const quiet = await strict.listen({ host: '127.0.0.1', port: 0 }, echoHandler);
  const socket = await rawSocket(quiet.address.port);
  const t0 = Date.now();
  await closed(socket);
  assert.ok(Date.now() - t0 >= 100, 'not before the timeout');
  assert.ok(log.lines.some((l) => l.msg === 'closing connection: no hello in time'));
  await strict.close();
});

test('an oversized frame is refused from its preamble, before its body is buffered', async () => {
  const socket = await rawSocket(listener.address.port);
  socket.write(helloFrame());
  const head = Buffer.from(encodeFrameHead(FrameKind.REQUEST, ECHO, 1, new Uint8Array(0), undefined, false));
  head.writeUInt32LE(1024 * MiB, 20);
  socket.write(head.subarray(0, PREAMBLE_BYTES));
  // Keep sending body bytes: the server must close without waiting for them.
  const filler = setInterval(() => socket.writable && socket.write(Buffer.alloc(64 * 1024)), 5);
  await closed(socket);
  clearInterval(filler);
  const line = log.lines.find((l) => /exceeds the limit/.test(String(l.reason)));
  assert.ok(line, 'logged');
  assert.match(String(line!.reason), /frame payload of 1073741824 bytes exceeds the limit of 33554432/);
  assert.ok(server.stats().inboundReceiveBufferedBytes < 1 * MiB);
  await healthyRoundTrip();
});

test('a server that stops reading: queued bytes stay bounded, then requests fail with BUSY', async () => {
  const sockets: Socket[] = [];
  const stalled = createServer((socket) => {
    sockets.push(socket);
    const decoder = new FrameDecoder();
    socket.once('data', (chunk: Buffer) => {
      decoder.push(chunk, () => {});
      socket.write(encodeFrameHead(FrameKind.HELLO_OK, 0, 0, HelloReplyCodec.encode({ shard: 0, daemon: 'stalled' }), undefined, true));
      socket.pause();
    });
  });
  await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
  const port = (stalled.address() as { port: number }).port;
  const limit = 8 * MiB;
  const client = new TcpTransport({ maxPayloadBytes: 1 * MiB, maxBufferedBytes: limit, highWaterBytes: 2 * MiB, requestTimeoutMs: 60_000 }, silentLogger());
  const connection = client.connect({ address: { host: '127.0.0.1', port }, shard: 0 });
  await until(() => connection.state === 'connected', 3000, 'connected');
  const chunk = Buffer.alloc(1 * MiB, 7);
  const outcomes: Promise<unknown>[] = [];
  let busy: FastblockError | undefined;
  for (let i = 0; i < 200 && !busy; i++) {
    outcomes.push(connection.request(ECHO, new Uint8Array(0), [chunk]).catch((err: FastblockError) => err));
    await new Promise((resolve) => setImmediate(resolve));
    const stats = client.stats();
    assert.ok(stats.sendQueuedBytes <= limit + chunk.length, `queued ${stats.sendQueuedBytes}`);
    const last = await Promise.race([outcomes[outcomes.length - 1], new Promise((resolve) => setImmediate(() => resolve(undefined)))]);
    if (last instanceof FastblockError) busy = last;
  }
  assert.ok(busy, 'a request failed with BUSY');
  assert.is(busy!.code, ErrorCode.BUSY);
  assert.match(busy!.message, /send queue to 127\.0\.0\.1:\d+\/shard 0 is full .*limit 8388608.*not reading/);
  let drained = false;
  void connection.drained().then(() => (drained = true));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.not.ok(drained, 'drained() waits while the peer does not read');
  await client.close();
  assert.ok(drained, 'drained() resolves on close');
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => stalled.close(() => resolve()));
});

test('a client that stops reading its replies: the server stops reading it, memory stays bounded', async () => {
  const socket = await rawSocket(listener.address.port);
  socket.pause();
  socket.write(helloFrame());
  // 2000 requests whose replies are 256 KiB each: 500 MiB if the server answered them all.
  const requests = Buffer.concat(Array.from({ length: 2000 }, (_, i) => encodeFrameHead(FrameKind.REQUEST, BIG_REPLY, i + 1, new Uint8Array(0), undefined, true)));
  socket.write(requests);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const stats = server.stats();
  // The server's reply queue stops at its high-water mark (1 MiB) plus the one reply that crossed it.
  assert.ok(stats.inboundSendQueuedBytes > 0, 'the server did answer some');
  assert.ok(stats.inboundSendQueuedBytes <= 1 * MiB + 256 * 1024 + 1024, `server queued ${stats.inboundSendQueuedBytes} bytes of replies`);
  socket.destroy();
  await healthyRoundTrip();
});

test('reconnect after the peer process is killed (SIGKILL) and restarted', async () => {
  const client = new TcpTransport({ backoffMinMs: 20, backoffMaxMs: 200, requestTimeoutMs: 10_000 }, silentLogger());
  let peer = await spawnPeer();
  const port = peer.port;
  const connection = client.connect({ address: { host: '127.0.0.1', port }, shard: 0 });
  try {
    const first = await connection.request(ECHO, Buffer.from('before'));
    assert.is(Buffer.from(first.header).toString(), 'before');
    const states: string[] = [];
    connection.onStateChange((s) => states.push(s));
    const inflight = connection.request(2 /* NEVER */, new Uint8Array(0)).then(
      () => undefined,
      (err: unknown) => err,
    );
    await new Promise((resolve) => setTimeout(resolve, 30));
    peer.child.kill('SIGKILL');
    await exited(peer.child);
    const lost = (await inflight) as FastblockError;
    assert.is(lost.code, ErrorCode.CLOSED);
    assert.match(lost.message, /outcome unknown/);
    // Issued while the peer is down: waits, unsent, and goes out once the peer is back.
    const waiting = connection.request(ECHO, Buffer.from('after'));
    peer = await spawnPeer(port);
    const after = await waiting;
    assert.is(Buffer.from(after.header).toString(), 'after');
    assert.ok(states.includes('backoff') && states.at(-1) === 'connected', states.join(','));
  } finally {
    await client.close();
    peer.child.kill('SIGKILL');
    await exited(peer.child);
  }
});

test.run();
