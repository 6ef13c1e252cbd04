/**
 * The `monitor` plugin: the cluster map on etcd (several monitors, one leader) or in a local file
 * (one monitor), served over the daemon's control address.
 *
 *   fastblockd --plugins tcp,monitor --listen 127.0.0.1:7700 --set monitor.etcd=http://127.0.0.1:2379
 */
import { join } from 'node:path';
import { parseAddress } from '../../kernel/address.js';
import type { MetaStore, OsdInfo, Transport } from '../../kernel/contracts/index.js';
import { TOKENS } from '../../kernel/container.js';
import { metricsRegistry } from '../../kernel/metrics/registry.js';
import { definePlugin } from '../../kernel/plugin.js';
import type { AdminCommands } from '../../kernel/rpc/admin-commands.js';
import { call } from '../../kernel/rpc/rpc-client.js';
import type { RpcServer } from '../../kernel/rpc/rpc-server.js';
import { registerMonitorCommands } from './admin.js';
import { checkMonitorConfig, monitorConfigSchema, type MonitorConfig } from './config.js';
import { Monitor } from './monitor.js';
import { registerMonitorMetrics } from './monitor-metrics.js';
import { MonitorMethods } from './protocol.js';
import { serveMonitor } from './rpc-service.js';
import { EmbeddedMetaStore } from './store/embedded-store.js';
import { EtcdMetaStore } from './store/etcd-store.js';

export default definePlugin<MonitorConfig>({
  name: 'monitor',
  kind: 'service',
  version: '0.1.0',
  description: 'Monitor: the cluster map (OSDs, pools, PGs, images, policies) in etcd or a local file',
  provides: ['MetaStore'],
  requires: ['Transport', 'RpcServer', 'AdminCommands'],
  configSchema: monitorConfigSchema,
  register(container, config, { logger, config: all }) {
    checkMonitorConfig(config);
    const daemon = all.daemon as { listen: string };
    const advertise = config.advertise || daemon.listen;
    parseAddress(advertise, 'monitor.advertise (or daemon.listen)');
    const endpoints = config.etcd.split(',').map((s) => s.trim()).filter(Boolean);
    // Bound now (no I/O yet) so plugins registered after this one can resolve the MetaStore.
    const embedded = endpoints.length === 0 ? new EmbeddedMetaStore(join(config.dataDir, 'monitor-meta.json')) : undefined;
    const store: MetaStore = embedded ?? new EtcdMetaStore({ endpoints, electionTtlS: config.electionTtlS });
    container.registerInstance(TOKENS.MetaStore, store);
    let monitor: Monitor | undefined;
    registerMonitorMetrics(metricsRegistry(container), () => monitor);
    let stopService: (() => void) | undefined;
    let stopCommands: (() => void) | undefined;
    return {
      start: async () => {
        await embedded?.load();
        const transport = container.resolve<Transport>(TOKENS.Transport);
        monitor = new Monitor({
          store,
          prefix: config.prefix,
          id: advertise,
          times: { downAfterMs: config.downAfterMs, outAfterMs: config.outAfterMs },
          tickMs: config.tickMs,
          leaderBalance: { intervalMs: config.leaderBalanceIntervalMs, transfersPerRound: config.leaderTransfersPerRound },
          policyLimits: { timeoutMs: config.policyTimeoutMs, memoryPages: config.policyMemoryMb * 16 },
          nearFullRatio: config.nearFullRatio,
          slowCommitMs: config.slowCommitMs,
          fullRatio: config.fullRatio,
          logger,
          transferLeader: async (leader: OsdInfo, transfer) => {
            await call(transport.connect({ address: leader.address, shard: 0 }), MonitorMethods.TransferLeader, {
              pool: transfer.pool,
              index: transfer.index,
              toOsd: transfer.toOsd,
              epoch: monitor!.state.epoch,
            });
          },
        });
        stopService = serveMonitor(container.resolve<RpcServer>(TOKENS.RpcServer), monitor).stop;
        stopCommands = registerMonitorCommands(container.resolve<AdminCommands>(TOKENS.AdminCommands), monitor);
        await monitor.start();
        logger.info({ store: store.kind, advertise, epoch: monitor.state.epoch }, 'monitor started');
      },
      stop: async () => {
        stopCommands?.();
        stopService?.();
        await monitor?.stop();
        await store.close();
      },
    };
  },
});
