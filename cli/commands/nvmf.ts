/** `fastblock nvmf create|ls|rm`: NVMe/TCP subsystems of a running daemon (the nvmf plugin). */
import type { Command } from 'commander';
import { runAdmin } from '../../kernel/rpc/control.js';
import type { NvmfExportView } from '../../plugins/frontend-nvmf/admin.js';
import { addrOption, jsonOption, output, timeoutOption, withDaemon } from '../daemon-client.js';

interface Common {
  addr: string;
  timeout: number;
  json?: boolean;
}

function describe(e: NvmfExportView): string {
  const hosts = e.controllers.map((c) => `\n  controller ${c.cntlid}: ${c.hostnqn} (${c.ioQueues} I/O queues, keep alive ${c.kato} ms)`);
  return `${e.volume} as ${e.nqn} on ${e.address}:${e.port}\n  ${e.connect}${hosts.join('')}`;
}

export function registerNvmf(program: Command): void {
  const nvmf = program.command('nvmf').description('NVMe/TCP subsystems for kernel initiators (nvme connect -t tcp)');
  nvmf
    .command('create <volume>')
    .description('export pool/image as an NVMe/TCP subsystem with one namespace')
    .option('--nqn <nqn>', 'subsystem NQN (default: <nqnPrefix>:<pool>:<image>)')
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (volume: string, options: Common & { nqn?: string }) => {
      const view = (await withDaemon(options.addr, options.timeout, (c) => runAdmin(c, 'nvmf create', { volume, ...(options.nqn ? { nqn: options.nqn } : {}) }))) as NvmfExportView;
      output(options.json, view, describe);
    });
  nvmf
    .command('ls')
    .description('list subsystems')
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (options: Common) => {
      const list = (await withDaemon(options.addr, options.timeout, (c) => runAdmin(c, 'nvmf ls'))) as NvmfExportView[];
      output(options.json, list, (views) => (views.length === 0 ? '(no NVMe/TCP subsystems)' : views.map(describe).join('\n')));
    });
  nvmf
    .command('rm <nqn>')
    .description('remove a subsystem; connected hosts lose its namespace')
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (nqn: string, options: Common) => {
      const result = await withDaemon(options.addr, options.timeout, (c) => runAdmin(c, 'nvmf rm', { nqn }));
      output(options.json, result, () => `removed ${nqn}`);
    });
}
