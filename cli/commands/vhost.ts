/** `fastblock vhost create|ls|rm`: vhost-user-blk controllers of a running daemon (the vhost plugin). */
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import type { ExportInfo } from '../../kernel/contracts/frontend.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { runAdmin } from '../../kernel/rpc/control.js';
import { CACHE_MODES, type CacheMode } from '../../plugins/frontend-vhost/config.js';
import { qemuOptions } from '../../plugins/frontend-vhost/qemu-options.js';
import { addrOption, jsonOption, output, timeoutOption, withDaemon } from '../daemon-client.js';

interface Common {
  addr: string;
  timeout: number;
  json?: boolean;
}

function mib(bytes: unknown): string {
  return typeof bytes === 'number' ? `${(bytes / (1024 * 1024)).toFixed(1)} MiB` : '?';
}

/** The cache column: the mode and, for writeback, what is acknowledged and not yet in the image. */
function cacheColumn(details: ExportInfo['details']): string {
  const mode = details?.cache;
  if (mode !== 'writeback') return `cache=${typeof mode === 'string' ? mode : 'writethrough'}`;
  const retries = typeof details?.retries === 'number' && details.retries > 0 ? ` retries=${details.retries}` : '';
  return `cache=writeback dirty=${mib(details?.dirtyBytes)} log=${mib(details?.usedBytes)}/${mib(details?.capacityBytes)}${retries}`;
}

function table(controllers: ExportInfo[]): string {
  if (controllers.length === 0) return '(no vhost controllers)';
  return controllers.map((c) => `${c.volume.padEnd(24)} ${c.location}  clients=${c.clients}  ${cacheColumn(c.details)}`).join('\n');
}

function cacheOption(): Option {
  return new Option('--cache <mode>', 'writethrough: a write completes once the image has it; writeback: once it is in the local write-back log (default: vhost.cache)').choices(CACHE_MODES);
}

function queuesOption(): Option {
  return new Option('--queues <n>', 'virtqueues (the guest uses up to one per vCPU)').argParser((text) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `--queues ${text} is not a positive integer`);
    return n;
  });
}

export function registerVhost(program: Command): void {
  const vhost = program.command('vhost').description('vhost-user-blk controllers for QEMU virtual machines');
  vhost
    .command('create <volume>')
    .description('serve pool/image on a vhost-user socket')
    .requiredOption('--socket <path>', 'unix socket QEMU connects to (-chardev socket,path=...)')
    .addOption(queuesOption())
    .addOption(cacheOption())
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (volume: string, options: Common & { socket: string; queues?: number; cache?: CacheMode }) => {
      const info = (await withDaemon(options.addr, options.timeout, (c) =>
        runAdmin(c, 'vhost create', {
          volume,
          socket: resolve(options.socket),
          ...(options.queues ? { queues: options.queues } : {}),
          ...(options.cache ? { cache: options.cache } : {}),
        }),
      )) as ExportInfo;
      output(options.json, info, (i) => `${i.volume} on ${i.location} (${cacheColumn(i.details)})\nQEMU: ${qemuOptions(i.location, { queues: options.queues })}`);
    });
  vhost
    .command('ls')
    .description('list controllers')
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (options: Common) => {
      const list = (await withDaemon(options.addr, options.timeout, (c) => runAdmin(c, 'vhost ls'))) as ExportInfo[];
      output(options.json, list, table);
    });
  vhost
    .command('rm <socket>')
    .description('remove the controller on a socket (its front-end is disconnected)')
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (socket: string, options: Common) => {
      const result = await withDaemon(options.addr, options.timeout, (c) => runAdmin(c, 'vhost rm', { socket: resolve(socket) }));
      output(options.json, result, () => `removed ${socket}`);
    });
}
