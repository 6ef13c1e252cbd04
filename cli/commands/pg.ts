/** `fastblock pg ls`: PGs with their replicas, state and leader. */
import type { Command } from 'commander';
import type { Replica } from '../../kernel/contracts/index.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { action, commandGroup, print, table, withCommonOptions, withMonitors, type CommonOptions } from './monitor-admin.js';

interface PgRow {
  pg: string;
  pool: number;
  index: number;
  replicas: readonly Replica[];
  epoch: number;
  state: string;
  leader: number;
}

export function registerPg(program: Command): void {
  const pg = commandGroup(program, 'pg', 'placement groups');
  withCommonOptions(pg.command('ls [pool]').description('list PGs with replicas, state and leader')).action(
    action(async (pool: string | undefined, o: CommonOptions) => {
      // The map and the states come as RPC payloads: a large pool's listing does not fit an admin reply.
      const rows = await withMonitors(o, async (m): Promise<PgRow[]> => {
        const [map, states] = await Promise.all([m.fetchMap(), m.pgStatus()]);
        const poolInfo = pool === undefined ? undefined : map.pools.find((p) => p.name === pool);
        if (pool !== undefined && !poolInfo) throw new FastblockError(ErrorCode.NOT_FOUND, `no pool named '${pool}' (pools: ${map.pools.map((p) => p.name).join(', ') || 'none'})`, { pool });
        const byPg = new Map(states.map((s) => [`${s.pool}.${s.index}`, s]));
        return map.pgs
          .filter((pg) => !poolInfo || pg.pool === poolInfo.id)
          .map((pg) => {
            const v = byPg.get(`${pg.pool}.${pg.index}`);
            return { pg: `${pg.pool}.${pg.index.toString(16)}`, pool: pg.pool, index: pg.index, replicas: pg.replicas, epoch: pg.epoch, state: v?.state ?? 'unknown', leader: v?.leaderOsd ?? -1 };
          });
      });
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
