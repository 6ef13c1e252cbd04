/**
 * object_store: one blob per object, grouped by PG. Xattrs name the blob (kind, pg, name) and
 * carry the object's size; the blob is sized in clusters and thin, so holes cost nothing. Byte
 * ranges that do not start and end on page boundaries are read-modify-written page-wise, under
 * the object's page locks. Reads of a missing object or past its size return zeroes (block
 * semantics: an image's unwritten areas are objects that do not exist yet).
 */
import { FastblockError, ErrorCode } from '../../kernel/errors.js';
import type { ObjectChunk, ObjectStat, ObjectStore, ObjectWriteOptions, PgId } from '../../kernel/contracts/store.js';
import type { WriteCaching } from './bdev/bdev.js';
import { PAGE, allocAligned, bufferPool } from './bdev/aligned-memory.js';
import type { Blob } from './blobstore/blob.js';
import type { Blobstore } from './blobstore/blobstore.js';
import { readU64, viewOf, writeU64 } from './blobstore/layout.js';
import { PageLocks } from './page-locks.js';

export const XATTR_KIND = 'kind';
export const XATTR_PG = 'pg';
export const XATTR_NAME = 'name';
const XATTR_SIZE = 'size';
/** Largest object: 2^40 bytes (a u32 cluster count is the blob limit; this keeps sizes exact). */
const MAX_OBJECT_BYTES = 2 ** 40;

const encoder = new TextEncoder();
const floorPage = (x: number): number => Math.floor(x / PAGE) * PAGE;
const ceilPage = (x: number): number => Math.ceil(x / PAGE) * PAGE;

interface ObjectEntry {
  readonly blob: Blob;
  size: number;
  readonly locks: PageLocks;
}

function sizeBytes(size: number): Uint8Array {
  const out = new Uint8Array(8);
  writeU64(viewOf(out), 0, size);
  return out;
}

export class BlobObjectStore implements ObjectStore {
  private readonly pgs = new Map<PgId, Map<string, ObjectEntry>>();

  constructor(private readonly blobstore: Blobstore) {}

  /** Adopts an object blob found at load. */
  adopt(blob: Blob): void {
    const pg = new TextDecoder().decode(blob.getXattr(XATTR_PG));
    const name = new TextDecoder().decode(blob.getXattr(XATTR_NAME));
    const size = blob.getXattr(XATTR_SIZE);
    this.objects(pg, true).set(name, { blob, size: size === undefined ? 0 : readU64(viewOf(size), 0), locks: new PageLocks() });
  }

  get objectCount(): number {
    let n = 0;
    for (const objects of this.pgs.values()) n += objects.size;
    return n;
  }

