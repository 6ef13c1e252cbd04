/**
 * What every frontend (NBD, vhost-user-blk, NVMe/TCP) does to offer writeback exports: the cache
 * modes and their settings' bounds, where an export's write-back log lives, and what a
 * writethrough export does about a log an earlier process left. Here, not in each plugin, because
 * the file name must be the same whichever frontend serves an image (one log per image name in a
 * `writeBackDir` they share by default): an image is then never cached twice on a host, and a log
 * left by any frontend is found by all.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { BlockVolume } from '../contracts/block.js';
import { ReadCacheVolume } from './read-cache-volume.js';
import { openWriteBack, type WriteBackVolume } from './write-back-volume.js';

/**
 * How an export's writes reach the volume. `writethrough`: a write completes once the volume has
 * it. `writeback`: once it is a record in the export's write-back log (a file under
 * `writeBackDir`); it goes to the volume in the background, the frontend tells its host it has a
 * volatile write cache (NBD SEND_FLUSH, virtio-blk FLUSH, NVMe VWC), and a host's flush waits for
 * the write-back, a FUA write for its own.
 */
export type CacheMode = 'writethrough' | 'writeback';
export const CACHE_MODES: readonly CacheMode[] = ['writethrough', 'writeback'];

export function isCacheMode(value: unknown): value is CacheMode {
  return typeof value === 'string' && (CACHE_MODES as readonly string[]).includes(value);
}

export const MIN_WRITE_BACK_MIB = 4;
/** A ring is viewed through one Buffer (a mapping of its file): Node's largest Buffer is 4 GiB. */
export const MAX_WRITE_BACK_MIB = 4096;
/** One log per image name on a host, whichever frontend serves it. */
export const DEFAULT_WRITE_BACK_DIR = '/dev/shm/fastblock-write-back';
export const DEFAULT_WRITE_BACK_MIB = 64;

export function isWriteBackMiB(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= MIN_WRITE_BACK_MIB && value <= MAX_WRITE_BACK_MIB;
}

/**
 * A writeback export's read cache (ReadCacheVolume) in the gateway's memory: 0 for none. Only
 * writeback exports have one: they already own their image's caching (the write-back log holds
 * writes nobody else sees), so a cached block can only change through the export. One Buffer: 4 GiB
 * at most. 64 MiB by default, as the log.
 */
export const DEFAULT_READ_CACHE_MIB = 64;
export const MAX_READ_CACHE_MIB = 4096;

export function isReadCacheMiB(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_READ_CACHE_MIB;
}

/**
 * How long an export's write stays in the log before its write-back starts, so that the writes of
 * one object that arrive meanwhile go to the cluster as one request (WriteBackOptions.holdMs).
 * Flushes, FUA writes, reads of the image's bytes and a ring over half full never wait for it.
 * bench/vhost (4 KiB random writes, QD16, a 256 MiB image): CPU per 1,000 writes of the OSD and
 * the gateway 92.6 + 55.1 ms at 0 (each write alone unless the cluster falls behind), 58.7 + 42.9
 * at 50 ms, 31.7 + 37.0 at 200 ms, 25.7 + 34.9 at 500 ms. Linux holds dirty pages for 30 s; half
 * a second keeps the log short (and a ring over half full is written back without waiting).
 * Each frontend's `writeBackHoldMs` (0: a write goes back at once).
 */
export const DEFAULT_WRITE_BACK_HOLD_MS = 500;
/**
 * Past a few hundred ms a longer hold gathers little more (the ring going over half full sends
 * writes back anyway) while acknowledged writes stay off the cluster longer, where a host crash
 * loses what the client did not flush; 10 s bounds that exposure.
 */
export const MAX_WRITE_BACK_HOLD_MS = 10_000;

export function isWriteBackHoldMs(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_WRITE_BACK_HOLD_MS;
}

/** The convict formats of the write-back keys (`cache`, `writeBackDir`, `writeBackMiB`, `writeBackHoldMs`, `readCacheMiB`) every frontend's config section has. */
export const WRITE_BACK_FORMATS = {
  cache(value: unknown): void {
    if (!isCacheMode(value)) throw new Error(`must be one of ${CACHE_MODES.join(', ')}`);
  },
  writeBackDir(value: unknown): void {
    if (typeof value !== 'string' || value === '') throw new Error('must be a non-empty path');
  },
  writeBackMiB(value: unknown): void {
    if (!isWriteBackMiB(value)) throw new Error(`must be an integer in [${MIN_WRITE_BACK_MIB}, ${MAX_WRITE_BACK_MIB}] (MiB)`);
  },
  writeBackHoldMs(value: unknown): void {
    if (!isWriteBackHoldMs(value)) throw new Error(`must be an integer in [0, ${MAX_WRITE_BACK_HOLD_MS}] (ms; 0: a write goes back at once)`);
  },
  readCacheMiB(value: unknown): void {
    if (!isReadCacheMiB(value)) throw new Error(`must be an integer in [0, ${MAX_READ_CACHE_MIB}] (MiB; 0: no read cache)`);
  },
} as const;

