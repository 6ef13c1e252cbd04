/**
 * The NVMe/TCP target's cache modes, where an export's write-back log lives, and what a
 * writethrough export does about a log an earlier process left. Mirrors
 * plugins/frontend-nbd/write-back.ts and plugins/frontend-vhost/frontend.ts on purpose: the file
 * name must be the same in every frontend (one log per image name in a `writeBackDir` they share by
 * default), so an image is never cached twice on a host and a log left by any of them is found by all.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { BlockVolume } from '../../kernel/contracts/block.js';
import { openWriteBack, type WriteBackVolume } from '../../kernel/block/write-back-volume.js';

/**
 * How an export's writes reach the volume. `writethrough`: a write completes once the volume has
 * it, and the controller reports no volatile write cache (Identify VWC 0). `writeback`: once it is a
 * record in the export's write-back log (a file under `writeBackDir`); it goes to the volume in the
 * background, the controller reports a volatile write cache (VWC 1), and a host's Flush waits for
 * the write-back, a FUA write for its own. (The vhost and NBD plugins' modes too.)
 */
export type CacheMode = 'writethrough' | 'writeback';
export const CACHE_MODES: readonly CacheMode[] = ['writethrough', 'writeback'];

export function isCacheMode(value: unknown): value is CacheMode {
  return typeof value === 'string' && (CACHE_MODES as readonly string[]).includes(value);
}

export const MIN_WRITE_BACK_MIB = 4;
/** A ring is one Buffer in memory as well as a file: Node's largest Buffer is 4 GiB. */
export const MAX_WRITE_BACK_MIB = 4096;
/** The vhost and NBD plugins' default too: one log per image name on a host, whichever frontend serves it. */
export const DEFAULT_WRITE_BACK_DIR = '/dev/shm/fastblock-write-back';
export const DEFAULT_WRITE_BACK_MIB = 64;

export interface WriteBackSettings {
  /** nvmf.writeBackDir */
  readonly dir: string;
  /** nvmf.writeBackMiB, in bytes. */
  readonly capacityBytes: number;
}

/** The write-back log of a volume: `<dir>/<encodeURIComponent(pool/image)>.wblog` (the vhost and NBD plugins' name too). */
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
  return openWriteBack(inner, { path: writeBackPath(settings.dir, name), capacityBytes: settings.capacityBytes, log });
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
  return {
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
