/**
 * Object -> PG -> the replica to ask. The first replica of the PG map is the initial guess for the
 * leader; replies correct it (a NOT_LEADER hint, or a failed connection that moves on to the next
 * replica). Hints are kept per PG and dropped when the map no longer lists that OSD for the PG.
 *
 * The route of each PG is kept until something changes it (a new map, a hint, a skip): routing an
 * I/O is then two lookups by number, with no key strings or route objects built per I/O.
 */
import type { ClusterMap, OsdInfo, PgMapping, PoolInfo } from '../kernel/contracts/cluster-map.js';
import type { RemoteEndpoint } from '../kernel/contracts/transport.js';
import { ErrorCode, FastblockError } from '../kernel/errors.js';
import { pgOfObject } from './object-hash.js';

export interface PgRoute {
  readonly pool: number;
  readonly pg: number;
  readonly osd: number;
  readonly endpoint: RemoteEndpoint;
  readonly epoch: number;
}

/** Shard s of an OSD listens on the OSD's port + s (DESIGN.md, "Shards and cores"). */
export function shardEndpoint(osd: OsdInfo, shard: number): RemoteEndpoint {
  return { address: { host: osd.address.host, port: osd.address.port + shard }, shard };
}

export class PgRouter {
  private map!: ClusterMap;
  private pgs = new Map<string, PgMapping>();
  private osds = new Map<number, OsdInfo>();
  private pools = new Map<number, PoolInfo>();
  /** PG key -> OSD believed to lead it. */
  private readonly leaders = new Map<string, number>();
  /** pool -> PG index -> its current route (undefined: work it out again). */
  private readonly routes = new Map<number, (PgRoute | undefined)[]>();

  constructor(map: ClusterMap) {
    this.setMap(map);
  }

  get epoch(): number {
    return this.map.epoch;
  }

  setMap(map: ClusterMap): void {
    if (this.map && map.epoch <= this.map.epoch) return;
    this.map = map;
    this.pgs = new Map(map.pgs.map((pg) => [`${pg.pool}.${pg.index}`, pg]));
    this.osds = new Map(map.osds.map((osd) => [osd.id, osd]));
    this.pools = new Map(map.pools.map((pool) => [pool.id, pool]));
    this.routes.clear();
    for (const [key, osd] of this.leaders) {
      if (!this.pgs.get(key)?.replicas.some((r) => r.osd === osd)) this.leaders.delete(key);
    }
  }

  pgOf(pool: number, object: string): number {
    const info = this.pools.get(pool);
    if (!info) throw new FastblockError(ErrorCode.NOT_FOUND, `pool ${pool} is not in map epoch ${this.map.epoch}`, { pool, epoch: this.map.epoch });
    return pgOfObject(object, info.pgNum);
  }

  /** pgOf for a name whose hash is known (client/object-ref.ts). */
  pgOfHash(pool: number, hash: number): number {
    const info = this.pools.get(pool);
    if (!info) throw new FastblockError(ErrorCode.NOT_FOUND, `pool ${pool} is not in map epoch ${this.map.epoch}`, { pool, epoch: this.map.epoch });
    return hash % info.pgNum;
  }

  /** The replica to send a request for this PG to now. */
  route(pool: number, pg: number): PgRoute {
    let routes = this.routes.get(pool);
    const cached = routes?.[pg];
    if (cached !== undefined) return cached;
    const route = this.work(pool, pg);
    if (routes === undefined) this.routes.set(pool, (routes = []));
    routes[pg] = route;
    return route;
  }

  private work(pool: number, pg: number): PgRoute {
    const key = `${pool}.${pg}`;
    const mapping = this.pgs.get(key);
    if (!mapping || mapping.replicas.length === 0) {
      throw new FastblockError(ErrorCode.STALE_EPOCH, `PG ${key} has no replicas in map epoch ${this.map.epoch}`, { pg: key, epoch: this.map.epoch });
    }
    const hinted = this.leaders.get(key);
    const replica =
      mapping.replicas.find((r) => r.osd === hinted) ??
      mapping.replicas.find((r) => this.osds.get(r.osd)?.up) ??
      mapping.replicas[0];
    const osd = this.osds.get(replica.osd);
    if (!osd) throw new FastblockError(ErrorCode.STALE_EPOCH, `OSD ${replica.osd} of PG ${key} is not in the map`, { pg: key, osd: replica.osd });
    return { pool, pg, osd: osd.id, endpoint: shardEndpoint(osd, replica.shard), epoch: this.map.epoch };
  }

  replicaCount(pool: number, pg: number): number {
    return Math.max(1, this.pgs.get(`${pool}.${pg}`)?.replicas.length ?? 1);
  }

  /** A replica answered that `leader` leads the PG. */
  leaderIs(pool: number, pg: number, leader: number): void {
    this.leaders.set(`${pool}.${pg}`, leader);
    this.forget(pool, pg);
  }

  /** `osd` did not answer or does not lead: try the next replica in map order next time. */
  skip(pool: number, pg: number, osd: number): void {
    const key = `${pool}.${pg}`;
    const replicas = this.pgs.get(key)?.replicas ?? [];
    const at = replicas.findIndex((r) => r.osd === osd);
    if (replicas.length === 0) return;
    this.leaders.set(key, replicas[(at + 1) % replicas.length].osd);
    this.forget(pool, pg);
  }

  private forget(pool: number, pg: number): void {
    const routes = this.routes.get(pool);
    if (routes !== undefined) routes[pg] = undefined;
  }
}
