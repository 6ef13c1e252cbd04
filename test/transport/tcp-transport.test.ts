import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { InboundConnection, InboundMessage, TransportListener } from '../../kernel/contracts/transport.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { silentLogger } from '../../kernel/logger.js';
import { TcpTransport } from '../../plugins/transport-tcp/tcp-transport.js';
import { ECHO, NEVER, echoHandler } from './echo-peer.js';
import { sleep, until } from './support.js';

const server = new TcpTransport({}, silentLogger());
const client = new TcpTransport({ requestTimeoutMs: 5000 }, silentLogger());
let listener: TransportListener;
const DELAYED = 3;
const FAILS = 4;
const oneWay: InboundMessage[] = [];
let lastInbound: InboundConnection | undefined;

test.before(async () => {
  listener = await server.listen({ host: '127.0.0.1', port: 0 }, {
    async onRequest(connection, message) {
      lastInbound = connection;
      if (message.method === DELAYED) {
        // Answer out of order: the delay is in the header.
        await sleep(Number(Buffer.from(message.header).toString()));
        return { header: message.header };
      }
      if (message.method === FAILS) throw new FastblockError(ErrorCode.NOT_LEADER, 'not the leader of 1.2a', { pg: '1.2a', leaderHint: 3 });
      return echoHandler.onRequest(connection, message);
    },
    onMessage(connection, message) {
      oneWay.push({ method: message.method, header: Buffer.from(message.header), payload: Buffer.from(message.payload) });
      connection.send(message.method + 100, message.header, [message.payload]);
    },
  });
});

test.after(async () => {
  await client.close();
  await server.close();
});

const endpoint = () => ({ address: listener.address, shard: 0 });

test('one connection per (local shard, remote endpoint, remote shard)', () => {
  const a = client.connect(endpoint());
  assert.is(client.connect(endpoint()), a);
  assert.is.not(client.connect(endpoint(), 1), a);
  assert.is.not(client.connect({ address: listener.address, shard: 1 }), a);
});

test('pipelined requests: 500 in flight, answered out of order, each to its caller', async () => {
  const connection = client.connect(endpoint());
  const delays = Array.from({ length: 500 }, (_, i) => (i * 7919) % 23);
  const replies = await Promise.all(delays.map((d) => connection.request(DELAYED, Buffer.from(String(d)))));
  assert.equal(replies.map((r) => Number(Buffer.from(r.header).toString())), delays);
  assert.is(connection.state, 'connected');
});

test('payload travels as a raw tail, scatter lists joined on the wire only', async () => {
  const parts = [randomBytes(10), randomBytes(4096), randomBytes(1)];
  const reply = await client.connect(endpoint()).request(ECHO, Buffer.from('hdr'), parts);
  assert.equal(Buffer.from(reply.header).toString(), 'hdr');
  assert.equal(Buffer.from(reply.payload), Buffer.concat(parts));
});

test('a 16 MiB payload each way', async () => {
  const payload = randomBytes(16 * 1024 * 1024);
  const reply = await client.connect(endpoint()).request(ECHO, new Uint8Array(0), [payload]);
  assert.is(reply.payload.length, payload.length);
  assert.is(createHash('sha256').update(reply.payload).digest('hex'), createHash('sha256').update(payload).digest('hex'));
});

test('one-way messages both ways', async () => {
  const connection = client.connect(endpoint());
  const pushed: InboundMessage[] = [];
  const off = connection.onMessage!((m) => pushed.push(m));
  for (let i = 0; i < 10; i++) connection.send(50, Buffer.from(`m${i}`), [Buffer.from(`p${i}`)]);
  await until(() => pushed.length === 10, 3000, 'pushed messages');
  off();
  assert.equal(oneWay.slice(-10).map((m) => Buffer.from(m.header).toString()), Array.from({ length: 10 }, (_, i) => `m${i}`));
  assert.equal(pushed.map((m) => [m.method, Buffer.from(m.payload).toString()]), Array.from({ length: 10 }, (_, i) => [150, `p${i}`]));
});

