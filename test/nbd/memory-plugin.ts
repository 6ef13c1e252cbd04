/**
 * A plugin that provides in-memory volumes as the BlockVolumeProvider, so a real `fastblockd`
 * can run the `nbd` plugin exactly as a gateway does, without a cluster:
 *
 *   fastblockd --plugins ./test/nbd/memory-plugin.ts,nbd --set memory-volumes.volumes=pool/a:64M
 *
 * Test use only: nothing is durable.
 */
import { TOKENS } from '../../kernel/container.js';
import { definePlugin } from '../../kernel/plugin.js';
import { MemoryVolumeProvider } from '../support/memory-volume.js';

interface MemoryVolumesConfig {
  /** "pool/image:SIZE_MIB" entries. */
  readonly volumes: readonly string[];
}

export default definePlugin<MemoryVolumesConfig>({
  name: 'memory-volumes',
  kind: 'extension',
  version: '0.1.0',
  description: 'In-memory block volumes for tests (BlockVolumeProvider)',
  provides: ['BlockVolumeProvider'],
  configSchema: {
    volumes: { doc: 'volumes to create, "pool/image:SIZE_MIB"', format: Array, default: [] },
  },
  register(container, config) {
    const provider = new MemoryVolumeProvider();
    for (const entry of config.volumes) {
      const [name, mib] = entry.split(':');
      provider.create(name!, Number(mib) * 1024 * 1024);
    }
    container.register(TOKENS.BlockVolumeProvider, { useValue: provider });
  },
});