  read(pg: PgId, object: string, offset: number, length: number): Promise<Uint8Array> {
    try {
      checkRange(pg, object, offset, length);
      const entry = this.pgs.get(pg)?.get(object);
      if (length === 0) return Promise.resolve(new Uint8Array(0));
      if (entry === undefined || offset >= entry.blob.sizeBytes) return Promise.resolve(new Uint8Array(length));
      const stored = Math.min(offset + length, entry.blob.sizeBytes);
      if (offset % PAGE === 0 && length % PAGE === 0 && stored === offset + length) {
        // Aligned: the device fills the buffer the caller gets.
        const out = allocAligned(length);
        return entry.blob.read(offset, out, true).then(() => out);
      }
      return this.readUnaligned(entry, offset, length, stored);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private async readUnaligned(entry: ObjectEntry, offset: number, length: number, stored: number): Promise<Uint8Array> {
    const start = floorPage(offset);
    const window = allocAligned(ceilPage(stored) - start);
    await entry.blob.read(start, window, true);
    if (stored === offset + length) return window.subarray(offset - start, offset - start + length);
    const out = new Uint8Array(length);
    out.set(window.subarray(offset - start, stored - start));
    return out;
  }

  overwrites(pg: PgId, object: string, offset: number, length: number): boolean {
    if (offset % PAGE !== 0 || length % PAGE !== 0 || length === 0) return false;
    const entry = this.pgs.get(pg)?.get(object);
    // Within the object's size (the write does not grow it: no xattr change) and its space held,
    // with no earlier mutation of those pages pending: write() takes its fast path below.
    if (entry === undefined || offset + length > entry.size) return false;
    return entry.locks.isFree(offset / PAGE, (offset + length) / PAGE) && entry.blob.holdsSpace(offset, length);
  }

  write(pg: PgId, object: string, offset: number, data: readonly Uint8Array[], options?: ObjectWriteOptions): Promise<void> {
    const caching: WriteCaching = options?.keepCached ? 'store' : 'update';
    let length = 0;
    let entry: ObjectEntry;
    try {
      for (const d of data) length += d.length;
      checkRange(pg, object, offset, length);
      entry = this.entryFor(pg, object, offset + length);
    } catch (err) {
      return Promise.reject(err);
    }
    if (length === 0) return Promise.resolve();
    if (offset % PAGE === 0 && length % PAGE === 0) {
      // The common case, whole pages that no earlier write holds: straight to the blob.
      const release = entry.locks.tryAcquire(offset / PAGE, (offset + length) / PAGE);
      if (release !== undefined) {
        return entry.blob.write(offset, data, caching).then(
          () => {
            this.grow(entry, offset + length);
            release();
          },
          (err: unknown) => {
            release();
            throw err;
          },
        );
      }
    }
    return this.writeLocked(entry, offset, length, data, caching);
  }

  private async writeLocked(entry: ObjectEntry, offset: number, length: number, data: readonly Uint8Array[], caching: WriteCaching): Promise<void> {
    const release = await entry.locks.acquire(Math.floor(offset / PAGE), Math.ceil((offset + length) / PAGE));
    try {
      if (offset % PAGE === 0 && length % PAGE === 0) {
        await entry.blob.write(offset, data, caching);
      } else {
        await this.readModifyWrite(entry, offset, length, caching, (window, at) => {
          for (const d of data) {
            window.set(d, at);
            at += d.length;
          }
        });
      }
      this.grow(entry, offset + length);
    } finally {
      release();
    }
  }

  /**
   * An absent object already reads as zeroes: a discard leaves it absent rather than creating it.
   * A discard that covers everything an object holds releases the object itself (its blob and its
   * metadata), as `image rm` and a shrink do object by object; anything less unmaps the range.
   */
  discard(pg: PgId, object: string, offset: number, length: number): Promise<void> {
    try {
      checkRange(pg, object, offset, length);
    } catch (err) {
      return Promise.reject(err);
    }
    const entry = this.pgs.get(pg)?.get(object);
    if (entry === undefined || length === 0) return Promise.resolve();
    if (offset === 0 && length >= entry.size) return this.remove(pg, object);
    return this.zero(pg, object, offset, length);
  }

  writeZeroes(pg: PgId, object: string, offset: number, length: number): Promise<void> {
    return this.zero(pg, object, offset, length);
  }

  async stat(pg: PgId, object: string): Promise<ObjectStat | undefined> {
    const entry = this.pgs.get(pg)?.get(object);
    return entry === undefined ? undefined : { size: entry.size };
  }

  async remove(pg: PgId, object: string): Promise<void> {
    const objects = this.pgs.get(pg);
    const entry = objects?.get(object);
    if (entry === undefined) return;
    objects!.delete(object);
    if (objects!.size === 0) this.pgs.delete(pg);
    // In-flight writes of the object finish first; the blob goes after them.
    const release = await entry.locks.acquire(0, Number.MAX_SAFE_INTEGER);
    try {
      if (!entry.blob.deleted) this.blobstore.deleteBlob(entry.blob);
    } finally {
      release();
    }
  }

  async list(pg: PgId): Promise<string[]> {
    return [...(this.pgs.get(pg)?.keys() ?? [])].sort();
  }

  async *exportPg(pg: PgId, chunkBytes: number): AsyncIterable<ObjectChunk> {
    if (!Number.isInteger(chunkBytes) || chunkBytes < PAGE) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'export chunk must be at least one page', { pg, chunkBytes });
    }
    const step = floorPage(chunkBytes);
    for (const object of await this.list(pg)) {
      const entry = this.pgs.get(pg)?.get(object);
      if (entry === undefined || entry.blob.deleted) continue;
      const size = entry.size;
      let sent = false;
      for (const extent of entry.blob.extents()) {
        const end = Math.min(extent.offset + extent.length, ceilPage(size));
        for (let at = extent.offset; at < end; at += step) {
          const n = Math.min(step, end - at);
          const data = allocAligned(n);
          await entry.blob.read(at, data);
          const upto = Math.min(n, size - at);
          yield { object, offset: at, data: upto === n ? data : data.subarray(0, upto), size };
          sent = true;
        }
      }
      if (!sent) yield { object, offset: 0, data: new Uint8Array(0), size };
    }
  }

