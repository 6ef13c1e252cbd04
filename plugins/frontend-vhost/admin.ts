/**
 * The admin commands of the vhost frontend (`fastblock vhost create|ls|rm`), served through the
 * daemon's control RPC. Arguments arrive as JSON from outside: each is checked here.
 */
import type { AdminArgs, AdminCommand } from '../../kernel/rpc/admin-commands.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { CACHE_MODES, isCacheMode } from './config.js';
import type { VhostFrontend } from './frontend.js';

function text(args: AdminArgs, key: string): string {
  const value = args[key];
  if (typeof value !== 'string' || value === '') throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `${key} must be a non-empty string`, { [key]: value });
  return value;
}

export function vhostAdminCommands(frontend: VhostFrontend): AdminCommand[] {
  return [
    {
      name: 'vhost create',
      summary: 'create a vhost-user-blk controller: { volume, socket, queues?, cache?: "writethrough" | "writeback" }',
      run: (args) => {
        const queues = args.queues ?? undefined;
        if (queues !== undefined && typeof queues !== 'number') throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'queues must be a number', { queues });
        const cache = args.cache ?? undefined;
        if (cache !== undefined && !isCacheMode(cache)) {
          throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `cache must be one of ${CACHE_MODES.join(', ')}`, { cache });
        }
        return frontend.createExport({
          volume: text(args, 'volume'),
          options: { socket: text(args, 'socket'), ...(queues === undefined ? {} : { queues }), ...(cache === undefined ? {} : { cache }) },
        });
      },
    },
    {
      name: 'vhost ls',
      summary: 'list vhost-user-blk controllers (details: cache mode; writeback: dirtyBytes, usedBytes, capacityBytes, retries, replayed)',
      run: () => frontend.listExports(),
    },
    {
      name: 'vhost rm',
      summary: 'remove a vhost-user-blk controller: { socket }',
      run: async (args) => {
        await frontend.removeExport(text(args, 'socket'));
        return { removed: text(args, 'socket') };
      },
    },
  ];
}
