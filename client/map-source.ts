/**
 * Where the client gets the cluster map. The monitor's subscription client implements it for real
 * clusters; tests may hand a fixed map. The client only needs the newest map it can get, and a
 * way to wait for one at least as new as an epoch an OSD told it about.
 */
import type { ClusterMap } from '../kernel/contracts/cluster-map.js';

export interface ClusterMapSource {
  /** The newest map received so far. */
  current(): ClusterMap;
  /**
   * Resolves with a map whose epoch is at least `minEpoch` (or just a freshly fetched one when
   * omitted). Rejects with TIMEOUT if none arrives within the source's time limit.
   */
  refresh(minEpoch?: number): Promise<ClusterMap>;
  close(): Promise<void>;
}

/** A map that never changes: for tests and tools that read a map once. */
export class StaticMapSource implements ClusterMapSource {
  constructor(private map: ClusterMap) {}
  current(): ClusterMap {
    return this.map;
  }
  async refresh(): Promise<ClusterMap> {
    return this.map;
  }
  /** Replaces the map (tests drive map changes through this). */
  update(map: ClusterMap): void {
    this.map = map;
  }
  async close(): Promise<void> {}
}
