/**
 * The admin commands of the NVMe/TCP target (`fastblock nvmf create|ls|rm`), served through the
 * daemon's control RPC. Arguments arrive as JSON from outside and are checked here.
 */
import type { ExportInfo } from '../../kernel/contracts/frontend.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import type { AdminArgs, AdminCommand } from '../../kernel/rpc/admin-commands.js';
import { CACHE_MODES, isCacheMode } from '../../kernel/block/export-cache.js';
import type { NvmfTarget } from './target.js';

function text(args: AdminArgs, key: string, required: boolean): string | undefined {
  const value = args[key];
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value === '') throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `${key} must be a non-empty string`, { [key]: value });
  return value;
}

/** What `nvmf create` and `nvmf ls` report for an export: enough to run `nvme connect`. */
export interface NvmfExportView extends ExportInfo {
  readonly nqn: string;
  readonly address: string;
  readonly port: number;
  readonly connect: string;
  /** The associations hosts hold on it. */
  readonly controllers: readonly { cntlid: number; hostnqn: string; ioQueues: number; kato: number }[];
}

export function exportView(target: NvmfTarget, info: ExportInfo): NvmfExportView {
  const { address, port } = target.advertised;
  const controllers = target.controllersOf(info.id).map((c) => ({ cntlid: c.cntlid, hostnqn: c.hostNqn, ioQueues: c.ioQueues.size, kato: c.keepAliveTimeoutMs }));
  return { ...info, nqn: info.id, address, port, connect: `nvme connect -t tcp -a ${address} -s ${port} -n ${info.id}`, controllers };
}

export function nvmfAdminCommands(target: NvmfTarget): AdminCommand[] {
  return [
    {
      name: 'nvmf create',
      summary: 'export a volume as an NVMe/TCP subsystem: { volume, nqn?, cache?: "writethrough" | "writeback" }',
      run: async (args) => {
        const volume = text(args, 'volume', true)!;
        const nqn = text(args, 'nqn', false);
        const cache = args.cache ?? undefined;
        if (cache !== undefined && !isCacheMode(cache)) {
          throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `cache must be one of ${CACHE_MODES.join(', ')}`, { cache });
        }
        const options = { ...(nqn ? { nqn } : {}), ...(cache ? { cache } : {}) };
        return exportView(target, await target.createExport({ volume, options }));
      },
    },
    {
      name: 'nvmf ls',
      summary: 'list NVMe/TCP subsystems (details: cache mode; writeback: dirtyBytes, dirtyRecords, usedBytes, capacityBytes, retries, replayed)',
      run: () => target.listExports().map((info) => exportView(target, info)),
    },
    {
      name: 'nvmf rm',
      summary: 'remove an NVMe/TCP subsystem (its hosts are disconnected; a writeback one drains its log first): { nqn }',
      run: async (args) => {
        const nqn = text(args, 'nqn', true)!;
        await target.removeExport(nqn);
        return { removed: nqn };
      },
    },
  ];
}
