/**
 * The `vhost` plugin: serves block volumes to local QEMU virtual machines as vhost-user-blk disks.
 * It needs a BlockVolumeProvider (the client library on a node) and provides a Frontend and the
 * `vhost create|ls|rm` admin commands.
 *
 *   fastblockd --plugins tcp,blobstore,vhost --set vhost.controllers=rbd/vm1=/run/fastblock/vm1.sock:2
 */
import type { BlockVolumeProvider } from '../../kernel/contracts/block.js';
import { TOKENS } from '../../kernel/container.js';
import { meteredVolumes } from '../../kernel/metrics/metered-volumes.js';
import { metricsRegistry } from '../../kernel/metrics/registry.js';
import { definePlugin } from '../../kernel/plugin.js';
import type { AdminCommands } from '../../kernel/rpc/admin-commands.js';
import { vhostAdminCommands } from './admin.js';
import { vhostConfigSchema, type VhostConfig } from './config.js';
import { VhostFrontend } from './frontend.js';

export default definePlugin<VhostConfig>({
  name: 'vhost',
  kind: 'frontend',
  version: '0.1.0',
  description: 'Frontend: vhost-user-blk back-end for QEMU virtual machines',
  provides: ['Frontend'],
  requires: ['BlockVolumeProvider', 'AdminCommands'],
  configSchema: vhostConfigSchema,
  register(container, config, { logger }) {
    const provider = meteredVolumes(container.resolve<BlockVolumeProvider>(TOKENS.BlockVolumeProvider), metricsRegistry(container), 'vhost');
    const admin = container.resolve<AdminCommands>(TOKENS.AdminCommands);
    const frontend = new VhostFrontend(provider, config, logger);
    container.register(TOKENS.Frontend, { useValue: frontend });
    let unregister: (() => void)[] = [];
    return {
      start: async () => {
        await frontend.start();
        unregister = vhostAdminCommands(frontend).map((command) => admin.register(command));
      },
      stop: async () => {
        for (const remove of unregister) remove();
        await frontend.stop();
      },
    };
  },
});
