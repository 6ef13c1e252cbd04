/**
 * What the host checks before it believes a policy. A placement is accepted only if every PG is
 * mapped to the right number of distinct up+in OSDs, in distinct failure domains whenever the
 * cluster has enough of them, on one shard id that every replica's OSD has. Transfers are accepted
 * only if they name a PG once, move its leadership to an up replica, and stay within the bound.
 */
import type { LeaderBalanceInput, LeaderTransfer, OsdInfo, PlacementInput, Replica } from '../../kernel/contracts/index.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';

function rejected(reason: string, context: Record<string, unknown> = {}): FastblockError {
  return new FastblockError(ErrorCode.POLICY_REJECTED, `policy output rejected: ${reason}`, { reason, ...context });
}

export function usableOsds(osds: readonly OsdInfo[]): OsdInfo[] {
  return osds.filter((osd) => osd.up && osd.in && osd.weight > 0 && osd.shards > 0);
}

/** Replicas every PG must get, and whether they must sit in distinct failure domains. */
export function placementRequirements(input: PlacementInput): { replicas: number; distinctDomains: boolean } {
  const usable = usableOsds(input.osds);
  const replicas = Math.min(input.pool.size, usable.length);
  const domains = new Set(usable.map((osd) => (input.pool.failureDomain === 'host' ? osd.failureDomain : String(osd.id))));
  return { replicas, distinctDomains: domains.size >= replicas };
}

export function validatePlacement(input: PlacementInput, mapping: readonly (readonly Replica[])[]): void {
  const { pool } = input;
  if (mapping.length !== pool.pgNum) throw rejected(`${mapping.length} PGs mapped, the pool has ${pool.pgNum}`);
  const { replicas, distinctDomains } = placementRequirements(input);
  const byId = new Map(input.osds.map((osd) => [osd.id, osd]));
  for (let pg = 0; pg < mapping.length; pg++) {
    const list = mapping[pg];
    if (list.length !== replicas) throw rejected(`PG ${pg} has ${list.length} replicas, expected ${replicas}`, { pg });
    const osds = new Set<number>();
    const domains = new Set<string>();
    for (const replica of list) {
      const osd = byId.get(replica.osd);
      if (osd === undefined) throw rejected(`PG ${pg} is mapped to unknown OSD ${replica.osd}`, { pg, osd: replica.osd });
      if (!osd.up || !osd.in) throw rejected(`PG ${pg} is mapped to OSD ${osd.id}, which is not up and in`, { pg, osd: osd.id });
      if (osds.has(osd.id)) throw rejected(`PG ${pg} holds OSD ${osd.id} twice`, { pg, osd: osd.id });
      osds.add(osd.id);
      if (!Number.isInteger(replica.shard) || replica.shard < 0 || replica.shard >= osd.shards) {
        throw rejected(`PG ${pg} uses shard ${replica.shard} on OSD ${osd.id}, which has ${osd.shards}`, { pg, osd: osd.id });
      }
      if (replica.shard !== list[0].shard) throw rejected(`PG ${pg} uses different shard ids on its replicas`, { pg });
      const domain = pool.failureDomain === 'host' ? osd.failureDomain : String(osd.id);
      if (distinctDomains && domains.has(domain)) {
        throw rejected(`PG ${pg} has two replicas in failure domain ${domain}`, { pg, domain });
      }
      domains.add(domain);
    }
  }
}

export function validateTransfers(input: LeaderBalanceInput, transfers: readonly LeaderTransfer[]): void {
  if (transfers.length > input.maxTransfers) throw rejected(`${transfers.length} transfers, the bound is ${input.maxTransfers}`);
  const byId = new Map(input.osds.map((osd) => [osd.id, osd]));
  const pgs = new Map(input.pgs.map((pg) => [`${pg.pool}.${pg.index}`, pg]));
  const seen = new Set<string>();
  for (const t of transfers) {
    const key = `${t.pool}.${t.index}`;
    const pg = pgs.get(key);
    if (pg === undefined) throw rejected(`transfer names unknown PG ${key}`);
    if (seen.has(key)) throw rejected(`PG ${key} is transferred twice in one round`);
    seen.add(key);
    if (!pg.replicas.some((r) => r.osd === t.toOsd)) throw rejected(`PG ${key} has no replica on OSD ${t.toOsd}`);
    if (!byId.get(t.toOsd)?.up) throw rejected(`PG ${key} would move its leader to OSD ${t.toOsd}, which is down`);
  }
}
