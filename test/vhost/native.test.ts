// The vhost addon: file descriptors across a unix socket, shared mappings (and their early release),
// eventfds, and kicks delivered to the event loop by uv_poll without spinning.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { vhostNative } from '../../plugins/frontend-vhost/native.js';

const native = vhostNative();

test('a memfd sent over a socket maps to the same memory on both sides', () => {
  const [a, b] = native.socketPair();
  const fd = native.memfd('t', 8192);
  const mine = new Uint8Array(native.mmap(fd, 8192, 0));
  assert.is(native.send(a, Uint8Array.of(1, 2, 3), [fd]), 3);
  const buf = new Uint8Array(16);
  const [n, ...fds] = native.recv(b, buf);
  assert.is(n, 3);
  assert.is(fds.length, 1);
  const theirs = new Uint8Array(native.mmap(fds[0]!, 4096, 4096));
  mine[4096 + 7] = 42;
  assert.is(theirs[7], 42, 'the second mapping starts at the page offset asked for');
  theirs[0] = 9;
  assert.is(mine[4096], 9);
  native.unmap(theirs.buffer as ArrayBuffer);
  assert.is(theirs.length, 0, 'an unmapped buffer is detached: a stale view reads as empty');
  assert.is(mine[4096], 9);
  for (const f of [fd, fds[0]!, a, b]) native.close(f);
});

test('recv: -1 when nothing is ready, 0 at end of stream', () => {
  const [a, b] = native.socketPair();
  const buf = new Uint8Array(8);
  assert.equal(native.recv(b, buf), [-1]);
  native.close(a);
  assert.equal(native.recv(b, buf), [0]);
  native.close(b);
});

test('mmap refuses nonsense sizes; a closed fd is an error with its errno', () => {
  assert.throws(() => native.mmap(0, 0, 0), /bad mapping size/);
  const fd = native.memfd('t', 4096);
  native.close(fd);
  assert.throws(() => native.mmap(fd, 4096, 0), (err: Error & { errno?: number }) => err.errno === 9);
});

test('eventfd kicks reach the event loop once per wake-up, and an idle watcher costs no CPU', async () => {
  const fd = native.eventfd();
  let calls = 0;
  const watcher = new native.Watcher(fd, () => calls++, true);
  native.eventfdWrite(fd);
  native.eventfdWrite(fd);
  await sleep(20);
  assert.is(calls, 1, 'two signals before the loop ran: one wake-up');
  assert.is(native.eventfdRead(fd), 0, 'the watcher drained the counter');
  native.eventfdWrite(fd);
  await sleep(20);
  assert.is(calls, 2);
  const before = process.cpuUsage();
  await sleep(300);
  const used = process.cpuUsage(before);
  assert.ok(used.user + used.system < 100_000, `idle for 300 ms used ${(used.user + used.system) / 1000} ms of CPU`);
  watcher.stop();
  native.eventfdWrite(fd);
  await sleep(20);
  assert.is(calls, 2, 'a stopped watcher is not called');
  native.close(fd);
});

test.run();
