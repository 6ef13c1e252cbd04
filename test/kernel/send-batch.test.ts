/**
 * SendBatch over a real loopback socket: small messages copied into the send buffer and large ones
 * queued as they are arrive in the order they were queued; the send buffer is reused from its start
 * once the socket has written everything; a flush with nothing queued, or on a closed socket,
 * writes nothing and says so.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createConnection, createServer, type Socket } from 'node:net';
import { SendBatch } from '../../kernel/net/send-batch.js';

async function socketPair(): Promise<{ sender: Socket; received: () => Buffer; close: () => Promise<void> }> {
  const chunks: Buffer[] = [];
  const server = createServer((socket) => socket.on('data', (d: Buffer) => chunks.push(d)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const sender = createConnection({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve) => sender.once('connect', resolve));
  return {
    sender,
    received: () => Buffer.concat(chunks),
    close: async () => {
      sender.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const copyIn = (batch: SendBatch, bytes: Uint8Array): void => {
  const at = batch.reserve(bytes.length);
  batch.buffer.set(bytes, at);
  batch.filled(at + bytes.length);
};

test('queued in order: copied small messages and large buffers as they are', async () => {
  const pair = await socketPair();
  try {
    const batch = new SendBatch(pair.sender);
    const small1 = Buffer.from('header-1|');
    const large = Buffer.alloc(200_000, 0x61);
    const small2 = Buffer.from('|header-2');
    copyIn(batch, small1);
    batch.append(large);
    copyIn(batch, small2);
    assert.is(batch.queuedBytes, small1.length + large.length + small2.length);
    let written = false;
    assert.ok(batch.flush(() => (written = true)));
    assert.is(batch.queuedBytes, 0);
    const expected = Buffer.concat([small1, large, small2]);
    for (let i = 0; i < 200 && pair.received().length < expected.length; i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(pair.received().equals(expected));
    assert.ok(written, 'the callback heard the write');
  } finally {
    await pair.close();
  }
});

test('the send buffer starts over once the socket wrote everything; nothing queued or a closed socket writes nothing', async () => {
  const pair = await socketPair();
  try {
    const batch = new SendBatch(pair.sender);
    copyIn(batch, Buffer.from('first'));
    const buffer = batch.buffer;
    await new Promise<void>((resolve) => batch.flush(() => resolve()));
    assert.is(pair.sender.writableLength, 0);
    assert.is(batch.reserve(4), 0, 'from the start again');
    assert.is(batch.buffer, buffer, 'the same buffer, not a new one');
    batch.filled(0);
    assert.not.ok(batch.flush(), 'nothing queued');
    copyIn(batch, Buffer.from('late'));
    pair.sender.destroy();
    assert.not.ok(batch.flush(), 'the socket takes no more writes');
    assert.is(batch.queuedBytes, 0);
  } finally {
    await pair.close();
  }
});

test.run();
