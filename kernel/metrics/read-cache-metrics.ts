/**
 * The read caches of a gateway's writeback exports (kernel/block/read-cache-volume.ts) on
 * /metrics, one series per volume: hits, misses, misses kept out of the cache by a concurrent
 * change, and how full it is. Read from each cache's stats at scrape; nothing is counted here on
 * the read path.
 */
import { Counter, Gauge } from 'prom-client';
import { openReadCaches, type ReadCacheStats } from '../block/read-cache-volume.js';
import type { MetricsRegistry } from '../contracts/metrics.js';

const registered = new WeakSet<MetricsRegistry>();

/** Registers the read-cache metrics once per registry (every frontend calls it). */
export function registerReadCacheMetrics(registry: MetricsRegistry): void {
  if (registered.has(registry)) return;
  registered.add(registry);
  const series = (kind: 'counter' | 'gauge', name: string, help: string, of: (stats: ReadCacheStats) => number): void => {
    const config = {
      name,
      help,
      labelNames: ['volume'] as const,
      registers: [registry],
      collect(this: Counter<'volume'> | Gauge<'volume'>): void {
        this.reset();
        for (const cache of openReadCaches) {
          if (this instanceof Counter) this.inc({ volume: cache.name }, of(cache.stats));
          else this.set({ volume: cache.name }, of(cache.stats));
        }
      },
    };
    if (kind === 'counter') new Counter(config);
    else new Gauge(config);
  };
  series('counter', 'fastblock_read_cache_hits_total', "Reads a writeback export served from its gateway's read cache", (s) => s.hits);
  series('counter', 'fastblock_read_cache_misses_total', 'Reads of a writeback export that went to the cluster', (s) => s.misses);
  series('counter', 'fastblock_read_cache_raced_total', 'Misses not cached because a write over their range was in flight meanwhile', (s) => s.raced);
  series('gauge', 'fastblock_read_cache_bytes', "Bytes of a read cache's blocks in use", (s) => s.cachedBlocks * s.blockBytes);
  series('gauge', 'fastblock_read_cache_capacity_bytes', 'Bytes a read cache may hold', (s) => s.capacityBlocks * s.blockBytes);
}
