/**
 * Placement and leader-balancing policies. The built-in ones are AssemblyScript compiled to WASM
 * and run sandboxed by plugins/placement; the host validates every output before using it.
 */
import type { OsdInfo, PoolInfo, Replica } from './cluster-map.js';

export interface PlacementInput {
  readonly pool: PoolInfo;
  readonly osds: readonly OsdInfo[];
  /** The mapping in force, indexed by PG index; empty for a new pool. Used for minimal movement. */
  readonly previous: readonly (readonly Replica[])[];
}

export interface PlacementPolicy {
  readonly name: string;
  readonly version: number;
  /** One replica list per PG index, `pool.size` long each (shorter only if too few OSDs are up+in). */
  place(input: PlacementInput): Promise<Replica[][]>;
}

export interface LeaderView {
  readonly pool: number;
  readonly index: number;
  readonly replicas: readonly Replica[];
  /** OSD id of the current leader, or -1 when unknown. */
  readonly leaderOsd: number;
}

export interface LeaderTransfer {
  readonly pool: number;
  readonly index: number;
  readonly toOsd: number;
}

export interface LeaderBalanceInput {
  readonly osds: readonly OsdInfo[];
  readonly pgs: readonly LeaderView[];
  /** Upper bound on transfers returned in one round. */
  readonly maxTransfers: number;
}

export interface LeaderPolicy {
  readonly name: string;
  readonly version: number;
  balance(input: LeaderBalanceInput): Promise<LeaderTransfer[]>;
}
