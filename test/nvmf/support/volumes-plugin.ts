/**
 * A test plugin for fastblockd: in-memory volumes as the BlockVolumeProvider, plus an admin command
 * that lets a test read what a volume holds through the daemon's control RPC, so the guest's view
 * (through NVMe/TCP) can be compared with the volume's own:
 *
 *   fastblockd --plugins tcp,./test/nvmf/support/volumes-plugin.ts,nvmf --set nvmf-test-volumes.volumes=rbd/a:64
 *
 * File-backed volumes (`files=pool/image=/path`, FileVolume: they survive a SIGKILL of the daemon)
 * and writes held at the volumes (`holdWrites=true` from the start, `test-volume hold|release|held`
 * at runtime) let the write-back suites acknowledge writes that only the write-back log holds.
 *
 * Test use only: memory volumes are not durable.
 */
import { createHash } from 'node:crypto';
import type { BlockVolume, BlockVolumeProvider, BlockWriteOptions } from '../../../kernel/contracts/block.js';
import { TOKENS } from '../../../kernel/container.js';
import { ErrorCode, FastblockError } from '../../../kernel/errors.js';
import { definePlugin } from '../../../kernel/plugin.js';
import type { AdminArgs, AdminCommands } from '../../../kernel/rpc/admin-commands.js';
import { MemoryVolumeProvider } from '../../support/memory-volume.js';
import { FileVolumeProvider } from '../../vhost/file-volume.js';

interface VolumesConfig {
  /** "pool/image:SIZE_MIB" entries. */
  readonly volumes: readonly string[];
  /** "pool/image=/path/to/file" entries: FileVolumes. */
  readonly files: readonly string[];
  /** Writes (write-zeroes, discards) reaching any volume wait from the start, until `test-volume release`. */
  readonly holdWrites: boolean;
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
  configSchema: {
    volumes: { doc: 'volumes to create, "pool/image:SIZE_MIB"', format: Array, default: [] },
    files: { doc: 'file-backed volumes, "pool/image=/path"', format: Array, default: [] },
    holdWrites: { doc: 'hold writes reaching the volumes from the start (test-volume release lets them go)', format: Boolean, default: false },
  },
  register(container, config) {
    const memory = new MemoryVolumeProvider();
    for (const entry of config.volumes) {
      const [name, mib] = entry.split(':');
      memory.create(name!, Number(mib) * 1024 * 1024);
    }
    const files = new Map<string, string>();
    for (const entry of config.files) {
      const at = entry.indexOf('=');
      files.set(entry.slice(0, at), entry.slice(at + 1));
    }
    const onFiles = new FileVolumeProvider(files);
    let holding = config.holdWrites;
    const waiting: (() => void)[] = [];
    const gate = (): Promise<void> => (holding ? new Promise<void>((resolve) => waiting.push(resolve)) : Promise.resolve());
    const held = (volume: BlockVolume): BlockVolume =>
      Object.assign(Object.create(volume) as BlockVolume, {
        write: (offset: number, data: readonly Uint8Array[], options?: BlockWriteOptions) => gate().then(() => volume.write(offset, data, options)),
        writeZeroes: (offset: number, length: number, options?: BlockWriteOptions) => gate().then(() => volume.writeZeroes(offset, length, options)),
        discard: (offset: number, length: number) => gate().then(() => volume.discard(offset, length)),
      });
    const provider: BlockVolumeProvider = {
      open: async (name) => held(files.has(name) ? await onFiles.open(name) : await memory.open(name)),
      list: async () => [...(await memory.list()), ...files.keys()],
    };
    container.register(TOKENS.BlockVolumeProvider, { useValue: provider });
    const admin = container.resolve<AdminCommands>(TOKENS.AdminCommands);
    let unregister = (): void => undefined;
    return {
      start: () => {
        const removers = [
          admin.register({
            name: 'test-volume hold',
            summary: 'writes reaching the volumes wait from now on',
            run: () => ((holding = true), { holding }),
          }),
          admin.register({
            name: 'test-volume release',
            summary: 'let held writes go and stop holding; replies with how many were held',
            run: () => {
              holding = false;
              const released = waiting.length;
              for (const go of waiting.splice(0)) go();
              return { released };
            },
          }),
          admin.register({ name: 'test-volume held', summary: 'how many writes wait now', run: () => ({ held: waiting.length }) }),
        ];
        const digest = admin.register({
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
        unregister = () => {
          digest();
          for (const remove of removers) remove();
        };
      },
      stop: () => unregister(),
    };
  },
});
