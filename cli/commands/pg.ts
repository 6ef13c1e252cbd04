/** `fastblock pg ls`: PGs with their replicas, state and leader. */
import type { Command } from 'commander';
import type { Replica } from '../../kernel/contracts/index.js';
import { action, commandGroup, print, table, withCommonOptions, withMonitors, type CommonOptions } from './monitor-admin.js';

interface PgRow {
  pg: string;
  replicas: Replica[];
  epoch: number;
  state: string;
  leader: number;
}

export function registerPg(program: Command): void {
  const pg = commandGroup(program, 'pg', 'placement groups');
  withCommonOptions(pg.command('ls [pool]').description('list PGs with replicas, state and leader')).action(
    action(async (pool: string | undefined, o: CommonOptions) => {
      const rows = (await withMonitors(o, (m) => m.admin('pg ls', pool === undefined ? {} : { pool }))) as PgRow[];
      print(o, rows, (list) =>
        list.length === 0
          ? 'no PGs'
          : table([
              ['PG', 'STATE', 'LEADER', 'REPLICAS (osd/shard)', 'EPOCH'],
              ...list.map((r) => [r.pg, r.state, r.leader < 0 ? '-' : `osd.${r.leader}`, r.replicas.map((x) => `${x.osd}/${x.shard}`).join(','), r.epoch]),
            ]),
      );
    }),
  );
}
