// OSD lifecycle with simulated OSDs against an in-process monitor: boot and id allocation, down
// after the grace period, out after the longer one, back in on return, noout, operator out/in,
// and a PG map recomputed (with an epoch bump) at each transition.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ClusterMap } from '../../kernel/contracts/index.js';
import { join } from 'node:path';
import { loadOsdIdentity, saveOsdIdentity } from '../../services/monitor/osd-identity.js';
import { Monitor } from '../../services/monitor/monitor.js';
import { osdBoot, rejection, startMonitor, type Harness } from './harness.js';

let h: Harness;

function pgsOn(map: ClusterMap, osd: number): number {
  return map.pgs.filter((pg) => pg.replicas.some((r) => r.osd === osd)).length;
}

test.before(async () => {
  h = await startMonitor();
});
test.after(async () => {
  await h.close();
});

test('boot allocates ids once; a re-boot with the same uuid keeps its id', async () => {
  const ids = [];
  for (let i = 0; i < 6; i++) ids.push((await h.monitor.boot(osdBoot(i))).osdId);
  assert.equal(ids, [0, 1, 2, 3, 4, 5]);
  const again = await h.monitor.boot({ ...osdBoot(3), osdId: 3 });
  assert.is(again.osdId, 3);
  const epoch = h.monitor.state.epoch;
  await h.monitor.boot({ ...osdBoot(3), osdId: 3 });
  assert.is(h.monitor.state.epoch, epoch, 'an identical re-boot changes nothing');
  assert.match(await rejection(() => h.monitor.boot({ ...osdBoot(9), osdId: 3 })), /belongs to another OSD/);
});

test('an OSD keeps its identity on disk: the same id at every boot', async () => {
  const dataDir = join(h.dir, 'osd-disk');
  const first = await loadOsdIdentity(dataDir);
  assert.is(first.osdId, -1);
  const boot = { ...osdBoot(40), uuid: first.uuid, osdId: first.osdId };
  const { osdId } = await h.monitor.boot(boot);
  await saveOsdIdentity(dataDir, { ...first, osdId });
  const again = await loadOsdIdentity(dataDir);
  assert.equal(again, { uuid: first.uuid, osdId });
  assert.is((await h.monitor.boot({ ...boot, osdId: again.osdId })).osdId, osdId);
  // Gone again, so the placement below is over OSDs 0..5 only.
  await h.admin.run('osd out', { id: osdId });
  h.clock.now += 100_000;
  for (const id of [0, 1, 2, 3, 4, 5]) await h.monitor.heartbeat(id, []);
  await h.monitor.tick();
  await h.admin.run('osd rm', { id: osdId });
});

test('a pool gets a PG map over the booted OSDs', async () => {
  const before = h.monitor.state.epoch;
  await h.admin.run('pool create', { name: 'rbd', pgNum: 64 });
  const map = h.monitor.map();
  assert.is(map.epoch, before + 1);
  assert.is(map.pgs.length, 64);
  assert.ok(map.pgs.every((pg) => pg.replicas.length === 3 && pg.epoch === map.epoch));
});

test('silent OSD: down after the grace period, out after the longer one, back in on return', async () => {
  const start = h.monitor.state.epoch;
  for (let t = 0; t < 12; t++) {
    h.clock.now += 1_000;
    for (const id of [0, 1, 2, 3, 4]) await h.monitor.heartbeat(id, []);
    await h.monitor.tick();
  }
  let osd5 = h.monitor.state.osds.get(5)!;
  assert.not.ok(osd5.up, 'down after 10 s');
  assert.ok(osd5.in, 'still in');
  assert.is(h.monitor.state.epoch, start + 1);
  assert.is(pgsOn(h.monitor.map(), 5), 0, 'the map routes around a down OSD');
  h.clock.now += 60_000;
  for (const id of [0, 1, 2, 3, 4]) await h.monitor.heartbeat(id, []);
  await h.monitor.tick();
  osd5 = h.monitor.state.osds.get(5)!;
  assert.not.ok(osd5.in, 'out after 60 s');
  assert.ok(osd5.autoOut);
  await h.monitor.heartbeat(5, []);
  osd5 = h.monitor.state.osds.get(5)!;
  assert.ok(osd5.up && osd5.in, 'up and in again');
  assert.ok(pgsOn(h.monitor.map(), 5) > 0, 'it gets PGs back');
});

