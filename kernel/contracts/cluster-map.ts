/**
 * The cluster map as the monitor keeps it and distributes it. Plain data: it is stored in the
 * MetaStore, sent to OSDs and clients, and given to placement policies.
 */
import type { NetAddress } from './transport.js';

export interface OsdInfo {
  readonly id: number;
  readonly address: NetAddress;
  /** Number of shards (one per core); replicas of a PG use the same shard id on every OSD. */
  readonly shards: number;
  /** Host name; also the default failure domain. */
  readonly host: string;
  readonly failureDomain: string;
  /** Relative capacity; PGs are spread in proportion. */
  readonly weight: number;
  readonly up: boolean;
  readonly in: boolean;
  /** Wall-clock milliseconds of the last heartbeat the monitor received. */
  readonly lastHeartbeatMs: number;
}

export interface PoolInfo {
  readonly id: number;
  readonly name: string;
  /** Replicas per PG. */
  readonly size: number;
  /** Replicas that must be up for I/O. */
  readonly minSize: number;
  readonly pgNum: number;
  /** "host" or "osd": replicas never share one of these when the cluster has enough of them. */
  readonly failureDomain: 'host' | 'osd';
}

/** One replica of a PG: an OSD and the shard on it. */
export interface Replica {
  readonly osd: number;
  readonly shard: number;
}

export interface PgMapping {
  readonly pool: number;
  readonly index: number;
  /** Ordered replicas; the first is the preferred leader. */
  readonly replicas: readonly Replica[];
  /** The map epoch at which this mapping last changed. */
  readonly epoch: number;
}

export interface ImageInfo {
  readonly id: string;
  readonly pool: number;
  readonly name: string;
  readonly sizeBytes: number;
  readonly objectSizeBytes: number;
  readonly createdMs: number;
}

export interface PolicyInfo {
  readonly kind: 'placement' | 'leader';
  readonly name: string;
  readonly version: number;
  /** Hex SHA-256 of the wasm bytes. */
  readonly sha256: string;
}

export interface ClusterMap {
  readonly epoch: number;
  readonly osds: readonly OsdInfo[];
  readonly pools: readonly PoolInfo[];
  readonly pgs: readonly PgMapping[];
  readonly images: readonly ImageInfo[];
  readonly policies: readonly PolicyInfo[];
}
