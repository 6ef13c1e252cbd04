/**
 * Reading the cluster map straight from the store (etcd), without a monitor: for clients and tools
 * that can reach etcd. Read-only; what it returns is exactly what the monitors committed.
 */
import type { ClusterMap, MetaStore } from '../../kernel/contracts/index.js';
import { DEFAULT_PREFIX, MapRepository } from './map-repository.js';
import { toClusterMap } from './map-state.js';

export async function readClusterMap(store: MetaStore, prefix = DEFAULT_PREFIX): Promise<ClusterMap> {
  return toClusterMap(await new MapRepository(store, prefix).load());
}