  async importPg(pg: PgId, chunks: AsyncIterable<ObjectChunk>): Promise<void> {
    await this.removePg(pg);
    for await (const chunk of chunks) {
      if (chunk.data.length > 0) await this.write(pg, chunk.object, chunk.offset, [chunk.data]);
      const entry = this.entryFor(pg, chunk.object, chunk.size);
      this.grow(entry, chunk.size);
    }
  }

  async removePg(pg: PgId): Promise<void> {
    for (const object of await this.list(pg)) await this.remove(pg, object);
  }

  private objects(pg: PgId, create: boolean): Map<string, ObjectEntry> {
    let objects = this.pgs.get(pg);
    if (objects === undefined && create) this.pgs.set(pg, (objects = new Map()));
    return objects ?? new Map();
  }

  /** The object's entry, created if missing, its blob big enough for `end` bytes. */
  private entryFor(pg: PgId, object: string, end: number): ObjectEntry {
    const objects = this.objects(pg, true);
    let entry = objects.get(object);
    if (entry === undefined) {
      const blob = this.blobstore.createBlob(
        new Map([
          [XATTR_KIND, encoder.encode('object')],
          [XATTR_PG, encoder.encode(pg)],
          [XATTR_NAME, encoder.encode(object)],
        ]),
      );
      entry = { blob, size: 0, locks: new PageLocks() };
      objects.set(object, entry);
    }
    const clusters = Math.ceil(end / this.blobstore.clusterSize);
    if (clusters > entry.blob.clusterCount) entry.blob.resize(clusters);
    return entry;
  }

  private grow(entry: ObjectEntry, end: number): void {
    if (end <= entry.size || entry.blob.deleted) return;
    entry.size = end;
    entry.blob.setXattr(XATTR_SIZE, sizeBytes(end));
  }

  /** Reads the edge pages of [offset, offset + length), lets `fill` patch the window, writes it back. */
  private async readModifyWrite(entry: ObjectEntry, offset: number, length: number, caching: WriteCaching, fill: (window: Buffer, at: number) => void): Promise<void> {
    const start = floorPage(offset);
    const end = ceilPage(offset + length);
    const window = bufferPool.acquire(end - start);
    try {
      const reads: Promise<void>[] = [];
      if (offset !== start) reads.push(entry.blob.read(start, window.subarray(0, PAGE), true));
      if (offset + length !== end && (end - PAGE !== start || offset === start)) reads.push(entry.blob.read(end - PAGE, window.subarray(end - start - PAGE, end - start), true));
      await Promise.all(reads);
      fill(window, offset - start);
      await entry.blob.write(start, window.subarray(0, end - start), caching);
    } finally {
      bufferPool.release(window);
    }
  }

  private async zero(pg: PgId, object: string, offset: number, length: number): Promise<void> {
    checkRange(pg, object, offset, length);
    const entry = this.entryFor(pg, object, offset + length);
    if (length === 0) return;
    const release = await entry.locks.acquire(Math.floor(offset / PAGE), Math.ceil((offset + length) / PAGE));
    try {
      const innerStart = ceilPage(offset);
      const innerEnd = floorPage(offset + length);
      const work: Promise<void>[] = [];
      if (innerEnd > innerStart) work.push(entry.blob.unmap(innerStart, innerEnd - innerStart));
      const edges: [number, number][] = innerEnd > innerStart ? [[offset, innerStart], [innerEnd, offset + length]] : [[offset, offset + length]];
      for (const [from, to] of edges) {
        if (to > from) work.push(this.readModifyWrite(entry, from, to - from, 'update', (window, at) => window.fill(0, at, at + (to - from))));
      }
      await Promise.all(work);
      this.grow(entry, offset + length);
    } finally {
      release();
    }
  }
}

function checkRange(pg: PgId, object: string, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > MAX_OBJECT_BYTES || object.length === 0) {
    throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'object range out of bounds', { pg, object, offset, length, maxBytes: MAX_OBJECT_BYTES });
  }
}
