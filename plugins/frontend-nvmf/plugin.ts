/**
 * The `nvmf` plugin: an NVMe/TCP target exporting block volumes as NVMe namespaces to Linux kernel
 * initiators (`nvme connect -t tcp`). It needs a BlockVolumeProvider (the client library on a
 * gateway) and provides a Frontend and the `nvmf create|ls|rm` admin commands.
 *
 *   fastblockd --plugins tcp,nvmf --set nvmf.port=4420 --set nvmf.exports=rbd/disk0
 *   fastblockd --plugins tcp,nvmf --set nvmf.exports=rbd/disk0:writeback   (write-back cache, docs/nvmf.md)
 */
import type { BlockVolumeProvider } from '../../kernel/contracts/block.js';
import { TOKENS } from '../../kernel/container.js';
import { meteredVolumes } from '../../kernel/metrics/metered-volumes.js';
import { metricsRegistry } from '../../kernel/metrics/registry.js';
import { definePlugin } from '../../kernel/plugin.js';
import type { AdminCommands } from '../../kernel/rpc/admin-commands.js';
import { nvmfAdminCommands } from './admin.js';
import { nvmfConfigSchema, parseExportEntry, targetOptions, type NvmfConfig } from './config.js';
import { NvmfTarget } from './target.js';

export default definePlugin<NvmfConfig>({
  name: 'nvmf',
  kind: 'frontend',
  version: '0.1.0',
  description: 'Frontend: NVMe over TCP target',
  provides: ['Frontend'],
  requires: ['BlockVolumeProvider', 'AdminCommands'],
  configSchema: nvmfConfigSchema,
  register(container, config, { logger, kernelVersion }) {
    const provider = meteredVolumes(container.resolve<BlockVolumeProvider>(TOKENS.BlockVolumeProvider), metricsRegistry(container), 'nvmf');
    const admin = container.resolve<AdminCommands>(TOKENS.AdminCommands);
    // Every entry is parsed before any export opens: a bad one refuses the start as a whole.
    const entries = config.exports.map(parseExportEntry);
    // The firmware revision hosts see (FR, firmware slot log) is fastblock's version.
    const target = new NvmfTarget(provider, logger, { ...targetOptions(config), firmware: kernelVersion.slice(0, 8) });
    container.register(TOKENS.Frontend, { useValue: target });
    let unregister: (() => void)[] = [];
    return {
      start: async () => {
        await target.start();
        try {
          for (const entry of entries) {
            const options = { ...(entry.nqn ? { nqn: entry.nqn } : {}), ...(entry.cache ? { cache: entry.cache } : {}) };
            await target.createExport({ volume: entry.volume, options });
          }
        } catch (err) {
          await target.stop();
          throw err;
        }
        unregister = nvmfAdminCommands(target).map((command) => admin.register(command));
      },
      // Removing the exports drains writeback logs (the daemon waits daemon.stopTimeoutMs for it,
      // then exits with the log in place for the next start to replay).
      stop: async () => {
        for (const remove of unregister) remove();
        await target.stop();
      },
    };
  },
});
