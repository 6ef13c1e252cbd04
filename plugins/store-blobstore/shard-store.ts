/**
 * The store of one shard: one blobstore on the shard's own file or region, holding the raft logs
 * of its PGs, one blob per object and one kv blob. Blobs say what they are in their xattrs (kind,
 * pg, name), so opening the store rebuilds every index from the blobstore alone.
 *
 * The raft logs live either in one journal blob for all PGs (shard-journal.ts: one write per raft
 * round however many PGs it appends to) or in one log blob per PG (disk-log.ts; stores made
 * before the journal). New stores get DEFAULT_RAFT_LOG unless told otherwise; the store's blobs
 * say which an existing store uses, and a store never mixes them, whatever the tuning asks.
 *
 * flush() is the shard's group commit: one round of md sync and device flush for everything
 * completed before it, whatever PG or object it belongs to.
 */
import { FastblockError, ErrorCode, isFastblockError } from '../../kernel/errors.js';
import type { Logger } from '../../kernel/logger.js';
import type { DiskLog, PgId, ShardStore, ShardStoreOptions, ShardStoreStats } from '../../kernel/contracts/store.js';
import type { Bdev } from './bdev/bdev.js';
import { CachedBdev } from './bdev/cached-bdev.js';
import { FileBdev, type IoChoice } from './bdev/file-bdev.js';
import type { Blob } from './blobstore/blob.js';
import { Blobstore } from './blobstore/blobstore.js';
import { BlobDiskLog } from './disk-log.js';
import { BlobKvStore } from './kv-store.js';
import { BlobObjectStore, XATTR_KIND, XATTR_NAME, XATTR_PG } from './object-store.js';
import { type JournalBatching, type JournalHost, ShardJournal } from './shard-journal.js';

/** Where a store keeps its PGs' raft logs: one journal for all, or one log blob per PG. */
export type RaftLogMode = 'journal' | 'per-pg';

const MiB = 1024 * 1024;

/**
 * Journal size of a new store: an eighth of the device (a quarter of a small one, up to 64 MiB), at
 * most 1 GiB. The OSD keeps the logs' live records within a third of the ring (it compacts by the
 * journal's space, and bounds each PG's log by its share), so the rest takes what arrives between
 * checkpoints; a journal that the logs' tails outgrow all the same grows, up to half the device.
 */
export function defaultJournalBytes(deviceBytes: number): number {
  return Math.min(Math.max(deviceBytes / 8, Math.min(64 * MiB, deviceBytes / 4)), 1024 * MiB);
}

/** Where new stores keep their raft logs unless told otherwise. */
export const DEFAULT_RAFT_LOG: RaftLogMode = 'journal';

function raftLogMode(requested: RaftLogMode | undefined): RaftLogMode {
  const mode = requested ?? process.env.FASTBLOCK_STORE_RAFT_LOG ?? DEFAULT_RAFT_LOG;
  if (mode !== 'journal' && mode !== 'per-pg') {
    throw new FastblockError(ErrorCode.CONFIG_INVALID, `raft log mode ${mode}: journal or per-pg`, { mode });
  }
  return mode;
}

