/** Synthetic clusters and mapping statistics shared by the placement suites and bench/placement. */
import type { OsdInfo, PlacementInput, PoolInfo, Replica } from '../../kernel/contracts/index.js';

export function makeOsds(hosts: number, perHost: number, shards: number, weight = (_id: number) => 1): OsdInfo[] {
  const osds: OsdInfo[] = [];
  for (let h = 0; h < hosts; h++) {
    for (let j = 0; j < perHost; j++) {
      const id = h * perHost + j;
      osds.push({
        id,
        address: { host: '127.0.0.1', port: 7000 + id },
        shards,
        host: `host-${h}`,
        failureDomain: `host-${h}`,
        weight: weight(id),
        up: true,
        in: true,
        lastHeartbeatMs: 0,
      });
    }
  }
  return osds;
}

export function makePool(pgNum: number, size = 3): PoolInfo {
  return { id: 1, name: 'rbd', size, minSize: 2, pgNum, failureDomain: 'host' };
}

export function markOut(osds: readonly OsdInfo[], out: (osd: OsdInfo) => boolean): OsdInfo[] {
  return osds.map((osd) => (out(osd) ? { ...osd, in: false } : osd));
}

export function input(pool: PoolInfo, osds: readonly OsdInfo[], previous: readonly (readonly Replica[])[] = []): PlacementInput {
  return { pool, osds, previous };
}

export function pgsPerOsd(mapping: readonly (readonly Replica[])[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const replicas of mapping) for (const r of replicas) counts.set(r.osd, (counts.get(r.osd) ?? 0) + 1);
  return counts;
}

/** Largest relative deviation of PGs per OSD from the weighted mean, over up+in OSDs. */
export function osdDeviation(mapping: readonly (readonly Replica[])[], osds: readonly OsdInfo[]): number {
  const counts = pgsPerOsd(mapping);
  const live = osds.filter((o) => o.up && o.in);
  const total = mapping.reduce((s, r) => s + r.length, 0);
  const weight = live.reduce((s, o) => s + o.weight, 0);
  let worst = 0;
  for (const osd of live) {
    const mean = (total * osd.weight) / weight;
    worst = Math.max(worst, Math.abs((counts.get(osd.id) ?? 0) - mean) / mean);
  }
  return worst;
}

export function maxOverMean(mapping: readonly (readonly Replica[])[], osds: readonly OsdInfo[]): number {
  const counts = pgsPerOsd(mapping);
  const live = osds.filter((o) => o.up && o.in);
  const total = mapping.reduce((s, r) => s + r.length, 0);
  return Math.max(...live.map((o) => counts.get(o.id) ?? 0)) / (total / live.length);
}

/**
 * Largest deviation of PGs per (OSD, shard) from that OSD's own mean per shard, as a fraction, with
 * one PG of grace: a mean of 7.7 per shard cannot be met closer than 7 or 8.
 */
export function shardDeviation(mapping: readonly (readonly Replica[])[], osds: readonly OsdInfo[]): number {
  const load = new Map<string, number>();
  for (const replicas of mapping) for (const r of replicas) load.set(`${r.osd}/${r.shard}`, (load.get(`${r.osd}/${r.shard}`) ?? 0) + 1);
  const counts = pgsPerOsd(mapping);
  let worst = 0;
  for (const osd of osds) {
    if (!osd.up || !osd.in) continue;
    const mean = (counts.get(osd.id) ?? 0) / osd.shards;
    if (mean === 0) continue;
    for (let s = 0; s < osd.shards; s++) {
      const off = Math.max(0, Math.abs((load.get(`${osd.id}/${s}`) ?? 0) - mean) - 1);
      worst = Math.max(worst, off / mean);
    }
  }
  return worst;
}

/** PGs whose replica set or shard changed. */
export function movedPgs(before: readonly (readonly Replica[])[], after: readonly (readonly Replica[])[]): number {
  let moved = 0;
  for (let pg = 0; pg < before.length; pg++) {
    const a = new Set(before[pg].map((r) => `${r.osd}/${r.shard}`));
    const b = after[pg].map((r) => `${r.osd}/${r.shard}`);
    if (b.length !== a.size || b.some((x) => !a.has(x))) moved++;
  }
  return moved;
}

export function pgsTouching(mapping: readonly (readonly Replica[])[], lost: (osd: number) => boolean): number {
  return mapping.filter((replicas) => replicas.some((r) => lost(r.osd))).length;
}

export function hostsDistinct(mapping: readonly (readonly Replica[])[], osds: readonly OsdInfo[]): boolean {
  const host = new Map(osds.map((o) => [o.id, o.host]));
  return mapping.every((replicas) => new Set(replicas.map((r) => host.get(r.osd))).size === replicas.length);
}
