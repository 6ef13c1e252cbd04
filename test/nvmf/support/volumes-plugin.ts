/**
 * A test plugin for fastblockd: in-memory volumes as the BlockVolumeProvider, plus an admin command
 * that lets a test read what a volume holds through the daemon's control RPC, so the guest's view
 * (through NVMe/TCP) can be compared with the volume's own:
 *
 *   fastblockd --plugins tcp,./test/nvmf/support/volumes-plugin.ts,nvmf --set nvmf-test-volumes.volumes=rbd/a:64
 *
 * Test use only: nothing is durable.
 */
import { createHash } from 'node:crypto';
import { TOKENS } from '../../../kernel/container.js';
import { ErrorCode, FastblockError } from '../../../kernel/errors.js';
import { definePlugin } from '../../../kernel/plugin.js';
import type { AdminArgs, AdminCommands } from '../../../kernel/rpc/admin-commands.js';
import { MemoryVolumeProvider } from '../../support/memory-volume.js';

interface VolumesConfig {
  /** "pool/image:SIZE_MIB" entries. */
  readonly volumes: readonly string[];
}

function count(args: AdminArgs, key: string): number {
  const value = args[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `${key} must be a non-negative integer`, { [key]: value });
  return value;
}

export default definePlugin<VolumesConfig>({
  name: 'nvmf-test-volumes',
  kind: 'extension',
  version: '0.1.0',
  description: 'In-memory block volumes and a digest command, for the NVMe/TCP suites',
  provides: ['BlockVolumeProvider'],
  requires: ['AdminCommands'],
  configSchema: { volumes: { doc: 'volumes to create, "pool/image:SIZE_MIB"', format: Array, default: [] } },
  register(container, config) {
    const provider = new MemoryVolumeProvider();
    for (const entry of config.volumes) {
      const [name, mib] = entry.split(':');
      provider.create(name!, Number(mib) * 1024 * 1024);
    }
    container.register(TOKENS.BlockVolumeProvider, { useValue: provider });
    const admin = container.resolve<AdminCommands>(TOKENS.AdminCommands);
    let unregister = (): void => undefined;
    return {
      start: () => {
        unregister = admin.register({
          name: 'test-volume digest',
          summary: 'md5 of a byte range of a volume, and whether it is all zeroes: { volume, offset, length }',
          run: async (args) => {
            if (typeof args.volume !== 'string') throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'volume must be a string');
            const volume = await provider.open(args.volume);
            try {
              const bytes = await volume.read(count(args, 'offset'), count(args, 'length'));
              return { md5: createHash('md5').update(bytes).digest('hex'), zero: bytes.every((b) => b === 0) };
            } finally {
              await volume.close();
            }
          },
        });
      },
      stop: () => unregister(),
    };
  },
});