export interface BlobShardStoreTuning {
  readonly clusterSize?: number;
  readonly mdPages?: number;
  readonly io?: IoChoice;
  /** Bytes of object data cached for reads (CachedBdev); 0 or absent: no cache. */
  readonly cacheBytes?: number;
  readonly logger?: Logger;
  /**
   * Where a store created now keeps its raft logs (default: FASTBLOCK_STORE_RAFT_LOG, else
   * DEFAULT_RAFT_LOG). An existing store keeps the mode it was made with.
   */
  readonly raftLog?: RaftLogMode;
  /** Ring bytes of a new store's journal (default: defaultJournalBytes of the device). */
  readonly journalBytes?: number;
  /** Bytes the journal may grow to when the logs' live records outgrow it (default: half the device). */
  readonly journalMaxBytes?: number;
  /** How the journal gathers a batch (measuring; default microtask). */
  readonly journalBatching?: JournalBatching;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class BlobShardStore implements ShardStore {
  readonly objects: BlobObjectStore;
  kv!: BlobKvStore;
  private readonly logBlobs = new Map<PgId, Blob>();
  private readonly logs = new Map<PgId, Promise<BlobDiskLog>>();
  private readonly openLogs = new Set<BlobDiskLog>();
  /** Logs whose written header names a head not yet durable: the next flush makes it so. */
  private readonly trimmedLogs = new Set<BlobDiskLog>();
  /** The journal holding every PG's log; undefined: per-PG log blobs. */
  journal: ShardJournal | undefined;
  private closed = false;

  private constructor(
    readonly shard: number,
    readonly bdev: Bdev,
    readonly blobstore: Blobstore,
    private readonly logger: Logger | undefined,
  ) {
    this.objects = new BlobObjectStore(blobstore);
  }

  /** Opens (and formats, with `create`, if it holds no blobstore) the shard's file or region. */
  static async open(options: ShardStoreOptions & BlobShardStoreTuning): Promise<BlobShardStore> {
    const file = FileBdev.open({ path: options.path, sizeBytes: options.sizeBytes, offsetBytes: options.offsetBytes, create: options.create, io: options.io, logger: options.logger });
    const bdev = options.cacheBytes ? new CachedBdev(file, options.cacheBytes) : file;
    try {
      return await BlobShardStore.openOn(bdev, options.shard, { ...options, create: options.create });
    } catch (err) {
      await bdev.close();
      throw err;
    }
  }

  /** The same on a device already open (memory and fault devices in tests). */
  static async openOn(bdev: Bdev, shard: number, options: BlobShardStoreTuning & { readonly create: boolean }): Promise<BlobShardStore> {
    const logger = options.logger === undefined || 'shard' in options.logger.bindings() ? options.logger : options.logger.child({ shard });
    const blobstore = await Blobstore.open(bdev, { create: options.create, clusterSize: options.clusterSize, mdPages: options.mdPages, logger });
    const store = new BlobShardStore(shard, bdev, blobstore, logger);
    let kvBlob: Blob | undefined;
    const journalBlobs: Blob[] = [];
    for (const id of blobstore.blobIds()) {
      const blob = blobstore.openBlob(id);
      const kind = decoder.decode(blob.getXattr(XATTR_KIND) ?? new Uint8Array());
      if (kind === 'object') store.objects.adopt(blob);
      else if (kind === 'log') store.logBlobs.set(decoder.decode(blob.getXattr(XATTR_PG)), blob);
      else if (kind === 'kv' && kvBlob === undefined) kvBlob = blob;
      else if (kind === 'journal') journalBlobs.push(blob);
      else logger?.warn({ blobId: id, kind }, 'blob of unknown kind left alone');
    }
    const flush = (): Promise<void> => store.flush();
    const host: JournalHost = {
      flush,
      logger,
      clusterSize: blobstore.clusterSize,
      createBlob: () => blobstore.createBlob(new Map([[XATTR_KIND, encoder.encode('journal')]])),
      deleteBlob: (blob) => {
        if (!blob.deleted) blobstore.deleteBlob(blob);
      },
      maxBytes: options.journalMaxBytes ?? bdev.sizeBytes / 2,
    };
    if (journalBlobs.length !== 0) {
      if (store.logBlobs.size !== 0) logger?.warn({ logs: store.logBlobs.size }, 'per-PG log blobs beside the journal left alone');
      store.logBlobs.clear();
      store.journal = await ShardJournal.open(journalBlobs, host, options.journalBatching);
    } else if (store.logBlobs.size === 0 && raftLogMode(options.raftLog) === 'journal') {
      // A new store, or one whose per-PG mode never wrote a log: nothing to mix with.
      const blob = host.createBlob();
      const bytes = options.journalBytes ?? defaultJournalBytes(bdev.sizeBytes);
      try {
        store.journal = await ShardJournal.create(blob, host, bytes, options.journalBatching);
      } catch (err) {
        host.deleteBlob(blob);
        // An old store too full for a journal keeps per-PG logs, which take space as they go.
        if (!isFastblockError(err, ErrorCode.NO_SPACE) || blobstore.blobIds().length === 0) throw err;
        logger?.warn({ bytes }, 'no room for a shard journal: per-PG logs');
      }
    }
    store.kv = kvBlob !== undefined ? await BlobKvStore.open(kvBlob, flush) : BlobKvStore.create(blobstore.createBlob(new Map([[XATTR_KIND, encoder.encode('kv')]])), flush);
    logger?.info(
      { device: bdev.name, objects: store.objects.objectCount, raftLog: store.journal !== undefined ? 'journal' : 'per-pg', logs: store.logBlobs.size, damaged: blobstore.damaged.size },
      'shard store open',
    );
    return store;
  }

  /** Blobs whose metadata could not be read, by id. */
  get damaged(): ReadonlyMap<number, FastblockError> {
    return this.blobstore.damaged;
  }

  /** The journal writes its batches durably (RWF_DSYNC); per-PG logs wait for the shard's flush. */
  get durableLogWrites(): boolean {
    return this.journal !== undefined;
  }

  /** Where this store keeps its raft logs. */
  get raftLog(): RaftLogMode {
    return this.journal !== undefined ? 'journal' : 'per-pg';
  }

  diskLog(pg: PgId): Promise<DiskLog> {
    this.checkOpen();
    if (this.journal !== undefined) {
      try {
        return Promise.resolve(this.journal.log(pg));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    let log = this.logs.get(pg);
    if (log === undefined) {
      log = this.openLog(pg);
      this.logs.set(pg, log);
      log.catch(() => this.logs.delete(pg));
    }
    return log;
  }

  async removeDiskLog(pg: PgId): Promise<void> {
    this.checkOpen();
    if (this.journal !== undefined) return this.journal.remove(pg);
    const opening = this.logs.get(pg);
    this.logs.delete(pg);
    if (opening !== undefined) {
      const log = await opening.catch(() => undefined);
      if (log !== undefined) {
        await log.close();
        this.openLogs.delete(log);
        this.trimmedLogs.delete(log);
      }
    }
    const blob = this.logBlobs.get(pg);
    this.logBlobs.delete(pg);
    if (blob !== undefined && !blob.deleted) this.blobstore.deleteBlob(blob);
  }

  flush(): Promise<void> {
    this.checkOpen();
    return this.flushNow();
  }

  private flushNow(): Promise<void> {
    if (this.journal !== undefined) {
      // The journal's header goes out before the device flush when its head moved far enough.
      const after = this.journal.prepareFlush();
      if (after === undefined) return this.blobstore.flush();
      if (typeof after === 'function') return this.blobstore.flush().then(after);
      return after.then((commit) => this.blobstore.flush().then(commit));
    }
    if (this.trimmedLogs.size === 0) return this.blobstore.flush();
    const logs = [...this.trimmedLogs];
    this.trimmedLogs.clear();
    const commits = logs.map((log) => log.beforeFlush());
    return this.blobstore.flush().then(
      () => {
        for (const commit of commits) commit();
      },
      (err: unknown) => {
        // Their heads are not durable yet: the next flush takes them on again.
        for (const log of logs) if (this.openLogs.has(log)) this.trimmedLogs.add(log);
        throw err;
      },
    );
  }

  stats(): ShardStoreStats {
    const cs = this.blobstore.clusterSize;
    const cache = this.bdev instanceof CachedBdev ? this.bdev : undefined;
    return {
      capacityBytes: this.blobstore.totalClusters * cs,
      usedBytes: this.blobstore.usedClusters * cs,
      raftLogBytes: this.raftLogBytes(),
      raftLogSpace: this.journal?.space,
      readCache: cache && { hits: cache.hits, misses: cache.misses, cachedBytes: cache.cachedBlocks * cache.blockSize, capacityBytes: cache.capacityBlocks * cache.blockSize },
    };
  }

  /** Device bytes the raft logs hold: the journal's rings, or the per-PG log blobs' clusters. */
  private raftLogBytes(): number {
    if (this.journal !== undefined) return this.journal.reservedBytes;
    let clusters = 0;
    for (const blob of this.logBlobs.values()) if (!blob.deleted) clusters += blob.allocatedClusters();
    return clusters * this.blobstore.clusterSize;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.openLogs].map((log) => log.close()));
    await this.journal?.close();
    await this.flushNow();
    this.closed = true;
    await this.blobstore.close();
    await this.bdev.close();
    this.logger?.info({ device: this.bdev.name }, 'shard store closed clean');
  }

  private async openLog(pg: PgId): Promise<BlobDiskLog> {
    const host = { pg, flush: () => this.flush(), headerWritten: (trimmed: BlobDiskLog) => void this.trimmedLogs.add(trimmed) };
    const existing = this.logBlobs.get(pg);
    let log: BlobDiskLog;
    if (existing !== undefined) {
      log = await BlobDiskLog.open(existing, host);
    } else {
      const blob = this.blobstore.createBlob(
        new Map([
          [XATTR_KIND, encoder.encode('log')],
          [XATTR_PG, encoder.encode(pg)],
          [XATTR_NAME, encoder.encode(`log.${pg}`)],
        ]),
      );
      this.logBlobs.set(pg, blob);
      try {
        log = await BlobDiskLog.create(blob, host);
      } catch (err) {
        // A log without its header is no log: take the blob back so the next open starts afresh.
        this.logBlobs.delete(pg);
        if (!blob.deleted) this.blobstore.deleteBlob(blob);
        throw err;
      }
    }
    this.openLogs.add(log);
    return log;
  }

  private checkOpen(): void {
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, `store of shard ${this.shard} is closed`, { shard: this.shard });
  }
}
