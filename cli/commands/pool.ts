/** `fastblock pool create|ls|rm`. */
import type { Command } from 'commander';
import { action, commandGroup, parseInteger, print, requireYes, table, withCommonOptions, withMonitors, type CommonOptions } from './monitor-admin.js';

interface PoolRow {
  id: number;
  name: string;
  size: number;
  minSize: number;
  pgNum: number;
  failureDomain: string;
  images: number;
}

export function registerPool(program: Command): void {
  const pool = commandGroup(program, 'pool', 'create, list and remove pools');
  withCommonOptions(pool.command('create <name>').description('create a pool'))
    .option('--size <n>', 'replicas per PG', '3')
    .option('--min-size <n>', 'replicas that must be up for I/O (default size - 1)')
    .option('--pg-num <n>', 'placement groups', '128')
    .option('--failure-domain <host|osd>', 'replicas never share one of these', 'host')
    .action(
      action(async (name: string, o: CommonOptions & { size: string; minSize?: string; pgNum: string; failureDomain: string }) => {
        const args = {
          name,
          size: parseInteger(o.size, '--size', 1),
          pgNum: parseInteger(o.pgNum, '--pg-num', 1),
          failureDomain: o.failureDomain,
          ...(o.minSize === undefined ? {} : { minSize: parseInteger(o.minSize, '--min-size', 1) }),
        };
        const created = (await withMonitors(o, (m) => m.admin('pool create', args))) as PoolRow & { epoch: number };
        print(o, created, (p) => `pool '${p.name}' created: id ${p.id}, size ${p.size}, ${p.pgNum} PGs (epoch ${p.epoch})`);
      }),
    );
  withCommonOptions(pool.command('ls').description('list pools')).action(
    action(async (o: CommonOptions) => {
      const pools = (await withMonitors(o, (m) => m.admin('pool ls'))) as PoolRow[];
      print(o, pools, (rows) =>
        rows.length === 0
          ? 'no pools'
          : table([['ID', 'NAME', 'SIZE', 'MIN', 'PGS', 'DOMAIN', 'IMAGES'], ...rows.map((p) => [p.id, p.name, p.size, p.minSize, p.pgNum, p.failureDomain, p.images])]),
      );
    }),
  );
  withCommonOptions(pool.command('rm <name>').description('remove an empty pool'))
    .option('--yes', 'really remove it')
    .action(
      action(async (name: string, o: CommonOptions & { yes?: boolean }) => {
        requireYes(o.yes, `removing pool '${name}' cannot be undone`);
        const result = await withMonitors(o, (m) => m.admin('pool rm', { name }));
        print(o, result, () => `pool '${name}' removed`);
      }),
    );
}
