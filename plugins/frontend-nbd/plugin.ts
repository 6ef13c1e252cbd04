/**
 * The `nbd` plugin: exports block volumes over NBD. It needs a BlockVolumeProvider (the client
 * library in a gateway) and provides a Frontend and the `nbd create|ls|rm` admin commands.
 *
 *   fastblockd --plugins tcp,nbd --set nbd.port=10809 --set nbd.exports=rbd/vm1
 */
import type { BlockVolumeProvider } from '../../kernel/contracts/block.js';
import { TOKENS } from '../../kernel/container.js';
import { meteredVolumes } from '../../kernel/metrics/metered-volumes.js';
import { metricsRegistry } from '../../kernel/metrics/registry.js';
import { definePlugin } from '../../kernel/plugin.js';
import type { AdminCommands } from '../../kernel/rpc/admin-commands.js';
import { nbdAdminCommands } from './admin.js';
import { nbdConfigSchema, type NbdConfig } from './config.js';
import { NbdFrontend } from './frontend.js';

export default definePlugin<NbdConfig>({
  name: 'nbd',
  kind: 'frontend',
  version: '0.1.0',
  description: 'Frontend: export images over NBD (fixed newstyle, structured replies, multi-conn)',
  provides: ['Frontend'],
  requires: ['BlockVolumeProvider', 'AdminCommands'],
  configSchema: nbdConfigSchema,
  register(container, config, { logger }) {
    const provider = meteredVolumes(container.resolve<BlockVolumeProvider>(TOKENS.BlockVolumeProvider), metricsRegistry(container), 'nbd');
    const admin = container.resolve<AdminCommands>(TOKENS.AdminCommands);
    const frontend = new NbdFrontend(provider, config, logger);
    container.register(TOKENS.Frontend, { useValue: frontend });
    let unregister: Array<() => void> = [];
    return {
      start: async () => {
        await frontend.start();
        unregister = nbdAdminCommands(frontend).map((command) => admin.register(command));
      },
      stop: async () => {
        for (const remove of unregister) remove();
        await frontend.stop();
      },
    };
  },
});