test('noout keeps a down OSD in', async () => {
  await h.admin.run('osd set', { flag: 'noout' });
  h.clock.now += 100_000;
  for (const id of [0, 1, 2, 3, 5]) await h.monitor.heartbeat(id, []);
  await h.monitor.tick();
  await h.monitor.tick();
  const osd4 = h.monitor.state.osds.get(4)!;
  assert.not.ok(osd4.up);
  assert.ok(osd4.in);
  await h.admin.run('osd unset', { flag: 'noout' });
  await h.monitor.tick();
  assert.not.ok(h.monitor.state.osds.get(4)!.in);
  await h.monitor.heartbeat(4, []);
  assert.ok(h.monitor.state.osds.get(4)!.in);
});

test('operator out is not undone by heartbeats; osd in undoes it', async () => {
  await h.admin.run('osd out', { id: 2 });
  await h.monitor.heartbeat(2, []);
  assert.not.ok(h.monitor.state.osds.get(2)!.in);
  assert.is(pgsOn(h.monitor.map(), 2), 0);
  await h.admin.run('osd in', { id: 2 });
  assert.ok(h.monitor.state.osds.get(2)!.in);
  assert.ok(pgsOn(h.monitor.map(), 2) > 0);
});

test('leader balancing asks leaders to transfer, bounded per round', async () => {
  // Every OSD reports leading the PGs whose first replica it is... except all go to osd 0's PGs.
  const map = h.monitor.map();
  for (const osd of map.osds) {
    const reports = map.pgs
      .filter((pg) => pg.replicas.some((r) => r.osd === osd.id))
      .map((pg) => ({ pool: pg.pool, index: pg.index, state: 'active', leader: Math.min(...pg.replicas.map((r) => r.osd)) === osd.id, term: 1 }));
    await h.monitor.heartbeat(osd.id, reports);
  }
  const transfers = await h.monitor.balanceLeaders();
  assert.is(transfers.length, 8);
  assert.is(h.transfers.length, 8);
  for (const { leader, transfer } of h.transfers) {
    const pg = map.pgs.find((p) => p.pool === transfer.pool && p.index === transfer.index)!;
    assert.is(leader.id, Math.min(...pg.replicas.map((r) => r.osd)));
    assert.ok(pg.replicas.some((r) => r.osd === transfer.toOsd));
  }
});

test('a refused command (BUSY) is not mistaken for a fenced commit: the monitor keeps leading', async () => {
  await h.admin.run('image create', { pool: 'rbd', name: 'keep', sizeBytes: 1 << 20 });
  assert.match(await rejection(() => h.admin.run('pool rm', { name: 'rbd' })), /still holds 1 image/);
  assert.ok(h.monitor.isLeader);
});

test('a commit fenced off by another writer reloads and retries: one epoch per change', async () => {
  // A second monitor object on the same store stands in for a deposed leader that kept writing.
  const stale = new Monitor({ ...h.monitor.options, id: '127.0.0.1:2' });
  await stale.start();
  while (!stale.isLeader) await new Promise((r) => setTimeout(r, 5));
  const epoch = h.monitor.state.epoch;
  await stale.mutate(() => ({ change: { flags: { noout: true } } }));
  await h.admin.run('image create', { pool: 'rbd', name: 'after-fence', sizeBytes: 1 << 20 });
  assert.is(h.monitor.state.epoch, epoch + 2);
  assert.ok(h.monitor.state.flags.noout, "the other writer's change is kept");
  assert.ok(h.monitor.isLeader);
  await stale.stop();
  await h.admin.run('osd unset', { flag: 'noout' });
});

test('the embedded store brings the same map back after a restart', async () => {
  const map = h.monitor.map();
  h = await h.restart();
  assert.equal(h.monitor.map(), map);
});

test.run();
