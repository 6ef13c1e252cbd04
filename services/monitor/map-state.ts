/**
 * The monitor's view of the cluster: an immutable snapshot per epoch. A change is described as a
 * MapChange (what to upsert or remove) and applied to a snapshot to make the next one; the
 * repository writes the same change to the MetaStore in one transaction, so memory and store never
 * disagree on what an epoch holds.
 *
 * Epoch rule: every committed change bumps the epoch by exactly one; a PG mapping carries the epoch
 * at which it last changed. Heartbeat times are not map state and never bump the epoch.
 */
import type { ClusterMap, ImageInfo, OsdInfo, PgMapping, PolicyInfo, PoolInfo } from '../../kernel/contracts/index.js';
import { assert } from '../../kernel/errors.js';

export type PolicyKind = PolicyInfo['kind'];

/** An OSD as the monitor keeps it: the public OsdInfo plus what only the monitor needs. */
export interface OsdRecord extends OsdInfo {
  /** Identity the OSD keeps on its disk with its id; a re-boot with the same uuid gets the same id. */
  readonly uuid: string;
  /** Marked out by the monitor (not by an operator): it comes back in when it boots again. */
  readonly autoOut: boolean;
}

export interface ClusterFlags {
  /** Maintenance: down OSDs are not marked out. */
  readonly noout: boolean;
}

export interface MonitorState {
  readonly epoch: number;
  readonly flags: ClusterFlags;
  readonly nextOsdId: number;
  readonly nextPoolId: number;
  readonly osds: ReadonlyMap<number, OsdRecord>;
  readonly pools: ReadonlyMap<number, PoolInfo>;
  /** Pool id -> mapping indexed by PG index. */
  readonly pgs: ReadonlyMap<number, readonly PgMapping[]>;
  readonly images: ReadonlyMap<string, ImageInfo>;
  readonly policies: ReadonlyMap<PolicyKind, PolicyInfo>;
}

export interface MapChange {
  readonly flags?: ClusterFlags;
  readonly nextOsdId?: number;
  readonly nextPoolId?: number;
  readonly osds?: readonly OsdRecord[];
  readonly removeOsds?: readonly number[];
  readonly pools?: readonly PoolInfo[];
  readonly removePools?: readonly number[];
  /** Whole pool mappings; entries whose replicas did not change keep their epoch. */
  readonly pgs?: ReadonlyMap<number, readonly PgMapping[]>;
  readonly images?: readonly ImageInfo[];
  readonly removeImages?: readonly string[];
  readonly policies?: readonly PolicyInfo[];
}

export const EMPTY_STATE: MonitorState = {
  epoch: 0,
  flags: { noout: false },
  nextOsdId: 0,
  nextPoolId: 1,
  osds: new Map(),
  pools: new Map(),
  pgs: new Map(),
  images: new Map(),
  policies: new Map(),
};

export function applyChange(state: MonitorState, change: MapChange, epoch: number): MonitorState {
  assert(epoch === state.epoch + 1, `epoch ${epoch} does not follow ${state.epoch}`);
  const osds = new Map(state.osds);
  for (const osd of change.osds ?? []) osds.set(osd.id, osd);
  for (const id of change.removeOsds ?? []) osds.delete(id);
  const pools = new Map(state.pools);
  for (const pool of change.pools ?? []) pools.set(pool.id, pool);
  const pgs = new Map(state.pgs);
  for (const [pool, mapping] of change.pgs ?? []) pgs.set(pool, mapping);
  for (const id of change.removePools ?? []) {
    pools.delete(id);
    pgs.delete(id);
  }
  const images = new Map(state.images);
  for (const image of change.images ?? []) images.set(image.id, image);
  for (const id of change.removeImages ?? []) images.delete(id);
  const policies = new Map(state.policies);
  for (const policy of change.policies ?? []) policies.set(policy.kind, policy);
  return {
    epoch,
    flags: change.flags ?? state.flags,
    nextOsdId: change.nextOsdId ?? state.nextOsdId,
    nextPoolId: change.nextPoolId ?? state.nextPoolId,
    osds,
    pools,
    pgs,
    images,
    policies,
  };
}

export function publicOsd(osd: OsdRecord): OsdInfo {
  const { uuid: _uuid, autoOut: _autoOut, ...info } = osd;
  return info;
}

export function toClusterMap(state: MonitorState): ClusterMap {
  return {
    epoch: state.epoch,
    osds: [...state.osds.values()].sort((a, b) => a.id - b.id).map(publicOsd),
    pools: [...state.pools.values()].sort((a, b) => a.id - b.id),
    pgs: [...state.pgs.keys()].sort((a, b) => a - b).flatMap((pool) => state.pgs.get(pool)!),
    images: [...state.images.values()].sort((a, b) => a.pool - b.pool || a.name.localeCompare(b.name)),
    policies: [...state.policies.values()].sort((a, b) => a.kind.localeCompare(b.kind)),
  };
}

/** True when nothing in `change` differs from `state` (the change need not be committed). */
export function isNoop(change: MapChange): boolean {
  return Object.values(change).every((v) => v === undefined || (Array.isArray(v) && v.length === 0) || (v instanceof Map && v.size === 0));
}
