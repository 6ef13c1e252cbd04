/**
 * Metrics: the daemon's Prometheus registry (prom-client), one per daemon, served as text at
 * /metrics on `metrics.listen` (kernel/metrics/metrics-server.ts). Plugins create prom-client
 * metrics with `registers: [registry]`; names follow Prometheus style with units in them
 * (fastblock_osd_written_bytes_total, fastblock_osd_request_duration_seconds).
 *
 * Code on a per-I/O path must not update labelled metrics (each update hashes its labels): count
 * in plain numbers and let the metric's collect() read them when the registry is scraped.
 */
import type { Registry } from 'prom-client';

export type MetricsRegistry = Registry;
