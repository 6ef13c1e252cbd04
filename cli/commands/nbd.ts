/** `fastblock nbd create|ls|rm`: NBD exports of a running daemon (the nbd plugin). */
import type { Command } from 'commander';
import type { ExportInfo } from '../../kernel/contracts/frontend.js';
import { runAdmin } from '../../kernel/rpc/control.js';
import { addrOption, jsonOption, output, timeoutOption, withDaemon } from '../daemon-client.js';

interface Common {
  addr: string;
  timeout: number;
  json?: boolean;
}

function table(exports: ExportInfo[]): string {
  if (exports.length === 0) return '(no NBD exports)';
  return exports.map((e) => `${e.volume.padEnd(24)} ${e.location}  clients=${e.clients}`).join('\n');
}

export function registerNbd(program: Command): void {
  const nbd = program.command('nbd').description('NBD exports (qemu, nbd-client, nbdkit tools, fio)');
  nbd
    .command('create <volume>')
    .description('export pool/image over NBD')
    .option('--read-only', 'clients may only read')
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (volume: string, options: Common & { readOnly?: boolean }) => {
      const info = (await withDaemon(options.addr, options.timeout, (c) => runAdmin(c, 'nbd create', { volume, readOnly: options.readOnly === true }))) as ExportInfo;
      output(options.json, info, (i) => `${i.volume} on ${i.location}\ntry: qemu-img info ${i.location}`);
    });
  nbd
    .command('ls')
    .description('list exports and their clients')
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
