// A connection's table of requests in flight against a Map, the structure it replaced: the same
// answers for every get / has / take under random traffic with stragglers (old requests that stay
// while ids move on, forcing the table to grow), and ids that wrap past 2^32.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PendingTable } from '../../plugins/transport-tcp/pending-table.js';

function rng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 0x1_0000_0000;
  };
}

function runAgainstMap(firstId: number, seed: number): void {
  const random = rng(seed);
  const table = new PendingTable<string>();
  const model = new Map<number, string>();
  let next = firstId;
  const take = (): number => {
    let id = next;
    while (id === 0 || model.has(id)) id = (id + 1) >>> 0;
    next = (id + 1) >>> 0;
    return id;
  };
  for (let step = 0; step < 50_000; step++) {
    const r = random();
    if (r < 0.52 || model.size === 0) {
      const id = take();
      table.set(id, `v${id}`);
      model.set(id, `v${id}`);
    } else {
      // Mostly the oldest few complete; now and then a random one (a straggler stays behind).
      const live = [...model.keys()];
      const id = r < 0.97 ? live[Math.floor(random() * Math.min(4, live.length))]! : live[Math.floor(random() * live.length)]!;
      assert.is(table.take(id), model.get(id));
      model.delete(id);
      assert.is(table.take(id), undefined, 'taken twice');
    }
    if (step % 97 === 0) {
      const probe = (next - 1 - Math.floor(random() * 3000)) >>> 0;
      assert.is(table.has(probe), model.has(probe));
      assert.is(table.get(probe), model.get(probe));
    }
    assert.is(table.size, model.size);
  }
  assert.equal(table.keys(), [...model.keys()], 'keys in issue order');
}

test('answers as a Map would under random traffic with stragglers', () => {
  runAgainstMap(1, 7);
  runAgainstMap(1, 12345);
});

test('ids that wrap past 2^32 (skipping 0) keep their issue order', () => {
  runAgainstMap(0xffff_ff00, 3);
});

test('a request far older than the rest makes the table grow, not lose either', () => {
  const table = new PendingTable<number>();
  table.set(1, 1);
  for (let id = 2; id < 10_000; id++) {
    table.set(id, id);
    assert.is(table.take(id), id);
  }
  table.set(10_000, 10_000);
  assert.is(table.get(1), 1);
  assert.is(table.get(10_000), 10_000);
  assert.equal(table.keys(), [1, 10_000]);
});

test('an id already in flight, or id 0, is refused', () => {
  const table = new PendingTable<number>();
  table.set(5, 5);
  assert.throws(() => table.set(5, 6), /already in flight/);
  assert.throws(() => table.set(0, 0), /hello/);
});

test.run();
