// Store usage from heartbeats against an in-process monitor: the cluster totals, the near-full
// warning (fullest first, at the configured ratio), the full OSDs heartbeat replies name (up ones
// only), a removed OSD left out, a heartbeat without
// figures keeping the last ones, impossible figures refused; and the monitor's Prometheus gauges
// reading the same summary.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Registry } from 'prom-client';
import { percentFull } from '../../cli/commands/usage-format.js';
import { checkUsage, wholePercent } from '../../services/monitor/capacity.js';
import { registerMonitorMetrics } from '../../services/monitor/monitor-metrics.js';
import { clusterStatus } from '../../services/monitor/status.js';
import { osdBoot, startMonitor, type Harness } from './harness.js';

const GiB = 1024 ** 3;
let h: Harness;

test.before(async () => {
  h = await startMonitor();
  for (let i = 0; i < 4; i++) await h.monitor.boot(osdBoot(i));
});
test.after(async () => {
  await h.close();
});

test('usage adds up over the OSDs that reported; past 0.85 an OSD is named, fullest first', async () => {
  assert.equal(clusterStatus(h.monitor).usage, { capacityBytes: 0, usedBytes: 0, osdsReporting: 0, nearFull: [], nearFullRatio: 0.85, slowCommit: [], slowCommitMs: 500 });
  await h.monitor.heartbeat(0, [], { capacityBytes: 100 * GiB, usedBytes: 10 * GiB });
  await h.monitor.heartbeat(1, [], { capacityBytes: 100 * GiB, usedBytes: 91 * GiB });
  await h.monitor.heartbeat(2, [], { capacityBytes: 100 * GiB, usedBytes: 96 * GiB });
  await h.monitor.heartbeat(3, []);
  const s = clusterStatus(h.monitor);
  assert.equal({ capacityBytes: s.usage.capacityBytes, usedBytes: s.usage.usedBytes, osdsReporting: s.usage.osdsReporting }, { capacityBytes: 300 * GiB, usedBytes: 197 * GiB, osdsReporting: 3 });
  assert.equal(s.usage.nearFull.map((u) => u.osd), [2, 1]);
  assert.is(s.health, 'HEALTH_WARN');
  assert.equal(s.problems, ['osd.2 is 96% full', 'osd.1 is 91% full']);
  // Past monitor.fullRatio (0.95): every heartbeat reply names it, so leaders refuse writes to its PGs.
  assert.equal((await h.monitor.heartbeat(0, [])).fullOsds, [2]);
});

test('a heartbeat without figures keeps the last ones; a removed OSD drops out', async () => {
  await h.monitor.heartbeat(2, []);
  assert.is(h.monitor.capacity.get(2)?.usedBytes, 96 * GiB);
  await h.admin.run('osd out', { id: 2 });
  h.clock.now += 20_000; // past downAfterMs: osd.2 goes down, so it may be removed
  for (const id of [0, 1, 3]) await h.monitor.heartbeat(id, []);
  await h.monitor.tick();
  assert.equal((await h.monitor.heartbeat(0, [])).fullOsds, [], 'a down OSD takes no appends: its PGs stay writable');
  await h.admin.run('osd rm', { id: 2 });
  const s = clusterStatus(h.monitor);
  assert.is(s.usage.osdsReporting, 2);
  assert.equal(s.usage.nearFull.map((u) => u.osd), [1]);
  assert.equal(h.monitor.capacity.list(h.monitor.state.osds).map((u) => u.osd), [0, 1]);
});

test('percentages round down, and 29 of 100 is 29% (not 28.999...)', () => {
  assert.is(wholePercent(29 / 100), 29);
  assert.is(wholePercent(0.996), 99);
  assert.is(percentFull(29, 100), '29%');
  assert.is(percentFull(1, 0), '-');
});

