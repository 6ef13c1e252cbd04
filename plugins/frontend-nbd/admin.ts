/**
 * The admin commands of the NBD frontend (`fastblock nbd create|ls|rm`), served through the
 * daemon's control RPC. Arguments arrive as JSON from outside and are checked here.
 */
import type { ExportInfo } from '../../kernel/contracts/frontend.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import type { AdminArgs, AdminCommand } from '../../kernel/rpc/admin-commands.js';
import { CACHE_MODES, isCacheMode } from './config.js';
import type { NbdFrontend } from './frontend.js';

function volumeName(args: AdminArgs): string {
  const value = args.volume;
  if (typeof value !== 'string' || value === '') throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'volume must be a non-empty string (pool/image)', { volume: value });
  return value;
}

export function nbdAdminCommands(frontend: NbdFrontend): AdminCommand[] {
  return [
    {
      name: 'nbd create',
      summary: 'export a volume over NBD: { volume, readOnly?, cache?: "writethrough" | "writeback" (read-only exports are writethrough) }',
      run: (args): Promise<ExportInfo> => {
        const readOnly = args.readOnly ?? false;
        if (typeof readOnly !== 'boolean') throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'readOnly must be a boolean', { readOnly });
        const cache = args.cache ?? undefined;
        if (cache !== undefined && !isCacheMode(cache)) {
          throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `cache must be one of ${CACHE_MODES.join(', ')}`, { cache });
        }
        return frontend.createExport({ volume: volumeName(args), options: { readOnly, ...(cache === undefined ? {} : { cache }) } });
      },
    },
    {
      name: 'nbd ls',
      summary: 'list NBD exports and their clients (details: cache mode, readOnly; writeback: dirtyBytes, usedBytes, capacityBytes, retries, replayed)',
      run: () => frontend.listExports(),
    },
    {
      name: 'nbd rm',
      summary: 'stop exporting a volume (connected clients keep it until they disconnect): { volume }',
      run: async (args) => {
        const volume = volumeName(args);
        await frontend.removeExport(volume);
        return { removed: volume };
      },
    },
  ];
}
