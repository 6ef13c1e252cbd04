/**
 * The `osd` service: a storage node. It needs a Transport and a StoreFactory (blobstore):
 *
 *   fastblockd --plugins tcp,blobstore,osd \
 *     --set osd.monitors=127.0.0.1:7700 --set osd.listen=127.0.0.1:7800 --set osd.dataDir=/var/lib/fastblock/osd
 */
import { TOKENS } from '../../kernel/container.js';
import type { StoreFactory } from '../../kernel/contracts/store.js';
import type { Transport } from '../../kernel/contracts/transport.js';
import { metricsRegistry } from '../../kernel/metrics/registry.js';
import { definePlugin } from '../../kernel/plugin.js';
import { osdConfigSchema, type OsdConfig } from './config.js';
import { registerOsdMetrics } from './osd-metrics.js';
import { OsdService } from './osd-service.js';

export default definePlugin<OsdConfig>({
  name: 'osd',
  kind: 'service',
  version: '0.1.0',
  description: 'OSD: stores PG replicas (raft per PG, one worker thread per shard) on the StoreFactory',
  requires: ['Transport', 'StoreFactory'],
  configSchema: osdConfigSchema,
  register(container, config, { logger, config: all }) {
    const transport = container.resolve<Transport>(TOKENS.Transport);
    const storeFactory = container.resolve<StoreFactory>(TOKENS.StoreFactory);
    const daemon = (all.daemon as { name?: string } | undefined)?.name ?? 'fastblockd';
    const logLevel = (all.log as { level?: string } | undefined)?.level ?? 'info';
    // Each shard thread opens its own store through the same plugin, found by the factory's name.
    const service = new OsdService({ config, transport, storePlugin: config.storePlugin || storeFactory.name, allConfig: all, logger, logLevel, daemonName: daemon });
    registerOsdMetrics(metricsRegistry(container), service);
    return {
      start: () => service.start(),
      stop: () => service.stop(),
    };
  },
});
