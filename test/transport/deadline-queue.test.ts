import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DeadlineQueue } from '../../plugins/transport-tcp/deadline-queue.js';
import { sleep, until } from './support.js';

test('expires only live entries, each once, no earlier than its timeout, across lanes', async () => {
  const live = new Set<number>();
  const expired: [number, number, number][] = [];
  const started = new Map<number, number>();
  const queue = new DeadlineQueue(
    (id) => live.has(id),
    (id, timeoutMs) => {
      live.delete(id);
      expired.push([id, timeoutMs, performance.now() - started.get(id)!]);
    },
  );
  for (let id = 1; id <= 300; id++) {
    live.add(id);
    started.set(id, performance.now());
    queue.add(id, id % 3 === 0 ? 40 : id % 3 === 1 ? 80 : 20);
  }
  // Settle two thirds before their deadline; out of order, so dead entries sit mid-lane.
  for (let id = 1; id <= 300; id++) if (id % 5 !== 0 && id % 7 !== 0) live.delete(id);
  const expected = [...live].sort((a, b) => a - b);
  await until(() => live.size === 0, 2000, 'all expired');
  await sleep(100);
  assert.equal(expired.map(([id]) => id).sort((a, b) => a - b), expected);
  for (const [, timeoutMs, elapsed] of expired) assert.ok(elapsed >= timeoutMs - 1, `expired after ${elapsed} ms, timeout ${timeoutMs}`);
  queue.clear();
});

test('a steady stream keeps lanes short: settled heads are dropped on add', () => {
  const live = new Set<number>();
  const queue = new DeadlineQueue((id) => live.has(id), () => assert.unreachable());
  for (let id = 1; id <= 100_000; id++) {
    live.add(id);
    queue.add(id, 60_000);
    if (id > 64) live.delete(id - 64);
  }
  assert.is(queue.laneCount, 1);
  const lane = [...(queue as unknown as { lanes: Map<number, { ids: number[]; head: number }> }).lanes.values()][0]!;
  assert.ok(lane.ids.length - lane.head <= 65 && lane.ids.length < 3000, `lane holds ${lane.ids.length - lane.head} of ${lane.ids.length}`);
  queue.clear();
});

test('callers passing what is left of their own deadline make few lanes, and nothing fires early', async () => {
  const live = new Set<number>();
  const fired: { id: number; late: number }[] = [];
  const due = new Map<number, number>();
  const queue = new DeadlineQueue(
    (id) => live.has(id),
    (id) => {
      live.delete(id);
      fired.push({ id, late: performance.now() - due.get(id)! });
    },
  );
  for (let id = 1; id <= 2000; id++) {
    const timeoutMs = 1 + ((id * 7919) % 400);
    live.add(id);
    due.set(id, performance.now() + timeoutMs);
    queue.add(id, timeoutMs);
  }
  assert.ok(queue.laneCount <= 16 * 10, `${queue.laneCount} lanes`);
  await until(() => live.size === 0, 3000, 'all expired');
  assert.is(fired.length, 2000);
  for (const { id, late } of fired) assert.ok(late >= -1, `request ${id} expired ${-late} ms early`);
  queue.clear();
});

test.run();
