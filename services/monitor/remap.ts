/**
 * Runs the placement policy over pools and turns its answer into PG mappings that keep their epoch
 * where nothing changed. A policy failure leaves that pool's mapping as it was (and is reported).
 */
import type { PgMapping, PlacementPolicy, PoolInfo, Replica } from '../../kernel/contracts/index.js';
import { publicOsd, type MonitorState } from './map-state.js';

export interface RemapResult {
  readonly pgs: Map<number, PgMapping[]>;
  readonly failures: { pool: string; error: Error }[];
}

function sameReplicas(a: readonly Replica[], b: readonly Replica[]): boolean {
  return a.length === b.length && a.every((r, i) => r.osd === b[i].osd && r.shard === b[i].shard);
}

export function toMappings(pool: PoolInfo, placed: readonly (readonly Replica[])[], old: readonly PgMapping[] | undefined, epoch: number): PgMapping[] {
  return placed.map((replicas, index) => {
    const before = old?.[index];
    return before && sameReplicas(before.replicas, replicas) ? before : { pool: pool.id, index, replicas: [...replicas], epoch };
  });
}

export async function remap(
  policy: PlacementPolicy,
  state: MonitorState,
  osds: MonitorState['osds'],
  pools: readonly PoolInfo[],
  epoch: number,
): Promise<RemapResult> {
  const osdList = [...osds.values()].map(publicOsd);
  const pgs = new Map<number, PgMapping[]>();
  const failures: { pool: string; error: Error }[] = [];
  for (const pool of pools) {
    const old = state.pgs.get(pool.id);
    try {
      const placed = await policy.place({ pool, osds: osdList, previous: old?.map((pg) => pg.replicas) ?? [] });
      const mapping = toMappings(pool, placed, old, epoch);
      if (!old || mapping.some((pg, i) => pg !== old[i]) || mapping.length !== old.length) pgs.set(pool.id, mapping);
    } catch (error) {
      failures.push({ pool: pool.name, error: error as Error });
    }
  }
  return { pgs, failures };
}
