/**
 * The write-back caches of a gateway (kernel/block/write-back-volume.ts) on /metrics, one series per
 * volume: what is acknowledged and not yet in the cluster, how full each log is, and its retries.
 * Read from each cache's stats() at scrape; nothing is counted on the write path.
 */
import { Counter, Gauge } from 'prom-client';
import { openWriteBackVolumes, type WriteBackStats } from '../block/write-back-volume.js';
import type { MetricsRegistry } from '../contracts/metrics.js';

const registered = new WeakSet<MetricsRegistry>();

/** Registers the write-back metrics once per registry (every frontend calls it). */
export function registerWriteBackMetrics(registry: MetricsRegistry): void {
  if (registered.has(registry)) return;
  registered.add(registry);
  const gauge = (name: string, help: string, of: (stats: WriteBackStats) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['volume'],
      registers: [registry],
      collect() {
        this.reset();
        for (const volume of openWriteBackVolumes) this.set({ volume: volume.name }, of(volume.stats()));
      },
    });
  };
  gauge('fastblock_write_back_dirty_bytes', 'Bytes a write-back cache acknowledged that are not in the cluster yet', (s) => s.dirtyBytes);
  gauge('fastblock_write_back_log_used_bytes', "Bytes of a write-back log's ring in use (records not yet known written back, with their headers)", (s) => s.usedBytes);
  gauge('fastblock_write_back_log_capacity_bytes', "Bytes of a write-back log's ring", (s) => s.capacityBytes);
  gauge('fastblock_write_back_in_flight', 'Write-backs of a write-back cache in flight to the cluster', (s) => s.inFlight);
  new Counter({
    name: 'fastblock_write_back_retries_total',
    help: 'Write-backs that failed and were retried, since the cache was opened',
    labelNames: ['volume'],
    registers: [registry],
    collect() {
      this.reset();
      for (const volume of openWriteBackVolumes) this.inc({ volume: volume.name }, volume.stats().retries);
    },
  });
  new Counter({
    name: 'fastblock_write_back_absorbed_total',
    help: 'Writes a write-back cache let go unwritten, since it was opened: a later write covered them while they waited',
    labelNames: ['volume'],
    registers: [registry],
    collect() {
      this.reset();
      for (const volume of openWriteBackVolumes) this.inc({ volume: volume.name }, volume.stats().absorbed);
    },
  });
}
