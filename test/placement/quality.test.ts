// Placement quality of the built-in policy, run through the sandbox exactly as the monitor runs it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { builtinPolicyBytes } from '../../plugins/placement/builtin.js';
import { WasmLeaderPolicy, WasmPlacementPolicy } from '../../plugins/placement/wasm-policy.js';
import { hostsDistinct, input, makeOsds, makePool, markOut, movedPgs, osdDeviation, pgsTouching, shardDeviation } from './cluster.js';

const policy = new WasmPlacementPolicy('builtin-calculator', 1, builtinPolicyBytes('placement'));

const layouts = [
  { hosts: 3, perHost: 3, shards: 4 },
  { hosts: 10, perHost: 10, shards: 2 },
];

for (const { hosts, perHost, shards } of layouts) {
  for (const pgNum of [256, 4096]) {
    test(`${hosts * perHost} OSDs on ${hosts} hosts, ${pgNum} PGs, size 3`, async () => {
      const osds = makeOsds(hosts, perHost, shards);
      const pool = makePool(pgNum);
      const mapping = await policy.place(input(pool, osds));
      assert.ok(hostsDistinct(mapping, osds), 'a host holds two replicas of a PG');
      assert.ok(mapping.every((r) => r.length === 3));
      const deviation = osdDeviation(mapping, osds);
      assert.ok(deviation <= 0.1, `PGs per OSD deviate ${(deviation * 100).toFixed(1)}% from the weighted mean`);
      const shardDev = shardDeviation(mapping, osds);
      assert.ok(shardDev <= 0.1, `PGs per (OSD, shard) deviate ${(shardDev * 100).toFixed(1)}%`);
      const byShard = new Array<number>(shards).fill(0);
      for (const replicas of mapping) byShard[replicas[0].shard]++;
      for (const n of byShard) assert.ok(Math.abs(n - pgNum / shards) <= 0.1 * (pgNum / shards), `PGs per shard id: ${byShard}`);

      const victim = perHost + 1;
      const after = await policy.place(input(pool, markOut(osds, (o) => o.id === victim), mapping));
      const lost = pgsTouching(mapping, (id) => id === victim);
      const moved = movedPgs(mapping, after);
      assert.ok(lost > 0);
      assert.ok(moved <= 1.2 * lost, `${moved} PGs moved, ${lost} had a replica on the OSD`);
      assert.ok(after.every((r) => r.every((x) => x.osd !== victim)));
      assert.ok(hostsDistinct(after, osds));

      // Back in: it gets its share again, and nothing else is disturbed beyond that.
      const back = await policy.place(input(pool, osds, after));
      assert.ok(osdDeviation(back, osds) <= 0.1, `after back in: ${osdDeviation(back, osds)}`);
      assert.ok(movedPgs(after, back) <= 1.2 * lost);
    });
  }
}

test('weights: an OSD of weight 2 gets twice the PGs', async () => {
  const osds = makeOsds(4, 3, 2, (id) => (id === 0 ? 2 : 1));
  const mapping = await policy.place(input(makePool(1024), osds));
  assert.ok(osdDeviation(mapping, osds) <= 0.1, `deviation ${osdDeviation(mapping, osds)}`);
  assert.ok(hostsDistinct(mapping, osds));
});

test('fewer hosts than replicas: distinct OSDs, domains spread as far as they go', async () => {
  const osds = makeOsds(2, 3, 1);
  const mapping = await policy.place(input(makePool(64), osds));
  for (const replicas of mapping) {
    assert.is(new Set(replicas.map((r) => r.osd)).size, 3);
    assert.is(new Set(replicas.map((r) => osds[r.osd].host)).size, 2);
  }
});

test('random clusters and random out/in sequences: always a valid map, moves bounded', async () => {
  let seed = 12345;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let scenario = 0; scenario < 12; scenario++) {
    const hosts = 2 + Math.floor(random() * 6);
    const perHost = 1 + Math.floor(random() * 4);
    let osds = makeOsds(hosts, perHost, 1 + Math.floor(random() * 4), () => 0.5 + Math.floor(random() * 4) / 2);
    const pool = makePool(32 + Math.floor(random() * 200), 2 + Math.floor(random() * 2));
    let mapping = await policy.place(input(pool, osds));
    for (let step = 0; step < 4; step++) {
      const victim = osds[Math.floor(random() * osds.length)];
      const next = osds.map((o) => (o.id === victim.id ? { ...o, in: !o.in } : o));
      if (next.filter((o) => o.in).length === 0) continue;
      // place() validates (distinct OSDs and domains, only up+in, shards in range) or throws.
      const after = await policy.place(input(pool, next, mapping));
      const touching = pgsTouching(mapping, (id) => id === victim.id);
      const moved = movedPgs(mapping, after);
      if (!victim.in) {
        // Coming in: at most its share moves to it (plus a little balancing), never the whole map.
        assert.ok(moved <= Math.ceil((pool.pgNum * pool.size) / next.filter((o) => o.in).length) * 2 + 2, `scenario ${scenario}: ${moved} moved when osd.${victim.id} came in`);
      } else if (hostsDistinct(mapping, osds) && new Set(next.filter((o) => o.in).map((o) => o.host)).size >= pool.size) {
        // Uneven weights: losing an OSD changes its host's share, so other OSDs' targets move too
        // and the rebalance pass follows them; the uniform suites above hold the 1.2x bound.
        assert.ok(moved <= 1.5 * touching + 2, `scenario ${scenario}: ${moved} moved, ${touching} had a replica on osd.${victim.id}`);
      }
      osds = next;
      mapping = after;
    }
  }
});

test('leader policy evens leaders and only names up replicas', async () => {
  const leaderPolicy = new WasmLeaderPolicy('builtin-even-leaders', 1, builtinPolicyBytes('leader'));
  const osds = makeOsds(3, 3, 1);
  const mapping = await policy.place(input(makePool(256), osds));
  // Every PG led by its replica on the lowest OSD id: heavily skewed.
  const pgs = mapping.map((replicas, index) => ({ pool: 1, index, replicas, leaderOsd: Math.min(...replicas.map((r) => r.osd)) }));
  const leaders = new Map<number, number>();
  for (const pg of pgs) leaders.set(pg.leaderOsd, (leaders.get(pg.leaderOsd) ?? 0) + 1);
  let transfers = await leaderPolicy.balance({ osds, pgs, maxTransfers: 1000 });
  for (const t of transfers) {
    const pg = pgs[t.index];
    leaders.set(pg.leaderOsd, leaders.get(pg.leaderOsd)! - 1);
    leaders.set(t.toOsd, (leaders.get(t.toOsd) ?? 0) + 1);
  }
  const counts = osds.map((o) => leaders.get(o.id) ?? 0);
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 2, `leaders per OSD after balancing: ${counts}`);
  transfers = await leaderPolicy.balance({ osds, pgs, maxTransfers: 5 });
  assert.is(transfers.length, 5, 'the bound is respected');
});

test.run();
