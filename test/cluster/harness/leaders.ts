/** Which OSD daemon of a LocalCluster leads the most PGs (as the monitor's `pg ls` reports it). */
import type { LocalCluster } from '../../../cli/commands/vstart-cluster.js';

export interface Victim {
  /** OSD id. */
  readonly osd: number;
  /** Daemon name in the LocalCluster ("osd1") and its index there. */
  readonly daemon: string;
  readonly index: number;
  readonly leaders: number;
}

/** The LocalCluster index of OSD id `osd` (its data port is osdBasePort + 10 index). */
export async function daemonIndexOf(cluster: LocalCluster, osd: number): Promise<number> {
  const map = await cluster.map();
  const info = map.osds.find((o) => o.id === osd);
  if (!info) throw new Error(`osd.${osd} is not in the map`);
  return (info.address.port - cluster.state.osdBasePort) / 10;
}

export async function busiestLeader(cluster: LocalCluster): Promise<Victim> {
  const counts = new Map<number, number>();
  for (const pg of await cluster.pgs()) if (pg.leader >= 0) counts.set(pg.leader, (counts.get(pg.leader) ?? 0) + 1);
  const [osd, leaders] = [...counts].sort((a, b) => b[1] - a[1])[0];
  const index = await daemonIndexOf(cluster, osd);
  return { osd, daemon: `osd${index}`, index, leaders };
}
