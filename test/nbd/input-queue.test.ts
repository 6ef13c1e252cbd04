/**
 * InputQueue: payloads leave as views of the received chunks (the zero-copy claim of the write
 * path), headers straddling chunks are assembled, and the source is paused past the high-water
 * mark unless the reader waits for more than is buffered.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { InputEnded, InputQueue } from '../../plugins/frontend-nbd/input-queue.js';

const test = suite('nbd: input queue');

function flow(): { paused: boolean; pause(): void; resume(): void } {
  return {
    paused: false,
    pause() {
      this.paused = true;
    },
    resume() {
      this.paused = false;
    },
  };
}

test('take() returns views into the received chunks, never copies', () => {
  const queue = new InputQueue(flow(), 1 << 20);
  const a = Buffer.from('0123456789');
  const b = Buffer.from('abcdefghij');
  queue.push(a);
  queue.push(b);
  queue.read(4);
  const views = queue.take(12);
  assert.is(views.length, 2);
  assert.is(views[0]!.buffer, a.buffer, 'first view shares the first chunk');
  assert.is(views[0]!.byteOffset, a.byteOffset + 4);
  assert.is(views[1]!.buffer, b.buffer, 'second view shares the second chunk');
  assert.is(Buffer.concat(views).toString(), '456789abcdef');
  assert.is(queue.length, 4);
});

test('read() is a view inside one chunk and a copy across two', () => {
  const queue = new InputQueue(flow(), 1 << 20);
  const a = Buffer.from('ABCDEFGH');
  queue.push(a);
  queue.push(Buffer.from('IJKL'));
  const inside = queue.read(6);
  assert.is(inside.buffer, a.buffer);
  const across = queue.read(4);
  assert.is(across.toString(), 'GHIJ');
  assert.is(queue.length, 2);
});

test('need() waits for enough bytes and fails when the stream ends short', async () => {
  const queue = new InputQueue(flow(), 1 << 20);
  const waiting = queue.need(6);
  queue.push(Buffer.from('abc'));
  queue.push(Buffer.from('def'));
  await waiting;
  queue.read(6);
  queue.push(Buffer.from('xy'));
  const short = queue.need(28);
  queue.end();
  try {
    await short;
    assert.unreachable('should reject');
  } catch (err) {
    assert.instance(err, InputEnded);
    assert.is((err as InputEnded).buffered, 2);
  }
});

test('pauses past the high-water mark, resumes when drained or when the reader needs more', async () => {
  const source = flow();
  const queue = new InputQueue(source, 100);
  queue.push(Buffer.alloc(60));
  assert.not.ok(source.paused);
  queue.push(Buffer.alloc(60));
  assert.ok(source.paused, 'paused at 120 buffered');
  queue.take(30);
  assert.not.ok(source.paused, 'resumed below the mark');
  queue.push(Buffer.alloc(60));
  assert.ok(source.paused);
  const big = queue.need(500);
  assert.not.ok(source.paused, 'a reader waiting for a large payload keeps the data coming');
  queue.push(Buffer.alloc(350));
  await big;
});

test.run();
