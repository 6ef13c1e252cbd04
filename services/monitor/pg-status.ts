/**
 * What OSDs say about their PGs in heartbeats: each replica's state and whether it leads. Kept in
 * the leader monitor's memory only (it changes every heartbeat and is rebuilt within one heartbeat
 * interval after a failover); `pg ls` and the leader balancer read it.
 */
export interface PgReport {
  readonly pool: number;
  readonly index: number;
  /** "active", "recovering", "peering", ... as the OSD sees its replica. */
  readonly state: string;
  readonly leader: boolean;
  readonly term: number;
}

export interface PgView {
  readonly state: string;
  /** OSD id of the leader with the highest term reported, or -1. */
  readonly leaderOsd: number;
}

export class PgStatusTable {
  private readonly byOsd = new Map<number, { reports: readonly PgReport[]; atMs: number }>();

  report(osd: number, reports: readonly PgReport[], now: number): void {
    this.byOsd.set(osd, { reports, atMs: now });
  }

  forget(osd: number): void {
    this.byOsd.delete(osd);
  }

  /** pool.index -> the PG's state and leader. */
  view(): Map<string, PgView> {
    const leaders = new Map<string, { osd: number; term: number; state: string }>();
    const states = new Map<string, string>();
    for (const [osd, { reports }] of this.byOsd) {
      for (const r of reports) {
        const key = `${r.pool}.${r.index}`;
        if (!states.has(key)) states.set(key, r.state);
        const best = leaders.get(key);
        if (r.leader && (!best || r.term > best.term)) leaders.set(key, { osd, term: r.term, state: r.state });
      }
    }
    const out = new Map<string, PgView>();
    for (const [key, state] of states) out.set(key, { state: leaders.get(key)?.state ?? state, leaderOsd: leaders.get(key)?.osd ?? -1 });
    return out;
  }
}
