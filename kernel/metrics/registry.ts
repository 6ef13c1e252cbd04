/**
 * The daemon's metrics registry: created by the plugin host, bound under TOKENS.Metrics, served by
 * metrics-server.ts when metrics.listen is set. Process figures (CPU seconds, memory, event loop
 * lag, GC) are added only when served: they run timers and observers of their own.
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { TOKENS, type DependencyContainer } from '../container.js';
import type { MetricsRegistry } from '../contracts/metrics.js';

export function createMetricsRegistry(): MetricsRegistry {
  return new Registry();
}

/** The registry a plugin registers into; one that nobody serves when the kernel bound none (tests). */
export function metricsRegistry(container: DependencyContainer): MetricsRegistry {
  return container.isRegistered(TOKENS.Metrics, true) ? container.resolve<MetricsRegistry>(TOKENS.Metrics) : createMetricsRegistry();
}

export function addProcessMetrics(registry: MetricsRegistry, daemon: { readonly name: string; readonly version: string; readonly plugins: readonly string[] }): void {
  collectDefaultMetrics({ register: registry });
  const info = new Gauge({
    name: 'fastblock_daemon_info',
    help: 'Always 1; the labels say which daemon this is: its name, fastblock version and plugins',
    labelNames: ['daemon', 'version', 'plugins'],
    registers: [registry],
  });
  info.set({ daemon: daemon.name, version: daemon.version, plugins: daemon.plugins.join(',') }, 1);
}
