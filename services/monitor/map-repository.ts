/**
 * The cluster map in a MetaStore. Layout under the prefix (default "/fastblock/"):
 *
 *   map/epoch                {epoch, flags, nextOsdId, nextPoolId}   written by every change
 *   map/osd/<id>             OsdRecord
 *   map/pool/<id>            PoolInfo
 *   map/pg/<pool>/<chunk>    PGs chunk*4096 .. +4095 as [epoch, shard, osd, osd, ...] rows
 *   map/image/<id>           ImageInfo
 *   map/policy/<kind>        PolicyInfo of the policy in force
 *   policy/<kind>/<version>  a stored policy: name, sha256, created, wasm (base64)
 *
 * Every change is one transaction that rewrites map/epoch and compares its modRevision with the
 * one this monitor last saw: a monitor that lost leadership without noticing cannot overwrite
 * its successor's epochs (fencing by compare-and-swap), and no two changes can share an epoch.
 */
import type { ImageInfo, MetaOp, MetaStore, PgMapping, PolicyInfo, PoolInfo } from '../../kernel/contracts/index.js';
import { ErrorCode, FastblockError } from '../../kernel/errors.js';
import { EMPTY_STATE, applyChange, type MapChange, type MonitorState, type OsdRecord, type PolicyKind } from './map-state.js';

export const DEFAULT_PREFIX = '/fastblock/';
const PG_CHUNK = 4096;

type PgRow = number[];

interface EpochRecord {
  epoch: number;
  flags: MonitorState['flags'];
  nextOsdId: number;
  nextPoolId: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const json = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));
const parse = <T>(bytes: Uint8Array): T => JSON.parse(decoder.decode(bytes)) as T;

export interface StoredPolicy {
  readonly kind: PolicyKind;
  readonly name: string;
  readonly version: number;
  readonly sha256: string;
  readonly createdMs: number;
  readonly bytes: Uint8Array;
}

export class MapRepository {
  /** modRevision of map/epoch as this monitor last read or wrote it (0: absent). */
  private epochRevision = 0;

  constructor(
    readonly store: MetaStore,
    readonly prefix = DEFAULT_PREFIX,
  ) {}

  get mapPrefix(): string {
    return `${this.prefix}map/`;
  }

  /**
   * Reads the whole map. With `forWriting` (a new leader, or one that was fenced off) it also takes
   * the store's current revision of map/epoch as the one its next commit must find.
   */
  async load(forWriting = false): Promise<MonitorState> {
    const entries = await this.store.list(this.mapPrefix);
    const at = (rest: string): string[] => rest.split('/');
    let record: EpochRecord | undefined;
    const osds = new Map<number, OsdRecord>();
    const pools = new Map<number, PoolInfo>();
    const rows = new Map<number, Map<number, PgRow[]>>();
    const images = new Map<string, ImageInfo>();
    const policies = new Map<PolicyKind, PolicyInfo>();
    let revision = 0;
    for (const entry of entries) {
      const [kind, a, b] = at(entry.key.slice(this.mapPrefix.length));
      if (kind === 'epoch') {
        record = parse<EpochRecord>(entry.value);
        revision = entry.modRevision;
      } else if (kind === 'osd') osds.set(Number(a), parse<OsdRecord>(entry.value));
      else if (kind === 'pool') pools.set(Number(a), parse<PoolInfo>(entry.value));
      else if (kind === 'pg') {
        if (!rows.has(Number(a))) rows.set(Number(a), new Map());
        rows.get(Number(a))!.set(Number(b), parse<PgRow[]>(entry.value));
      } else if (kind === 'image') images.set(a, parse<ImageInfo>(entry.value));
      else if (kind === 'policy') policies.set(a as PolicyKind, parse<PolicyInfo>(entry.value));
    }
    if (forWriting) this.epochRevision = revision;
    if (!record) return EMPTY_STATE;
    const pgs = new Map<number, PgMapping[]>();
    for (const [poolId, pool] of pools) {
      const chunks = rows.get(poolId) ?? new Map<number, PgRow[]>();
      const mapping: PgMapping[] = [];
      for (let index = 0; index < pool.pgNum; index++) {
        const row = chunks.get(Math.floor(index / PG_CHUNK))?.[index % PG_CHUNK] ?? [0, 0];
        const [epoch, shard, ...osdIds] = row;
        mapping.push({ pool: poolId, index, epoch, replicas: osdIds.map((osd) => ({ osd, shard })) });
      }
      pgs.set(poolId, mapping);
    }
    return { epoch: record.epoch, flags: record.flags, nextOsdId: record.nextOsdId, nextPoolId: record.nextPoolId, osds, pools, pgs, images, policies };
  }

