/** `fastblock status`, the cluster part: what a person needs at a glance. */
import { totalUsage, usedRatio, wholePercent } from './capacity.js';
import type { Monitor } from './monitor.js';

export type Health = 'HEALTH_OK' | 'HEALTH_WARN' | 'HEALTH_ERR';

export interface ClusterStatus {
  readonly health: Health;
  readonly problems: readonly string[];
  readonly epoch: number;
  readonly leader: boolean;
  readonly monitor: string;
  readonly flags: { readonly noout: boolean };
  readonly osds: { readonly total: number; readonly up: number; readonly in: number };
  readonly pools: number;
  readonly images: number;
  readonly pgs: { readonly total: number; readonly states: Readonly<Record<string, number>>; readonly degraded: number; readonly unavailable: number };
  readonly policies: readonly { kind: string; name: string; version: number }[];
  /** Raw store space over the OSDs that reported it (leader only; a follower reports none). */
  readonly usage: {
    readonly capacityBytes: number;
    readonly usedBytes: number;
    readonly osdsReporting: number;
    readonly nearFullRatio: number;
    /** OSDs above nearFullRatio, fullest first. */
    readonly nearFull: readonly { readonly osd: number; readonly ratio: number }[];
    readonly slowCommitMs: number;
    /** Up OSDs whose last reported commit latency is past slowCommitMs, slowest first. */
    readonly slowCommit: readonly { readonly osd: number; readonly commitLatencyMs: number }[];
  };
}

export const DEFAULT_NEAR_FULL_RATIO = 0.85;
export const DEFAULT_SLOW_COMMIT_MS = 500;

export function clusterStatus(monitor: Monitor): ClusterStatus {
  const s = monitor.state;
  const osds = [...s.osds.values()];
  const up = new Set(osds.filter((o) => o.up).map((o) => o.id));
  const view = monitor.pgStatus.view();
  const states: Record<string, number> = {};
  let total = 0;
  let degraded = 0;
  let unavailable = 0;
  for (const [poolId, mapping] of s.pgs) {
    const pool = s.pools.get(poolId)!;
    for (const pg of mapping) {
      total++;
      const state = view.get(`${pg.pool}.${pg.index}`)?.state ?? 'unknown';
      states[state] = (states[state] ?? 0) + 1;
      const live = pg.replicas.filter((r) => up.has(r.osd)).length;
      if (live < pool.minSize) unavailable++;
      else if (live < pool.size) degraded++;
    }
  }
  const problems: string[] = [];
  const down = osds.length - up.size;
  const out = osds.filter((o) => !o.in).length;
  if (down > 0) problems.push(`${down} OSD(s) down`);
  if (out > 0) problems.push(`${out} OSD(s) out`);
  if (s.flags.noout) problems.push('noout flag set');
  if (degraded > 0) problems.push(`${degraded} PG(s) degraded`);
  if (unavailable > 0) problems.push(`${unavailable} PG(s) below min_size`);
  const usages = monitor.capacity.list(s.osds);
  const nearFullRatio = monitor.options.nearFullRatio ?? DEFAULT_NEAR_FULL_RATIO;
  const nearFull = usages
    .map((u) => ({ osd: u.osd, ratio: usedRatio(u) }))
    .filter((u) => u.ratio > nearFullRatio)
    .sort((a, b) => b.ratio - a.ratio);
  for (const u of nearFull) problems.push(`osd.${u.osd} is ${wholePercent(u.ratio)}% full`);
  // A disk that takes this long to make a raft log durable holds up every write of the PGs on it
  // (each waits for a flush on its leader and on a follower): the OSD to look at before it fails.
  const slowCommitMs = monitor.options.slowCommitMs ?? DEFAULT_SLOW_COMMIT_MS;
  const slowCommit =
    slowCommitMs === 0
      ? []
      : usages
          .filter((u) => up.has(u.osd))
          .map((u) => ({ osd: u.osd, commitLatencyMs: (u.commitLatencyUs ?? 0) / 1000 }))
          .filter((u) => u.commitLatencyMs > slowCommitMs)
          .sort((a, b) => b.commitLatencyMs - a.commitLatencyMs);
  for (const u of slowCommit) problems.push(`osd.${u.osd} commits slowly (${Math.round(u.commitLatencyMs)} ms per raft log flush)`);
  if (osds.length === 0) problems.push('no OSDs registered');
  const health: Health = unavailable > 0 ? 'HEALTH_ERR' : problems.length > 0 ? 'HEALTH_WARN' : 'HEALTH_OK';
  return {
    health,
    problems,
    epoch: s.epoch,
    leader: monitor.isLeader,
    monitor: monitor.options.id,
    flags: s.flags,
    osds: { total: osds.length, up: up.size, in: osds.filter((o) => o.in).length },
    pools: s.pools.size,
    images: s.images.size,
    pgs: { total, states, degraded, unavailable },
    policies: [...s.policies.values()].map((p) => ({ kind: p.kind, name: p.name, version: p.version })),
    usage: { ...totalUsage(usages), osdsReporting: usages.length, nearFullRatio, nearFull, slowCommitMs, slowCommit },
  };
}
