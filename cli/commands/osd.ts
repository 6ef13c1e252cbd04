/** `fastblock osd ls|out|in|rm|set|unset`. */
import type { Command } from 'commander';
import type { OsdInfo } from '../../kernel/contracts/index.js';
import { action, commandGroup, parseInteger, print, requireYes, table, withCommonOptions, withMonitors, type CommonOptions } from './monitor-admin.js';
import { formatBytes, percentFull } from './usage-format.js';

/**
 * usage: the store as its last heartbeat reported it (null: never reported to this leader), with
 * its commit latency over that heartbeat's interval (null: no raft log writes in it).
 */
type OsdRow = OsdInfo & {
  pgs: number;
  leaders: number;
  usage: { capacityBytes: number; usedBytes: number; usedRatio: number; commitLatencyMs: number | null; reportedMs: number } | null;
};

const FLAGS = ['noout'];

/** A commit latency for the table: two significant digits are what an operator compares. */
function formatMs(ms: number): string {
  return `${ms < 10 ? ms.toPrecision(2) : Math.round(ms)} ms`;
}

export function registerOsd(program: Command): void {
  const osd = commandGroup(program, 'osd', 'list OSDs, take them out or in, remove them, set flags');
  withCommonOptions(osd.command('ls').description('list OSDs')).action(
    action(async (o: CommonOptions) => {
      // From the map and the PG states (both RPC payloads): a big cluster's listing outgrows an admin reply.
      const rows = await withMonitors(o, async (m): Promise<OsdRow[]> => {
        const [map, states, usages] = await Promise.all([m.fetchMap(), m.pgStatus(), m.osdUsage()]);
        const usage = new Map(
          usages.map((u) => [
            u.osd,
            {
              capacityBytes: u.capacityBytes,
              usedBytes: u.usedBytes,
              usedRatio: u.usedBytes / u.capacityBytes,
              commitLatencyMs: u.commitLatencyUs ? u.commitLatencyUs / 1000 : null,
              reportedMs: u.reportedMs,
            },
          ]),
        );
        const pgs = new Map<number, number>();
        const leaders = new Map<number, number>();
        for (const pg of map.pgs) for (const r of pg.replicas) pgs.set(r.osd, (pgs.get(r.osd) ?? 0) + 1);
        for (const s of states) if (s.leaderOsd >= 0) leaders.set(s.leaderOsd, (leaders.get(s.leaderOsd) ?? 0) + 1);
        return map.osds.map((osd) => ({ ...osd, pgs: pgs.get(osd.id) ?? 0, leaders: leaders.get(osd.id) ?? 0, usage: usage.get(osd.id) ?? null }));
      });
      print(o, rows, (list) =>
        list.length === 0
          ? 'no OSDs'
          : table([
              ['ID', 'HOST', 'ADDRESS', 'SHARDS', 'WEIGHT', 'STATE', 'PGS', 'LEADERS', 'USED', 'SIZE', '%USE', 'COMMIT'],
              ...list.map((r) => [
                r.id,
                r.host,
                `${r.address.host}:${r.address.port}`,
                r.shards,
                r.weight,
                `${r.up ? 'up' : 'down'},${r.in ? 'in' : 'out'}`,
                r.pgs,
                r.leaders,
                r.usage ? formatBytes(r.usage.usedBytes) : '-',
                r.usage ? formatBytes(r.usage.capacityBytes) : '-',
                r.usage ? percentFull(r.usage.usedBytes, r.usage.capacityBytes) : '-',
                r.usage?.commitLatencyMs ? formatMs(r.usage.commitLatencyMs) : '-',
              ]),
            ]),
      );
    }),
  );
  withCommonOptions(osd.command('out <id>').description('take an OSD out of placement: its PGs move to other OSDs'))
    .option('--yes', 'really move its data away')
    .action(
      action(async (id: string, o: CommonOptions & { yes?: boolean }) => {
        const osdId = parseInteger(id, 'OSD id');
        requireYes(o.yes, `marking osd.${osdId} out moves its PGs to other OSDs`);
        const result = await withMonitors(o, (m) => m.admin('osd out', { id: osdId }));
        print(o, result, () => `osd.${osdId} is out`);
      }),
    );
  withCommonOptions(osd.command('in <id>').description('put an OSD back into placement')).action(
    action(async (id: string, o: CommonOptions) => {
      const osdId = parseInteger(id, 'OSD id');
      const result = await withMonitors(o, (m) => m.admin('osd in', { id: osdId }));
      print(o, result, () => `osd.${osdId} is in`);
    }),
  );
  withCommonOptions(osd.command('rm <id>').description('remove an OSD that is down and out'))
    .option('--yes', 'really remove it')
    .action(
      action(async (id: string, o: CommonOptions & { yes?: boolean }) => {
        const osdId = parseInteger(id, 'OSD id');
        requireYes(o.yes, `removing osd.${osdId} forgets it (its id is not reused)`);
        const result = await withMonitors(o, (m) => m.admin('osd rm', { id: osdId }));
        print(o, result, () => `osd.${osdId} removed`);
      }),
    );
  for (const which of ['set', 'unset'] as const) {
    withCommonOptions(osd.command(`${which} <flag>`).description(`${which} a cluster flag: ${FLAGS.join(', ')}`)).action(
      action(async (flag: string, o: CommonOptions) => {
        const result = (await withMonitors(o, (m) => m.admin(`osd ${which}`, { flag }))) as { flags: Record<string, boolean> };
        print(o, result, (r) => `flags: ${Object.entries(r.flags).filter(([, v]) => v).map(([k]) => k).join(', ') || 'none'}`);
      }),
    );
  }
}
