/** `fastblock nvmf create|ls|rm`: NVMe/TCP subsystems of a running daemon (the nvmf plugin). */
import { Option, type Command } from 'commander';
import type { ExportInfo } from '../../kernel/contracts/frontend.js';
import { runAdmin } from '../../kernel/rpc/control.js';
import type { NvmfExportView } from '../../plugins/frontend-nvmf/admin.js';
import { CACHE_MODES, type CacheMode } from '../../plugins/frontend-nvmf/config.js';
import { addrOption, jsonOption, output, timeoutOption, withDaemon } from '../daemon-client.js';

interface Common {
  addr: string;
  timeout: number;
  json?: boolean;
}

function mib(bytes: unknown): string {
  return typeof bytes === 'number' ? `${(bytes / (1024 * 1024)).toFixed(1)} MiB` : '?';
}

/** The cache mode and, for writeback, what is acknowledged and not yet in the image. */
function modeColumn(details: ExportInfo['details']): string {
  const mode = details?.cache;
  if (mode !== 'writeback') return `cache=${typeof mode === 'string' ? mode : 'writethrough'}`;
  const retries = typeof details?.retries === 'number' && details.retries > 0 ? ` retries=${details.retries}` : '';
  return `cache=writeback dirty=${mib(details?.dirtyBytes)} log=${mib(details?.usedBytes)}/${mib(details?.capacityBytes)}${retries}`;
}

function describe(e: NvmfExportView): string {
  const hosts = e.controllers.map((c) => `\n  controller ${c.cntlid}: ${c.hostnqn} (${c.ioQueues} I/O queues, keep alive ${c.kato} ms)`);
  return `${e.volume} as ${e.nqn} on ${e.address}:${e.port} (${modeColumn(e.details)})\n  ${e.connect}${hosts.join('')}`;
}

function cacheOption(): Option {
  return new Option(
    '--cache <mode>',
    'writethrough: a write completes once the image has it; writeback: once it is in the local write-back log, the namespace reports a volatile write cache (default: nvmf.cache)',
  ).choices(CACHE_MODES);
}

export function registerNvmf(program: Command): void {
  const nvmf = program.command('nvmf').description('NVMe/TCP subsystems for kernel initiators (nvme connect -t tcp)');
  nvmf
    .command('create <volume>')
    .description('export pool/image as an NVMe/TCP subsystem with one namespace')
    .option('--nqn <nqn>', 'subsystem NQN (default: <nqnPrefix>:<pool>:<image>)')
    .addOption(cacheOption())
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (volume: string, options: Common & { nqn?: string; cache?: CacheMode }) => {
      const args = { volume, ...(options.nqn ? { nqn: options.nqn } : {}), ...(options.cache ? { cache: options.cache } : {}) };
      const view = (await withDaemon(options.addr, options.timeout, (c) => runAdmin(c, 'nvmf create', args))) as NvmfExportView;
      output(options.json, view, describe);
    });
  nvmf
    .command('ls')
    .description('list subsystems, their hosts and cache modes (writeback: dirty bytes, the log\'s use)')
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (options: Common) => {
      const list = (await withDaemon(options.addr, options.timeout, (c) => runAdmin(c, 'nvmf ls'))) as NvmfExportView[];
      output(options.json, list, (views) => (views.length === 0 ? '(no NVMe/TCP subsystems)' : views.map(describe).join('\n')));
    });
  nvmf
    .command('rm <nqn>')
    .description('remove a subsystem; connected hosts lose its namespace (a writeback one drains its log first)')
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (nqn: string, options: Common) => {
      const result = await withDaemon(options.addr, options.timeout, (c) => runAdmin(c, 'nvmf rm', { nqn }));
      output(options.json, result, () => `removed ${nqn}`);
    });
}
