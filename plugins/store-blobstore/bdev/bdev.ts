/**
 * A block device: what the blobstore writes to. Offsets and lengths are multiples of `blockSize`.
 * Writes complete into the device's volatile cache; flush() makes every write completed before it
 * durable. A durable write is on the medium when it completes (RWF_DSYNC: FUA, or a flush the
 * kernel issues after it), for a log that must not wait for the next flush. Implementations:
 * FileBdev (io_uring or the fs module), MemoryBdev, FaultBdev.
 */
import { FastblockError, ErrorCode } from '../../../kernel/errors.js';

export type Buffers = Uint8Array | readonly Uint8Array[];

/**
 * What a write does to a read cache in front of the device (CachedBdev), if there is one: `none`
 * drops the blocks it covers (logs, metadata), `update` gives cached blocks the new bytes (object
 * data), `store` also caches the blocks it did not hold (object data about to be read).
 */
export type WriteCaching = 'none' | 'update' | 'store';

export interface Bdev {
  readonly name: string;
  readonly sizeBytes: number;
  readonly blockSize: number;
  /**
   * Fills `buffers` (a scatter list) from offset. `cache`: object data, worth keeping in a read
   * cache (CachedBdev) if there is one; a device without a cache ignores it.
   */
  read(offset: number, buffers: Buffers, cache?: boolean): Promise<void>;
  /**
   * Writes `buffers` (a gather list) at offset; `cache` as WriteCaching says (default none);
   * `durable`: on the medium once the promise resolves, not only in the device's cache.
   */
  write(offset: number, buffers: Buffers, cache?: WriteCaching, durable?: boolean): Promise<void>;
  /** The range reads as zeroes afterwards (without transferring zeroes where the device can). */
  writeZeroes(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function totalLength(buffers: Buffers): number {
  if (buffers instanceof Uint8Array) return buffers.length;
  let total = 0;
  for (const b of buffers) total += b.length;
  return total;
}

export function asList(buffers: Buffers): readonly Uint8Array[] {
  return buffers instanceof Uint8Array ? [buffers] : buffers;
}

/** Rejects I/O that is misaligned or outside the device: a caller bug, reported with its numbers. */
export function checkRange(bdev: Bdev, offset: number, length: number): void {
  if (offset % bdev.blockSize !== 0 || length % bdev.blockSize !== 0 || offset < 0 || length <= 0 || offset + length > bdev.sizeBytes) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `I/O outside ${bdev.name} or not block-aligned`, {
      device: bdev.name,
      offset,
      length,
      blockSize: bdev.blockSize,
      sizeBytes: bdev.sizeBytes,
    });
  }
}
