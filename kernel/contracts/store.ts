/**
 * Store: the local storage of one OSD shard. Implemented by plugins/store-blobstore (and by
 * in-memory fakes in tests). One ShardStore per shard; it hands out one DiskLog per PG, one
 * ObjectStore for the shard's objects and one KvStore for the shard's small metadata.
 *
 * Durability model: writes complete into the device's volatile cache; `ShardStore.flush()` makes
 * everything completed before it durable, for all PGs of the shard at once (group commit).
 */

/** A placement group id: "<pool>.<index>", e.g. "1.2a" (index in hex, as Ceph prints it). */
export type PgId = string;

/** One raft log record as stored. `data` is opaque to the store. */
export interface LogRecord {
  readonly index: number;
  readonly term: number;
  /** Entry type, owned by the raft layer (normal, config change, ...). 0..255. */
  readonly type: number;
  readonly data: Uint8Array;
}

/**
 * The durable raft log of one PG: a contiguous run of records [firstIndex, lastIndex]. Every record
 * carries a checksum; a record that fails it on read is reported as CORRUPT, never returned.
 */
export interface DiskLog {
  /** First index held, or lastIndex + 1 when empty. */
  readonly firstIndex: number;
  /** Last index held, or firstIndex - 1 when empty. */
  readonly lastIndex: number;
  /** Term of a held record, from memory (no I/O); undefined outside [firstIndex, lastIndex]. */
  termAt(index: number): number | undefined;
  /**
   * Appends records; records[0].index must be lastIndex + 1 (truncate first to overwrite), and
   * indexes must be consecutive. Resolves when written (not yet durable: see ShardStore.flush).
   */
  append(records: readonly LogRecord[]): Promise<void>;
  /** Records with index in [from, to), stopping early once maxBytes of data is reached (at least one record). */
  read(from: number, to: number, maxBytes?: number): Promise<LogRecord[]>;
  /** Drops records with index >= fromIndex. */
  truncateSuffix(fromIndex: number): Promise<void>;
  /** Drops records with index < toIndex; their space is reused. An empty log then starts at toIndex. */
  trimPrefix(toIndex: number): Promise<void>;
}

export interface ObjectStat {
  /** Highest byte written + 1 (objects are sparse; holes read as zeroes). */
  readonly size: number;
}

/** A piece of a PG's objects streamed out for a raft snapshot, or back in. */
export interface ObjectChunk {
  readonly object: string;
  readonly offset: number;
  /** Bytes at offset; a chunk with `size` and no data records the object's size only. */
  readonly data: Uint8Array;
  readonly size: number;
}

export interface ObjectWriteOptions {
  /**
   * The bytes are likely to be read soon from this replica (the PG's leader, which serves reads,
   * applying a client's write): a store with a read cache keeps them there. Followers leave it
   * unset, so their caches do not pay a copy per write for blocks they are not asked for.
   */
  readonly keepCached?: boolean;
}

/** Objects of a shard, grouped by PG. Object names are opaque strings ("<imageId>.<index>"). */
export interface ObjectStore {
  read(pg: PgId, object: string, offset: number, length: number): Promise<Uint8Array>;
  /**
   * Writes a scatter list at offset. Unaligned edges are read-modify-written. Writes, discards
   * and write-zeroes of overlapping ranges of one object that are issued without waiting for
   * each other land in the order they were issued.
   */
  write(pg: PgId, object: string, offset: number, data: readonly Uint8Array[], options?: ObjectWriteOptions): Promise<void>;
  /**
   * True when a write of exactly this range, issued now (before anything else is issued), needs
   * nothing the store could run out of or refuse: the object exists, the range lies within its
   * size, its space is held, and no earlier mutation of those bytes is pending. Such a write
   * can then fail only with the device, so the OSD acknowledges it once issued rather than once
   * landed (services/osd/pg.ts). False whenever unsure: that only costs the early acknowledgement.
   */
  overwrites(pg: PgId, object: string, offset: number, length: number): boolean;
  /**
   * Releases the range's space where whole blocks allow; the range reads as zeroes afterwards. A
   * discard of an absent object leaves it absent, and one covering all of an object may remove it.
   */
  discard(pg: PgId, object: string, offset: number, length: number): Promise<void>;
  writeZeroes(pg: PgId, object: string, offset: number, length: number): Promise<void>;
  stat(pg: PgId, object: string): Promise<ObjectStat | undefined>;
  remove(pg: PgId, object: string): Promise<void>;
  list(pg: PgId): Promise<string[]>;
  /** Streams every object of a PG, in bounded chunks, for a snapshot. */
  exportPg(pg: PgId, chunkBytes: number): AsyncIterable<ObjectChunk>;
  /** Replaces a PG's objects with the streamed ones (the old ones are removed first). */
  importPg(pg: PgId, chunks: AsyncIterable<ObjectChunk>): Promise<void>;
  removePg(pg: PgId): Promise<void>;
}

/** Small metadata of a shard (raft hard states, PG metadata). Reads and writes hit memory; flush persists all atomically. */
export interface KvStore {
  get(key: string): Uint8Array | undefined;
  set(key: string, value: Uint8Array): void;
  delete(key: string): void;
  keys(prefix?: string): string[];
  /** Persists the whole map atomically: after a crash, either the previous or this state, never a mix. */
  flush(): Promise<void>;
}

export interface ShardStoreStats {
  readonly capacityBytes: number;
  readonly usedBytes: number;
  /** Of usedBytes, what the PGs' raft logs hold (log rings or a shared journal), when the store can tell. */
  readonly raftLogBytes?: number;
  /**
   * When the PGs' raft logs share one bounded space (a shard journal): the bytes their live records
   * take, and what they should stay within. The OSD then compacts logs by this space as well as
   * by time and volume, and bounds each PG's log by its share of the budget.
   */
  readonly raftLogSpace?: { readonly liveBytes: number; readonly budgetBytes: number };
  /** The store's read cache of object data, when it has one. */
  readonly readCache?: { readonly hits: number; readonly misses: number; readonly cachedBytes: number; readonly capacityBytes: number };
}

export interface ShardStore {
  readonly shard: number;
  /** The PG's log, created empty on first use. */
  diskLog(pg: PgId): Promise<DiskLog>;
  removeDiskLog(pg: PgId): Promise<void>;
  readonly objects: ObjectStore;
  readonly kv: KvStore;
  /** Makes every completed write of this shard durable (one device flush). */
  flush(): Promise<void>;
  /**
   * True when a DiskLog operation is on the medium once its promise settles (the store writes its
   * logs durably): a raft round then needs no flush() for its log. Absent or false: log writes are
   * durable only after the next flush().
   */
  readonly durableLogWrites?: boolean;
  stats(): ShardStoreStats;
  close(): Promise<void>;
}

export interface ShardStoreOptions {
  readonly shard: number;
  /** A file or block device; created at `sizeBytes` when it does not exist. */
  readonly path: string;
  readonly sizeBytes: number;
  /** Start of the shard's region when shards share one device (default 0: the whole file). */
  readonly offsetBytes?: number;
  /** Format if the device holds no blobstore; never reformats one that does. */
  readonly create: boolean;
}

/** What a store plugin registers: opens the store of a shard. */
export interface StoreFactory {
  readonly name: string;
  open(options: ShardStoreOptions): Promise<ShardStore>;
}
