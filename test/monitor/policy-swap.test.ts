// Hot swap of the placement policy through the monitor's admin commands: dry run first, activate
// with apply, stored and versioned in the MetaStore, refused candidates leave the policy in force,
// rollback, and the active version survives a monitor restart.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fixture } from '../placement/fixtures.js';
import { osdBoot, rejection, startMonitor, type Harness } from './harness.js';

let h: Harness;
interface Report { dryRun: boolean; version: number; pgsMoved: number; epoch?: number; pools: { after: { maxOverMean: number } }[] }

test.before(async () => {
  h = await startMonitor();
  for (let i = 0; i < 9; i++) await h.monitor.boot(osdBoot(i));
  await h.admin.run('pool create', { name: 'rbd', pgNum: 128 });
});
test.after(async () => {
  await h.close();
});

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

test('set without apply is a dry run: PGs that would move, balance after; nothing changes', async () => {
  const before = h.monitor.map();
  const report = (await h.admin.run('policy set', { kind: 'placement', name: 'forgetful', wasm: b64(await fixture('forgetful')) })) as Report;
  assert.ok(report.dryRun);
  assert.ok(report.pgsMoved > 0);
  assert.ok(report.pools[0].after.maxOverMean <= 1.1);
  assert.equal(h.monitor.map(), before);
  assert.is(h.monitor.policies.placement.version, 0);
});

test('apply activates it as version 1 with a new epoch and the dry run map', async () => {
  const epoch = h.monitor.state.epoch;
  const report = (await h.admin.run('policy set', { kind: 'placement', name: 'forgetful', wasm: b64(await fixture('forgetful')), apply: true })) as Report;
  assert.not.ok(report.dryRun);
  assert.is(report.version, 1);
  assert.is(report.epoch, epoch + 1);
  assert.is(h.monitor.policies.placement.name, 'forgetful');
  assert.is(h.monitor.map().policies.find((p) => p.kind === 'placement')?.version, 1);
  const moved = h.monitor.map().pgs.filter((pg) => pg.epoch === epoch + 1).length;
  assert.is(moved, report.pgsMoved);
});

for (const bad of ['loop', 'trap', 'invalidMap', 'notAPolicy'] as const) {
  test(`a ${bad} candidate is refused with its reason; version 1 stays`, async () => {
    const epoch = h.monitor.state.epoch;
    const message = await rejection(async () => h.admin.run('policy set', { kind: 'placement', name: bad, wasm: b64(await fixture(bad)), apply: true }));
    assert.match(message, /policy|module/);
    assert.is(h.monitor.policies.placement.name, 'forgetful');
    assert.is(h.monitor.state.epoch, epoch);
  });
}

test('ls and get show stored versions', async () => {
  const list = (await h.admin.run('policy ls', { kind: 'placement' })) as { version: number; active: boolean; name: string }[];
  assert.equal(list.map((p) => [p.version, p.active]), [[0, false], [1, true]]);
  const got = (await h.admin.run('policy get', { kind: 'placement', version: 1 })) as { wasm: string; name: string };
  assert.equal(new Uint8Array(Buffer.from(got.wasm, 'base64')), await fixture('forgetful'));
  assert.match(await rejection(async () => h.admin.run('policy get', { kind: 'placement', version: 7 })), /no placement policy version 7/);
  assert.match(await rejection(async () => h.admin.run('policy set', { kind: 'placment', name: 'x', wasm: 'AA==' })), /kind must be one of/);
});

test('the active version survives a restart; rollback returns to the built-in', async () => {
  h = await h.restart();
  assert.is(h.monitor.policies.placement.name, 'forgetful');
  assert.is(h.monitor.policies.placement.version, 1);
  const dry = (await h.admin.run('policy rollback', { kind: 'placement' })) as Report;
  assert.ok(dry.dryRun);
  assert.is(dry.version, 0);
  const done = (await h.admin.run('policy rollback', { kind: 'placement', apply: true })) as Report;
  assert.not.ok(done.dryRun);
  assert.is(h.monitor.policies.placement.version, 0);
  assert.is(h.monitor.map().policies.find((p) => p.kind === 'placement')?.version, 0);
});

test.run();
