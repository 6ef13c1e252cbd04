/**
 * What a placement policy would do to the cluster if it were put in force: run it on every pool
 * with the current mapping as `previous`, validate, and count the PGs that would move and the
 * balance before and after. Nothing is changed.
 */
import type { OsdInfo, PlacementPolicy, PoolInfo, Replica } from '../../kernel/contracts/index.js';

export interface Balance {
  /** PGs on the fullest up+in OSD over the mean; 1.0 is perfect. */
  readonly maxOverMean: number;
  readonly minPgsPerOsd: number;
  readonly maxPgsPerOsd: number;
}

export interface PoolDryRun {
  readonly pool: string;
  readonly pgNum: number;
  readonly pgsMoved: number;
  readonly before: Balance;
  readonly after: Balance;
}

export interface DryRunReport {
  readonly pools: readonly PoolDryRun[];
  readonly pgsMoved: number;
  /** The proposed mappings, by pool id, ready to be activated. */
  readonly mappings: ReadonlyMap<number, Replica[][]>;
}

export function balanceOf(mapping: readonly (readonly Replica[])[], osds: readonly OsdInfo[]): Balance {
  const live = osds.filter((o) => o.up && o.in);
  const counts = new Map<number, number>(live.map((o) => [o.id, 0]));
  let total = 0;
  for (const replicas of mapping) {
    for (const r of replicas) {
      total++;
      if (counts.has(r.osd)) counts.set(r.osd, counts.get(r.osd)! + 1);
    }
  }
  const values = [...counts.values()];
  if (values.length === 0 || total === 0) return { maxOverMean: 0, minPgsPerOsd: 0, maxPgsPerOsd: 0 };
  const max = Math.max(...values);
  return { maxOverMean: +(max / (total / values.length)).toFixed(4), minPgsPerOsd: Math.min(...values), maxPgsPerOsd: max };
}

export function samePlacement(a: readonly Replica[] | undefined, b: readonly Replica[]): boolean {
  if (a === undefined || a.length !== b.length) return false;
  return a.every((r, i) => r.osd === b[i].osd && r.shard === b[i].shard);
}

export async function dryRun(
  policy: PlacementPolicy,
  pools: readonly PoolInfo[],
  osds: readonly OsdInfo[],
  current: (pool: PoolInfo) => readonly (readonly Replica[])[],
): Promise<DryRunReport> {
  const reports: PoolDryRun[] = [];
  const mappings = new Map<number, Replica[][]>();
  let total = 0;
  for (const pool of pools) {
    const previous = current(pool);
    const proposed = await policy.place({ pool, osds, previous });
    let moved = 0;
    for (let pg = 0; pg < proposed.length; pg++) {
      const before = new Set((previous[pg] ?? []).map((r) => `${r.osd}/${r.shard}`));
      if (proposed[pg].length !== before.size || proposed[pg].some((r) => !before.has(`${r.osd}/${r.shard}`))) moved++;
    }
    total += moved;
    mappings.set(pool.id, proposed);
    reports.push({ pool: pool.name, pgNum: pool.pgNum, pgsMoved: moved, before: balanceOf(previous, osds), after: balanceOf(proposed, osds) });
  }
  return { pools: reports, pgsMoved: total, mappings };
}
