/** `fastblock nbd create|ls|rm`: NBD exports of a running daemon (the nbd plugin). */
import { Option, type Command } from 'commander';
import type { ExportInfo } from '../../kernel/contracts/frontend.js';
import { runAdmin } from '../../kernel/rpc/control.js';
import { CACHE_MODES, type CacheMode } from '../../plugins/frontend-nbd/config.js';
import { addrOption, jsonOption, output, timeoutOption, withDaemon } from '../daemon-client.js';

interface Common {
  addr: string;
  timeout: number;
  json?: boolean;
}

function mib(bytes: unknown): string {
  return typeof bytes === 'number' ? `${(bytes / (1024 * 1024)).toFixed(1)} MiB` : '?';
}

/** The mode column: read-only, the cache mode and, for writeback, what is acknowledged and not yet in the image. */
function modeColumn(details: ExportInfo['details']): string {
  const ro = details?.readOnly === true ? 'ro ' : '';
  const mode = details?.cache;
  if (mode !== 'writeback') return `${ro}cache=${typeof mode === 'string' ? mode : 'writethrough'}`;
  const retries = typeof details?.retries === 'number' && details.retries > 0 ? ` retries=${details.retries}` : '';
  return `${ro}cache=writeback dirty=${mib(details?.dirtyBytes)} log=${mib(details?.usedBytes)}/${mib(details?.capacityBytes)}${retries}`;
}

function table(exports: ExportInfo[]): string {
  if (exports.length === 0) return '(no NBD exports)';
  return exports.map((e) => `${e.volume.padEnd(24)} ${e.location}  clients=${e.clients}  ${modeColumn(e.details)}`).join('\n');
}

function cacheOption(): Option {
  return new Option(
    '--cache <mode>',
    'writethrough: a write is acknowledged once the image has it; writeback: once it is in the local write-back log (default: nbd.cache; read-only exports are writethrough)',
  ).choices(CACHE_MODES);
}

export function registerNbd(program: Command): void {
  const nbd = program.command('nbd').description('NBD exports (qemu, nbd-client, nbdkit tools, fio)');
  nbd
    .command('create <volume>')
    .description('export pool/image over NBD')
    .option('--read-only', 'clients may only read')
    .addOption(cacheOption())
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (volume: string, options: Common & { readOnly?: boolean; cache?: CacheMode }) => {
      const info = (await withDaemon(options.addr, options.timeout, (c) =>
        runAdmin(c, 'nbd create', { volume, readOnly: options.readOnly === true, ...(options.cache ? { cache: options.cache } : {}) }),
      )) as ExportInfo;
      output(options.json, info, (i) => `${i.volume} on ${i.location} (${modeColumn(i.details)})\ntry: qemu-img info ${i.location}`);
    });
  nbd
    .command('ls')
    .description('list exports, their clients and cache modes (writeback: dirty bytes, the log\'s use)')
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (options: Common) => {
      const list = (await withDaemon(options.addr, options.timeout, (c) => runAdmin(c, 'nbd ls'))) as ExportInfo[];
      output(options.json, list, table);
    });
  nbd
    .command('rm <volume>')
    .description('stop exporting a volume (connected clients keep it until they disconnect)')
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (volume: string, options: Common) => {
      const result = await withDaemon(options.addr, options.timeout, (c) => runAdmin(c, 'nbd rm', { volume }));
      output(options.json, result, () => `removed ${volume}`);
    });
}
