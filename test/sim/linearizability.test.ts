/** The checker itself, on small histories known to be linearizable and known not to be. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkHistory } from './linearizability.js';
import type { Operation } from './linearizability.js';

const put = (client: number, value: string, call: number, ret: number, key = 'x'): Operation => ({ client, key, kind: 'put', value, call, ret });
const get = (client: number, value: string | undefined, call: number, ret: number, key = 'x'): Operation => ({ client, key, kind: 'get', value, call, ret });

test('sequential history', () => {
  assert.ok(checkHistory([put(1, 'a', 0, 1), get(2, 'a', 2, 3), put(1, 'b', 4, 5), get(2, 'b', 6, 7)]).ok);
});

test('a read of the initial value before any write', () => {
  assert.ok(checkHistory([get(1, undefined, 0, 1), put(2, 'a', 2, 3)]).ok);
});

test('concurrent write may be seen or not by an overlapping read', () => {
  assert.ok(checkHistory([put(1, 'a', 0, 10), get(2, 'a', 1, 2)]).ok);
  assert.ok(checkHistory([put(1, 'a', 0, 10), get(2, undefined, 1, 2)]).ok);
});

test('stale read after a completed write is not linearizable', () => {
  const r = checkHistory([put(1, 'a', 0, 1), put(1, 'b', 2, 3), get(2, 'a', 4, 5)]);
  assert.not.ok(r.ok);
  assert.is(r.key, 'x');
});

test('a read cannot see a value nobody wrote', () => {
  assert.not.ok(checkHistory([put(1, 'a', 0, 1), get(2, 'z', 2, 3)]).ok);
});

test('two reads disagreeing on the order of concurrent writes', () => {
  // Writes a and b overlap the reads; client 3 sees a then b, so b follows a; client 4
  // (strictly after) sees a again: not linearizable.
  const h = [put(1, 'a', 0, 20), put(2, 'b', 0, 20), get(3, 'a', 11, 12), get(3, 'b', 13, 14), get(4, 'a', 15, 16)];
  assert.not.ok(checkHistory(h).ok);
  // Without the last read it is fine (b after a).
  assert.ok(checkHistory(h.slice(0, 4)).ok);
});

test('write with unknown outcome may have happened ...', () => {
  assert.ok(checkHistory([put(1, 'a', 0, Infinity), get(2, 'a', 5, 6)]).ok);
});

test('... or not', () => {
  assert.ok(checkHistory([put(1, 'a', 0, Infinity), get(2, undefined, 5, 6)]).ok);
});

test('but an unknown write cannot take effect before it was called', () => {
  assert.not.ok(checkHistory([get(2, 'a', 0, 1), put(1, 'a', 5, Infinity)]).ok);
});

test('keys are independent: a violation on one key is reported with that key', () => {
  const r = checkHistory([put(1, 'a', 0, 1, 'x'), get(2, 'a', 2, 3, 'x'), put(1, 'a', 0, 1, 'y'), put(1, 'b', 2, 3, 'y'), get(2, 'a', 4, 5, 'y')]);
  assert.not.ok(r.ok);
  assert.is(r.key, 'y');
});

test('a larger concurrent history with many interleavings stays fast', () => {
  const h: Operation[] = [];
  let t = 0;
  for (let i = 0; i < 200; i++) {
    h.push(put(i % 5, `v${i}`, t, t + 7));
    h.push(get((i + 1) % 5, `v${i}`, t + 6, t + 9));
    t += 5;
  }
  assert.ok(checkHistory(h).ok);
});

test.run();