  /** The epoch the store holds now (0 when empty), without reading the map. */
  async storedEpoch(): Promise<number> {
    const entry = await this.store.get(`${this.mapPrefix}epoch`);
    return entry ? parse<EpochRecord>(entry.value).epoch : 0;
  }

  /**
   * Writes `change` as epoch state.epoch + 1, with `extra` ops in the same transaction. Throws BUSY
   * with context.fenced when the store moved on without us (another leader wrote): the caller must
   * reload or step down.
   */
  async commit(state: MonitorState, change: MapChange, extra: readonly MetaOp[] = []): Promise<MonitorState> {
    const next = applyChange(state, change, state.epoch + 1);
    const p = this.mapPrefix;
    const ops: MetaOp[] = [...extra];
    const record: EpochRecord = { epoch: next.epoch, flags: next.flags, nextOsdId: next.nextOsdId, nextPoolId: next.nextPoolId };
    ops.push({ type: 'put', key: `${p}epoch`, value: json(record) });
    for (const osd of change.osds ?? []) ops.push({ type: 'put', key: `${p}osd/${osd.id}`, value: json(osd) });
    for (const id of change.removeOsds ?? []) ops.push({ type: 'delete', key: `${p}osd/${id}` });
    for (const pool of change.pools ?? []) ops.push({ type: 'put', key: `${p}pool/${pool.id}`, value: json(pool) });
    for (const id of change.removePools ?? []) {
      ops.push({ type: 'delete', key: `${p}pool/${id}` });
      ops.push({ type: 'deletePrefix', prefix: `${p}pg/${id}/` });
    }
    for (const [poolId, mapping] of change.pgs ?? []) {
      const old = state.pgs.get(poolId);
      const chunks = Math.ceil(mapping.length / PG_CHUNK);
      for (let c = 0; c < chunks; c++) {
        const slice = mapping.slice(c * PG_CHUNK, (c + 1) * PG_CHUNK);
        const unchanged = old !== undefined && slice.every((pg) => old[pg.index]?.epoch === pg.epoch && old[pg.index].replicas.length === pg.replicas.length);
        if (unchanged) continue;
        const rows = slice.map((pg) => [pg.epoch, pg.replicas[0]?.shard ?? 0, ...pg.replicas.map((r) => r.osd)]);
        ops.push({ type: 'put', key: `${p}pg/${poolId}/${c}`, value: json(rows) });
      }
      const oldChunks = Math.ceil((old?.length ?? 0) / PG_CHUNK);
      for (let c = chunks; c < oldChunks; c++) ops.push({ type: 'delete', key: `${p}pg/${poolId}/${c}` });
    }
    for (const image of change.images ?? []) ops.push({ type: 'put', key: `${p}image/${image.id}`, value: json(image) });
    for (const id of change.removeImages ?? []) ops.push({ type: 'delete', key: `${p}image/${id}` });
    for (const policy of change.policies ?? []) ops.push({ type: 'put', key: `${p}policy/${policy.kind}`, value: json(policy) });

    const result = await this.store.txn([{ key: `${p}epoch`, modRevision: this.epochRevision }], ops);
    if (!result.succeeded) {
      throw new FastblockError(ErrorCode.BUSY, `epoch ${next.epoch} was not written: the map changed under this monitor (another leader?)`, {
        epoch: next.epoch,
        fenced: true,
      });
    }
    this.epochRevision = result.revision;
    return next;
  }

  policyOp(policy: StoredPolicy): MetaOp {
    const { bytes, ...meta } = policy;
    return { type: 'put', key: `${this.prefix}policy/${policy.kind}/${policy.version}`, value: json({ ...meta, wasm: Buffer.from(bytes).toString('base64') }) };
  }

  async policies(kind: PolicyKind): Promise<StoredPolicy[]> {
    const entries = await this.store.list(`${this.prefix}policy/${kind}/`);
    return entries
      .map((e) => {
        const { wasm, ...meta } = parse<Omit<StoredPolicy, 'bytes'> & { wasm: string }>(e.value);
        return { ...meta, bytes: new Uint8Array(Buffer.from(wasm, 'base64')) };
      })
      .sort((a, b) => a.version - b.version);
  }
}