test('an error reply carries the FastblockError code, message and context', async () => {
  try {
    await client.connect(endpoint()).request(FAILS, new Uint8Array(0));
    assert.unreachable();
  } catch (err) {
    assert.instance(err, FastblockError);
    const e = err as FastblockError;
    assert.is(e.code, ErrorCode.NOT_LEADER);
    assert.is(e.message, 'not the leader of 1.2a');
    assert.is(e.context.leaderHint, 3);
    assert.is(e.context.pg, '1.2a');
    assert.ok(e.retriable);
  }
  const after = await client.connect(endpoint()).request(ECHO, Buffer.from('still up'));
  assert.is(Buffer.from(after.header).toString(), 'still up');
});

test('per-request timeout: TIMEOUT for that request only', async () => {
  const connection = client.connect(endpoint());
  const t0 = Date.now();
  const slow = connection.request(NEVER, new Uint8Array(0), undefined, { timeoutMs: 150 });
  const fast = connection.request(ECHO, Buffer.from('fast'));
  assert.is(Buffer.from((await fast).header).toString(), 'fast');
  try {
    await slow;
    assert.unreachable();
  } catch (err) {
    assert.is((err as FastblockError).code, ErrorCode.TIMEOUT);
    assert.match((err as Error).message, /timed out after 150 ms/);
  }
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 140 && elapsed < 1500, `elapsed ${elapsed}`);
  assert.is(connection.state, 'connected');
});

test('requests to a port nobody listens on time out, never sent', async () => {
  const lonely = new TcpTransport({ backoffMinMs: 20, backoffMaxMs: 50 }, silentLogger());
  const connection = lonely.connect({ address: { host: '127.0.0.1', port: 1 }, shard: 0 });
  try {
    await connection.request(ECHO, new Uint8Array(0), undefined, { timeoutMs: 200 });
    assert.unreachable();
  } catch (err) {
    assert.is((err as FastblockError).code, ErrorCode.TIMEOUT);
    assert.match((err as Error).message, /never sent/);
  }
  assert.ok(['backoff', 'connecting'].includes(connection.state));
  await lonely.close();
  assert.is(connection.state, 'closed');
  await assert.not.throws(() => connection.send(1, new Uint8Array(0)));
});

test('a hello naming a shard this port does not serve is refused with a clear error', async () => {
  const wrong = client.connect({ address: listener.address, shard: 5 });
  try {
    await wrong.request(ECHO, new Uint8Array(0), undefined, { timeoutMs: 2000 });
    assert.unreachable();
  } catch (err) {
    assert.is((err as FastblockError).code, ErrorCode.INVALID_ARGUMENT);
    assert.match((err as Error).message, /this port serves shard 0, not shard 5/);
  }
  await wrong.close();
});

test('the inbound side sees the shard from the hello and the peer address', async () => {
  await client.connect(endpoint()).request(ECHO, new Uint8Array(0));
  assert.is(lastInbound!.shard, 0);
  assert.match(lastInbound!.remote, /^127\.0\.0\.1:\d+$/);
});

test('the transport works inside a worker thread (one per OSD shard), built from its recipe', async () => {
  const entry = new URL('./echo-peer.ts', import.meta.url).href;
  // Sources run under tsx, which a worker must register for itself.
  const worker = new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`, {
    eval: true,
    workerData: { recipe: { ...client.recipe, options: { ...client.recipe.options, logLevel: 'silent' } }, shard: 2 },
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      worker.once('message', (m: { port: number }) => resolve(m.port));
      worker.once('error', reject);
    });
    const connection = client.connect({ address: { host: '127.0.0.1', port }, shard: 2 }, 2);
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => connection.request(ECHO, Buffer.from(`w${i}`), [randomBytes(8192)])));
    assert.equal(replies.map((r) => Buffer.from(r.header).toString()), Array.from({ length: 50 }, (_, i) => `w${i}`));
    worker.postMessage('close');
  } finally {
    await worker.terminate();
  }
});

test('close fails what is in flight with CLOSED and refuses new work', async () => {
  const other = new TcpTransport({}, silentLogger());
  const connection = other.connect(endpoint());
  await connection.request(ECHO, new Uint8Array(0));
  const inflight = connection.request(NEVER, new Uint8Array(0)).then(
    () => undefined,
    (err: unknown) => err,
  );
  await other.close();
  assert.is(((await inflight) as FastblockError).code, ErrorCode.CLOSED);
  assert.throws(() => other.connect(endpoint()), /closed/);
});

test.run();
