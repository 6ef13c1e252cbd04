/** `fastblock vhost create|ls|rm`: vhost-user-blk controllers of a running daemon (the vhost plugin). */
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import type { ExportInfo } from '../../kernel/contracts/frontend.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { runAdmin } from '../../kernel/rpc/control.js';
import { qemuOptions } from '../../plugins/frontend-vhost/qemu-options.js';
import { addrOption, jsonOption, output, timeoutOption, withDaemon } from '../daemon-client.js';

interface Common {
  addr: string;
  timeout: number;
  json?: boolean;
}

function table(controllers: ExportInfo[]): string {
  if (controllers.length === 0) return '(no vhost controllers)';
  return controllers.map((c) => `${c.volume.padEnd(24)} ${c.location}  clients=${c.clients}`).join('\n');
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
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (volume: string, options: Common & { socket: string; queues?: number }) => {
      const info = (await withDaemon(options.addr, options.timeout, (c) =>
        runAdmin(c, 'vhost create', { volume, socket: resolve(options.socket), ...(options.queues ? { queues: options.queues } : {}) }),
      )) as ExportInfo;
      output(options.json, info, (i) => `${i.volume} on ${i.location}\nQEMU: ${qemuOptions(i.location, { queues: options.queues })}`);
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
