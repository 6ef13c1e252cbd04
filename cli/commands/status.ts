/** `fastblock status`: what a daemon is, which plugins it runs and which admin commands it has. */
import type { Command } from 'commander';
import { fetchStatus, runAdmin, type StatusReply } from '../../kernel/rpc/control.js';
import type { ClusterStatus } from '../../services/monitor/status.js';
import { formatClusterStatus } from './monitor-admin.js';
import { addrOption, jsonOption, output, timeoutOption, withDaemon } from '../daemon-client.js';

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function human(status: StatusReply): string {
  const lines = [
    `daemon    ${status.daemon} (pid ${status.pid}), fastblock ${status.version}, node ${status.nodeVersion}, up ${duration(status.uptimeMs)}`,
    `listen    ${status.listen}`,
    ...(status.metrics ? [`metrics   ${status.metrics}`] : []),
    'plugins',
    ...status.plugins.map((p) => `  ${p.name.padEnd(12)} ${p.version.padEnd(8)} ${p.kind.padEnd(10)} ${p.origin.padEnd(9)} ${p.description}`),
    'commands',
    ...(status.commands.length ? status.commands.map((c) => `  ${c.name.padEnd(24)} ${c.summary}`) : ['  (none)']),
  ];
  return lines.join('\n');
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show a daemon: version, plugins, admin commands')
    .addOption(addrOption())
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(async (options: { addr: string; timeout: number; json?: boolean }) => {
      const status = await withDaemon(options.addr, options.timeout, async (connection) => {
        const daemon = await fetchStatus(connection);
        // A monitor also answers with the cluster summary.
        if (!daemon.commands.some((c) => c.name === 'cluster status')) return daemon;
        return { ...daemon, cluster: (await runAdmin(connection, 'cluster status')) as ClusterStatus };
      });
      output(options.json, status, (s) => ('cluster' in s ? `${formatClusterStatus(s.cluster)}\n${human(s)}` : human(s)));
    });
}
