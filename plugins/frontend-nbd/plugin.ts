/**
 * The `nbd` plugin: exports block volumes over NBD. It needs a BlockVolumeProvider (the client
 * library in a gateway) and provides a Frontend.
 *
 *   fastblockd --plugins tcp,nbd --set nbd.port=10809 --set nbd.exports=rbd/vm1
 */
import type { BlockVolumeProvider } from '../../kernel/contracts/block.js';
import { TOKENS } from '../../kernel/container.js';
import { definePlugin } from '../../kernel/plugin.js';
import { nbdConfigSchema, type NbdConfig } from './config.js';
import { NbdFrontend } from './frontend.js';

export default definePlugin<NbdConfig>({
  name: 'nbd',
  kind: 'frontend',
  version: '0.1.0',
  description: 'Frontend: export images over NBD (fixed newstyle, structured replies, multi-conn)',
  provides: ['Frontend'],
  requires: ['BlockVolumeProvider'],
  configSchema: nbdConfigSchema,
  register(container, config, { logger }) {
    const provider = container.resolve<BlockVolumeProvider>(TOKENS.BlockVolumeProvider);
    const frontend = new NbdFrontend(provider, config, logger);
    container.register(TOKENS.Frontend, { useValue: frontend });
    return {
      start: async () => {
        await frontend.start();
      },
      stop: () => frontend.stop(),
    };
  },
});
