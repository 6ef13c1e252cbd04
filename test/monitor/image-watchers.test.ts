// The leader's table of who has which image open: leases that expire unless renewed, and a new
// leader that will not call an older image unwatched before every client had its turn to renew.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ImageWatchers, MAX_WATCH_LEASE_MS, WATCH_RENEW_GRACE_MS } from '../../services/monitor/image-watchers.js';

function table(): { watchers: ImageWatchers; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const watchers = new ImageWatchers(() => clock.now);
  watchers.reset();
  return { watchers, clock };
}

const gw = { id: 'gw.1', description: 'gateway on h1 (pid 7)' };
const vm = { id: 'vm.2', description: 'qemu on h2 (pid 9)' };

test('a watch lasts its lease, a renewal extends it, unwatch ends it', () => {
  const { watchers, clock } = table();
  const created = clock.now;
  watchers.watch('img', gw, 30_000);
  watchers.watch('img', vm, 10_000);
  let answer = watchers.watched('img', created);
  assert.ok(answer.known);
  if (answer.known) assert.equal(answer.watchers.map((w) => w.id).sort(), ['gw.1', 'vm.2']);
  clock.now += 20_000;
  answer = watchers.watched('img', created);
  if (!answer.known) throw new Error('known');
  assert.equal(answer.watchers.map((w) => w.id), ['gw.1'], 'the vm lease ran out');
  assert.is(answer.watchers[0].expiresInMs, 10_000);
  watchers.watch('img', gw, 30_000);
  clock.now += 25_000;
  answer = watchers.watched('img', created);
  if (!answer.known) throw new Error('known');
  assert.is(answer.watchers.length, 1, 'renewed 25 s ago with a 30 s lease');
  assert.ok(watchers.unwatch('img', 'gw.1'));
  assert.not.ok(watchers.unwatch('img', 'gw.1'), 'only once');
  answer = watchers.watched('img', created);
  assert.equal(answer, { known: true, watchers: [] });
});

test('after an election an older image is unknown until clients could renew; a newer one is known at once', () => {
  const { watchers, clock } = table();
  const before = clock.now - 60_000;
  clock.now += 1000;
  let answer = watchers.watched('old', before);
  assert.is(answer.known, false);
  if (!answer.known) assert.is(answer.knownInMs, WATCH_RENEW_GRACE_MS - 1000);
  assert.equal(watchers.watched('new', clock.now), { known: true, watchers: [] }, 'created under this leader');
  watchers.watch('old', gw, 30_000);
  answer = watchers.watched('old', before);
  assert.ok(answer.known, 'a renewal arrived: it is open, which is known');
  watchers.unwatch('old', 'gw.1');
  clock.now += WATCH_RENEW_GRACE_MS;
  assert.equal(watchers.watched('old', before), { known: true, watchers: [] });
  // A second election starts the wait again.
  watchers.reset();
  assert.is(watchers.watched('old', before).known, false);
});

test('leases outside the allowed range are refused; forget drops an image', () => {
  const { watchers, clock } = table();
  assert.throws(() => watchers.watch('img', gw, MAX_WATCH_LEASE_MS + 1));
  assert.throws(() => watchers.watch('img', gw, 0));
  watchers.watch('img', gw, 5000);
  watchers.forget('img');
  assert.equal(watchers.watched('img', clock.now), { known: true, watchers: [] });
});

test.run();