test('impossible figures are refused before they reach the table', () => {
  assert.is(checkUsage({ capacityBytes: 0, usedBytes: 0 }), undefined, 'zero and zero: not reported');
  for (const bad of [
    { capacityBytes: GiB, usedBytes: 2 * GiB },
    { capacityBytes: -1, usedBytes: 0 },
    { capacityBytes: 0, usedBytes: 5 },
    { capacityBytes: Number.MAX_SAFE_INTEGER + 2, usedBytes: 0 },
  ]) {
    assert.throws(() => checkUsage(bad), /usage out of range/);
  }
  for (const commitLatencyUs of [-1, 1.5, 2 ** 32, Number.NaN]) {
    assert.throws(() => checkUsage({ capacityBytes: GiB, usedBytes: 0, commitLatencyUs }), /commit latency out of range/, String(commitLatencyUs));
  }
  assert.equal(checkUsage({ capacityBytes: GiB, usedBytes: 0 }), { capacityBytes: GiB, usedBytes: 0, commitLatencyUs: 0 }, 'absent: none reported');
});

test("an OSD's commit latency is kept with its usage, and the next heartbeat's replaces it", async () => {
  await h.monitor.heartbeat(0, [], { capacityBytes: 100 * GiB, usedBytes: 10 * GiB, commitLatencyUs: 420 });
  assert.is(h.monitor.capacity.get(0)?.commitLatencyUs, 420);
  await h.monitor.heartbeat(0, [], { capacityBytes: 100 * GiB, usedBytes: 10 * GiB, commitLatencyUs: 0 });
  assert.is(h.monitor.capacity.get(0)?.commitLatencyUs, 0, 'no log writes in the interval');
});

test('the monitor gauges read the cluster summary', async () => {
  const registry = new Registry();
  registerMonitorMetrics(registry, () => h.monitor);
  const text = await registry.metrics();
  assert.match(text, /^fastblock_monitor_leader 1$/m);
  assert.match(text, new RegExp(`^fastblock_cluster_map_epoch ${h.monitor.state.epoch}$`, 'm'));
  assert.match(text, /^fastblock_cluster_osds\{state="total"\} 3$/m);
  assert.match(text, /^fastblock_cluster_health 1$/m);
  assert.match(text, /^fastblock_cluster_osd_used_ratio\{osd="1"\} 0\.91$/m);
  assert.match(text, /^fastblock_cluster_capacity_bytes 214748364800$/m);
});

test('an up OSD whose commit latency is past monitor.slowCommitMs warns until it is back under', async () => {
  const slow = (s: ReturnType<typeof clusterStatus>) => s.problems.filter((p) => p.includes('commits slowly'));
  await h.monitor.heartbeat(0, [], { capacityBytes: 100 * GiB, usedBytes: 10 * GiB, commitLatencyUs: 499_000 });
  assert.equal(slow(clusterStatus(h.monitor)), [], '499 ms is under the default 500');
  await h.monitor.heartbeat(0, [], { capacityBytes: 100 * GiB, usedBytes: 10 * GiB, commitLatencyUs: 812_400 });
  await h.monitor.heartbeat(3, [], { capacityBytes: 100 * GiB, usedBytes: 10 * GiB, commitLatencyUs: 2_000_000 });
  const s = clusterStatus(h.monitor);
  assert.equal(slow(s), ['osd.3 commits slowly (2000 ms per raft log flush)', 'osd.0 commits slowly (812 ms per raft log flush)']);
  assert.equal(s.usage.slowCommit, [{ osd: 3, commitLatencyMs: 2000 }, { osd: 0, commitLatencyMs: 812.4 }]);
  assert.is(s.health, 'HEALTH_WARN');
  for (const osd of [0, 3]) await h.monitor.heartbeat(osd, [], { capacityBytes: 100 * GiB, usedBytes: 10 * GiB, commitLatencyUs: 3_000 });
  assert.equal(slow(clusterStatus(h.monitor)), []);
});

test.run();
