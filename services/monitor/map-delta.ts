/**
 * What a subscriber needs to go from one epoch to the next: the records that changed. Computed by
 * comparing two snapshots (so the leader and the followers, who learn changes from the store's
 * watch, produce the same deltas), and applied by subscribers (services/monitor/client.ts).
 */
import type { ClusterMap, ImageInfo, OsdInfo, PgMapping, PolicyInfo, PoolInfo } from '../../kernel/contracts/index.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { publicOsd, type MonitorState } from './map-state.js';

export interface MapDelta {
  readonly fromEpoch: number;
  readonly epoch: number;
  readonly osds: readonly OsdInfo[];
  readonly removedOsds: readonly number[];
  readonly pools: readonly PoolInfo[];
  readonly removedPools: readonly number[];
  readonly pgs: readonly PgMapping[];
  readonly images: readonly ImageInfo[];
  readonly removedImages: readonly string[];
  readonly policies: readonly PolicyInfo[];
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function diffStates(before: MonitorState, after: MonitorState): MapDelta {
  const osds = [...after.osds.values()].filter((o) => !sameJson(publicOsd(o), before.osds.has(o.id) ? publicOsd(before.osds.get(o.id)!) : undefined));
  const pgs: PgMapping[] = [];
  for (const [pool, mapping] of after.pgs) {
    const old = before.pgs.get(pool);
    for (const pg of mapping) if (old?.[pg.index]?.epoch !== pg.epoch || old[pg.index].replicas.length !== pg.replicas.length) pgs.push(pg);
  }
  return {
    fromEpoch: before.epoch,
    epoch: after.epoch,
    osds: osds.map(publicOsd),
    removedOsds: [...before.osds.keys()].filter((id) => !after.osds.has(id)),
    pools: [...after.pools.values()].filter((p) => !sameJson(p, before.pools.get(p.id))),
    removedPools: [...before.pools.keys()].filter((id) => !after.pools.has(id)),
    pgs,
    images: [...after.images.values()].filter((i) => !sameJson(i, before.images.get(i.id))),
    removedImages: [...before.images.keys()].filter((id) => !after.images.has(id)),
    policies: [...after.policies.values()].filter((p) => !sameJson(p, before.policies.get(p.kind))),
  };
}

/** The map at `delta.epoch`. Throws STALE_EPOCH when `map` is not at `delta.fromEpoch`. */
export function applyDelta(map: ClusterMap, delta: MapDelta): ClusterMap {
  if (map.epoch !== delta.fromEpoch) {
    throw new FastblockError(ErrorCode.STALE_EPOCH, `map delta ${delta.fromEpoch}->${delta.epoch} does not apply to epoch ${map.epoch}`, {
      have: map.epoch,
      from: delta.fromEpoch,
    });
  }
  const removedPools = new Set(delta.removedPools);
  const osds = new Map(map.osds.map((o) => [o.id, o]));
  for (const id of delta.removedOsds) osds.delete(id);
  for (const o of delta.osds) osds.set(o.id, o);
  const pools = new Map(map.pools.map((p) => [p.id, p]));
  for (const id of removedPools) pools.delete(id);
  for (const p of delta.pools) pools.set(p.id, p);
  const pgs = new Map(map.pgs.filter((pg) => !removedPools.has(pg.pool)).map((pg) => [`${pg.pool}.${pg.index}`, pg]));
  for (const pg of delta.pgs) pgs.set(`${pg.pool}.${pg.index}`, pg);
  // A pool whose pg_num shrank drops its high PGs.
  for (const [key, pg] of pgs) if (pg.index >= (pools.get(pg.pool)?.pgNum ?? 0)) pgs.delete(key);
  const images = new Map(map.images.map((i) => [i.id, i]));
  for (const id of delta.removedImages) images.delete(id);
  for (const i of delta.images) images.set(i.id, i);
  const policies = new Map(map.policies.map((p) => [p.kind, p]));
  for (const p of delta.policies) policies.set(p.kind, p);
  return {
    epoch: delta.epoch,
    osds: [...osds.values()].sort((a, b) => a.id - b.id),
    pools: [...pools.values()].sort((a, b) => a.id - b.id),
    pgs: [...pgs.values()].sort((a, b) => a.pool - b.pool || a.index - b.index),
    images: [...images.values()].sort((a, b) => a.pool - b.pool || a.name.localeCompare(b.name)),
    policies: [...policies.values()].sort((a, b) => a.kind.localeCompare(b.kind)),
  };
}