export interface WriteBackSettings {
  /** The frontend's writeBackDir. */
  readonly dir: string;
  /** The frontend's writeBackMiB, in bytes. */
  readonly capacityBytes: number;
  /** The frontend's readCacheMiB, in bytes (0: no read cache). */
  readonly readCacheBytes: number;
  /** The frontend's writeBackHoldMs: how long a write waits in the log for others of its object (0: none). */
  readonly holdMs: number;
}

/** The write-back log of a volume: `<dir>/<encodeURIComponent(pool/image)>.wblog`. */
export function writeBackPath(dir: string, volume: string): string {
  return join(resolve(dir), `${encodeURIComponent(volume)}.wblog`);
}

/**
 * The write-back cache of `inner`: the directory is made (0700) if missing; a log left by a killed
 * process is replayed (its records go to the volume first, in order); a log a live process holds,
 * this one included, is refused (BUSY).
 */
export function openExportWriteBack(name: string, inner: BlockVolume, settings: WriteBackSettings, log: Logger): WriteBackVolume {
  mkdirSync(resolve(settings.dir), { recursive: true, mode: 0o700 });
  // Under the write-back cache: reads of what the log holds are served from the log, the rest from
  // here, and every write-back passes through here and drops what it changes.
  const readCache = settings.readCacheBytes > 0 ? new ReadCacheVolume(inner, settings.readCacheBytes) : undefined;
  try {
    const writeBack = openWriteBack(readCache ?? inner, { path: writeBackPath(settings.dir, name), capacityBytes: settings.capacityBytes, log, holdMs: settings.holdMs });
    if (readCache) readCaches.set(writeBack, readCache);
    return writeBack;
  } catch (err) {
    // The caller closes the volume it passed; the cache over it goes without closing it.
    readCache?.detach();
    throw err;
  }
}

const readCaches = new WeakMap<WriteBackVolume, ReadCacheVolume>();

/** What a frontend's listing (`nbd ls`, `vhost ls`, `nvmf ls`) shows of a writeback export's caches. */
export function writeBackDetails(writeBack: WriteBackVolume): Record<string, number> {
  const { dirtyBytes, dirtyRecords, usedBytes, capacityBytes, retries, replayed, absorbed } = writeBack.stats();
  const read = readCaches.get(writeBack)?.stats;
  const readCache: Record<string, number> =
    read === undefined
      ? {}
      : { readCacheBytes: read.cachedBlocks * read.blockBytes, readCacheCapacityBytes: read.capacityBlocks * read.blockBytes, readCacheHits: read.hits, readCacheMisses: read.misses };
  return { dirtyBytes, dirtyRecords, usedBytes, capacityBytes, retries, replayed, absorbed, ...readCache };
}

/**
 * A writethrough export over a volume that has a write-back log left by an earlier (killed)
 * process writes that log back first: what it holds was acknowledged to a host, and serving the
 * volume without it would lose those writes (or show stale data), or let a later writeback open
 * replay them over newer data. A log another live process holds (or a writeback export of this
 * one) is refused (BUSY): that export serves the volume.
 */
export async function writeBackLeftover(name: string, inner: BlockVolume, settings: WriteBackSettings, log: Logger): Promise<void> {
  const path = writeBackPath(settings.dir, name);
  if (!existsSync(path)) return;
  log.warn({ path }, 'a write-back log of an earlier process: writing it back before serving writethrough');
  const leftover = openWriteBack(keepOpen(inner), { path, capacityBytes: settings.capacityBytes, log });
  await leftover.close();
}

/** The volume behind a view whose close() leaves it open (a leftover log's write-back closes its view). */
function keepOpen(volume: BlockVolume): BlockVolume {
  // writeMany goes through too: the write-back of a leftover log groups its writes as any other does.
  const writeMany = volume.writeMany?.bind(volume);
  const grouping = writeMany === undefined || volume.writeGroupBytes === undefined ? {} : { writeMany, writeGroupBytes: volume.writeGroupBytes };
  return {
    ...grouping,
    get name() {
      return volume.name;
    },
    get size() {
      return volume.size;
    },
    get blockSize() {
      return volume.blockSize;
    },
    read: (offset, length, into) => volume.read(offset, length, into),
    write: (offset, data, options) => volume.write(offset, data, options),
    flush: () => volume.flush(),
    discard: (offset, length) => volume.discard(offset, length),
    writeZeroes: (offset, length, options) => volume.writeZeroes(offset, length, options),
    close: async () => {},
  };
}
