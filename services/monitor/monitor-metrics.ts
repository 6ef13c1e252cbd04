/**
 * The monitor's Prometheus metrics, read from the cluster summary (status.ts) when scraped. Every
 * monitor reports the map it holds (epoch, OSDs, PG mapping); PG states and store usage come from
 * heartbeats, which only the leader receives: scrape every monitor and keep the series whose
 * fastblock_monitor_leader is 1, or use max() over them.
 */
import { Gauge } from 'prom-client';
import type { MetricsRegistry } from '../../kernel/contracts/metrics.js';
import type { Monitor } from './monitor.js';
import { clusterStatus, type ClusterStatus } from './status.js';

const HEALTH_LEVEL = { HEALTH_OK: 0, HEALTH_WARN: 1, HEALTH_ERR: 2 } as const;

export function registerMonitorMetrics(registry: MetricsRegistry, monitor: () => Monitor | undefined): void {
  // A scrape runs every collect() in one synchronous pass: they share one summary, dropped after.
  let current: ClusterStatus | undefined;
  const summary = (): ClusterStatus | undefined => {
    const m = monitor();
    if (!m) return undefined;
    if (!current) {
      current = clusterStatus(m);
      setImmediate(() => (current = undefined));
    }
    return current;
  };
  const gauge = <T extends string>(name: string, help: string, labelNames: readonly T[], values: (s: ClusterStatus, m: Monitor, set: (labels: Partial<Record<T, string>>, value: number) => void) => void): void => {
    new Gauge<T>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        const s = summary();
        if (s) values(s, monitor()!, (labels, value) => this.set(labels, value));
      },
    });
  };

  gauge('fastblock_monitor_leader', '1 on the leader monitor, 0 on the others', [], (s, _m, set) => set({}, s.leader ? 1 : 0));
  gauge('fastblock_cluster_map_epoch', 'Epoch of the cluster map this monitor holds', [], (s, _m, set) => set({}, s.epoch));
  gauge('fastblock_cluster_health', 'Cluster health: 0 HEALTH_OK, 1 HEALTH_WARN, 2 HEALTH_ERR', [], (s, _m, set) => set({}, HEALTH_LEVEL[s.health]));
  gauge('fastblock_cluster_osds', 'OSDs in the map, by state: "up", "in", and all of them ("total")', ['state'], (s, _m, set) => {
    set({ state: 'total' }, s.osds.total);
    set({ state: 'up' }, s.osds.up);
    set({ state: 'in' }, s.osds.in);
  });
  gauge('fastblock_cluster_pgs', 'PGs by state as their leaders report it ("unknown": no report, or not the leader monitor)', ['state'], (s, _m, set) => {
    for (const [state, n] of Object.entries(s.pgs.states)) set({ state }, n);
  });
  gauge('fastblock_cluster_pgs_degraded', 'PGs with fewer live replicas than the pool size', [], (s, _m, set) => set({}, s.pgs.degraded));
  gauge('fastblock_cluster_pgs_unavailable', 'PGs with fewer live replicas than min_size (no I/O)', [], (s, _m, set) => set({}, s.pgs.unavailable));
  gauge('fastblock_cluster_capacity_bytes', 'Raw store space over the OSDs that reported it (leader only)', [], (s, _m, set) => set({}, s.usage.capacityBytes));
  gauge('fastblock_cluster_used_bytes', 'Raw store space used over the OSDs that reported it (leader only)', [], (s, _m, set) => set({}, s.usage.usedBytes));
  gauge('fastblock_cluster_osd_used_ratio', 'How full each OSD\'s store is, 0..1, from its last heartbeat (leader only)', ['osd'], (s, m, set) => {
    for (const u of m.capacity.list(m.state.osds)) set({ osd: String(u.osd) }, u.usedBytes / u.capacityBytes);
  });
}
