/**
 * A read cache of a volume's blocks in the gateway's memory, for exports that own their image's
 * caching (writeback exports, under the write-back cache). A read of cached blocks is a copy out of
 * memory: no request to the cluster, no wake-up of an OSD and of the gateway again for its reply.
 * What qemu-storage-daemon gets from the host's page cache, and what librbd's cache does for reads.
 *
 * Coherence: every change of the volume this export makes goes through here. Only changes by
 * others (another client writing the image meanwhile) would go unseen, which a writeback export
 * already rules out: its write-back log holds acknowledged writes the cluster has not got.
 *
 * - Whole aligned blocks only (the volume's block size). A read covered by cached blocks is served;
 *   any other is read from the volume as asked, and fills the whole blocks it covered.
 * - A change (write, writeMany, discard, write-zeroes) drops its blocks when it is issued. A read
 *   fills nothing if a change over its range was in flight at any moment of the read: the volume
 *   may have answered with the bytes from before the change or after it, either right for that
 *   read but not for the cache.
 * - A write that succeeds fills the whole blocks it wrote (as a page cache keeps what is written:
 *   a block the guest wrote is read back from memory), unless another change over them was in
 *   flight at any moment of it: the volume may then hold either's bytes. A failed write fills
 *   nothing, and partly written blocks stay dropped.
 * - Full: CLOCK eviction (a block read since the hand last passed gets another lap).
 */
import type { BlockVolume, BlockWrite, BlockWriteOptions } from '../contracts/block.js';
import { assert } from '../errors.js';
import { BlockSlotIndex } from './block-slot-index.js';

/** A change of the volume's bytes, kept while a read that overlapped it in time may still fill. */
interface Change {
  /** The span of its bytes: for a writeMany, from its first byte to its last. */
  readonly start: number;
  readonly end: number;
  /** A writeMany's blocks (its span holds others'); undefined for a single range. */
  readonly blocks: ReadonlySet<number> | undefined;
  /** The clock when it was issued. */
  readonly startedAt: number;
  /** The clock when it completed; Infinity while in flight. */
  finishedAt: number;
}

export interface ReadCacheStats {
  /** Reads served from memory. */
  readonly hits: number;
  /** Reads that went to the volume. */
  readonly misses: number;
  /** Misses that could not fill: a change over their range was in flight meanwhile. */
  readonly raced: number;
  readonly blockBytes: number;
  readonly capacityBlocks: number;
  readonly cachedBlocks: number;
}

const OPEN = new Set<ReadCacheVolume>();
/** The read caches open in this process, for /metrics (kernel/metrics/read-cache-metrics.ts). */
export const openReadCaches: ReadonlySet<ReadCacheVolume> = OPEN;

export class ReadCacheVolume implements BlockVolume {
  readonly writeMany?: (writes: readonly BlockWrite[], options?: BlockWriteOptions) => Promise<void>;
  readonly writeGroupBytes?: number;

  private readonly blockBytes: number;
  private readonly slots: number;
  private readonly data: Buffer;
  private readonly slotOf: BlockSlotIndex;
  /** The block each slot holds, -1 when free. */
  private readonly blockOf: Float64Array;
  private readonly referenced: Uint8Array;
  private readonly free: number[] = [];
  private hand = 0;

  /** Ticks at every read start, change start and change completion: orders them. */
  private clock = 0;
  private readonly changes: Change[] = [];
  /** Start times of the reads in flight, to know which finished changes can be forgotten. */
  private readonly readsStartedAt = new Map<number, number>();
  private nextRead = 0;

  private counters = { hits: 0, misses: 0, raced: 0 };
  /** The volume's size at the last read. */
  private knownSize: number;

  constructor(
    private readonly inner: BlockVolume,
    capacityBytes: number,
  ) {
    this.blockBytes = inner.blockSize;
    assert(this.blockBytes > 0 && (this.blockBytes & (this.blockBytes - 1)) === 0, 'block size is a power of two');
    this.knownSize = inner.size;
    this.slots = Math.floor(capacityBytes / this.blockBytes);
    assert(this.slots > 0, 'a read cache holds at least one block');
    // Pages are taken as slots fill: a cache of an image never read costs no memory.
    this.data = Buffer.allocUnsafeSlow(this.slots * this.blockBytes);
    this.slotOf = new BlockSlotIndex(this.slots);
    this.blockOf = new Float64Array(this.slots).fill(-1);
    this.referenced = new Uint8Array(this.slots);
    for (let slot = this.slots - 1; slot >= 0; slot--) this.free.push(slot);
    OPEN.add(this);
    if (inner.writeMany !== undefined && inner.writeGroupBytes !== undefined) {
      const writeMany = inner.writeMany.bind(inner);
      this.writeGroupBytes = inner.writeGroupBytes;
      this.writeMany = (writes, options) => {
        // A write-back group: random writes of one object. Its span overlaps every other group of
        // that object in flight, so it keeps its blocks too: a read or a write of a block in the
        // span but in none of its writes is not taken for a race with it.
        const bs = this.blockBytes;
        let start = Infinity;
        let end = 0;
        let selfOverlapping = false;
        const blocks = new Set<number>();
        for (const w of writes) {
          const writeEnd = w.offset + byteLength(w.data);
          if (writeEnd === w.offset) continue;
          this.drop(w.offset, writeEnd);
          start = Math.min(start, w.offset);
          end = Math.max(end, writeEnd);
          const last = Math.floor((writeEnd - 1) / bs);
          for (let block = Math.floor(w.offset / bs); block <= last; block++) {
            if (blocks.has(block)) selfOverlapping = true;
            blocks.add(block);
          }
        }
        const change = this.record(start, end, blocks);
        // It keeps what it writes: the OSD need not (BlockWriteOptions.cachedAbove).
        return this.changeSettles(change, writeMany(writes, withCachedAbove(options)), () => {
          // Extents of one call that share a block land in an order this cache does not know.
          if (selfOverlapping) return;
          for (const w of writes) {
            const writeEnd = w.offset + byteLength(w.data);
            if (!this.changedSince(w.offset, writeEnd, change.startedAt, change)) this.fill(w.offset, w.data);
          }
        });
      };
    }
  }

  get name(): string {
    return this.inner.name;
  }

  get size(): number {
    return this.inner.size;
  }

  get blockSize(): number {
    return this.inner.blockSize;
  }

  get stats(): ReadCacheStats {
    return { ...this.counters, blockBytes: this.blockBytes, capacityBlocks: this.slots, cachedBlocks: this.slotOf.size };
  }

  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    // A shrink (`image resize`, by another client) discards the end: cached blocks past the new
    // end would come back stale if the image grew again. Noticed at the next read; a shrink and a
    // regrow both between two reads of this export go unseen (the CLI asks for --yes to shrink).
    const size = this.inner.size;
    if (size < this.knownSize) this.drop(size, this.knownSize);
    this.knownSize = size;
    const served = this.serve(offset, length, into);
    if (served !== undefined) {
      this.counters.hits++;
      return Promise.resolve(served);
    }
    this.counters.misses++;
    const id = this.nextRead++;
    const startedAt = ++this.clock;
    this.readsStartedAt.set(id, startedAt);
    return this.inner.read(offset, length, into).then(
      (bytes) => {
        this.readsStartedAt.delete(id);
        if (this.changedSince(offset, offset + length, startedAt)) this.counters.raced++;
        else this.fill(offset, [bytes]);
        this.forget();
        return bytes;
      },
      (err: unknown) => {
        this.readsStartedAt.delete(id);
        this.forget();
        throw err;
      },
    );
  }

  write(offset: number, data: readonly Uint8Array[], options?: BlockWriteOptions): Promise<void> {
    const end = offset + byteLength(data);
    const change = this.changeStarts(offset, end - offset);
    return this.changeSettles(change, this.inner.write(offset, data, withCachedAbove(options)), () => {
      if (!this.changedSince(offset, end, change.startedAt, change)) this.fill(offset, data);
    });
  }

  discard(offset: number, length: number): Promise<void> {
    return this.changeSettles(this.changeStarts(offset, length), this.inner.discard(offset, length));
  }

  writeZeroes(offset: number, length: number, options?: BlockWriteOptions): Promise<void> {
    return this.changeSettles(this.changeStarts(offset, length), this.inner.writeZeroes(offset, length, options));
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  close(): Promise<void> {
    this.detach();
    return this.inner.close();
  }

  /** Drops the cache and leaves the volume open (its owner closes it). */
  detach(): void {
    OPEN.delete(this);
    this.slotOf.clear();
    this.blockOf.fill(-1);
    this.free.length = 0;
  }

  /** The bytes of [offset, offset+length) when every block of it is cached; else undefined. */
  private serve(offset: number, length: number, into: Uint8Array | undefined): Uint8Array | undefined {
    if (length === 0) return undefined;
    const bs = this.blockBytes;
    const first = Math.floor(offset / bs);
    const last = Math.floor((offset + length - 1) / bs);
    for (let block = first; block <= last; block++) if (this.slotOf.get(block) === -1) return undefined;
    const out = into ?? Buffer.allocUnsafe(length);
    let done = 0;
    for (let block = first; block <= last; block++) {
      const slot = this.slotOf.get(block);
      this.referenced[slot] = 1;
      const from = block === first ? offset - block * bs : 0;
      const take = Math.min(bs - from, length - done);
      out.set(this.data.subarray(slot * bs + from, slot * bs + from + take), done);
      done += take;
    }
    return out;
  }

  /** The slot holding `block`, or one taken for it. */
  private slotFor(block: number): number {
    const slot = this.slotOf.get(block);
    return slot === -1 ? this.take(block) : slot;
  }

  /** A slot for `block`: a free one, or the next the CLOCK hand finds unreferenced. */
  private take(block: number): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      for (;;) {
        const at = this.hand;
        this.hand = (this.hand + 1) % this.slots;
        if (this.referenced[at] === 1) {
          this.referenced[at] = 0;
          continue;
        }
        slot = at;
        break;
      }
      this.slotOf.delete(this.blockOf[slot]!);
    }
    this.blockOf[slot] = block;
    this.slotOf.set(block, slot);
    return slot;
  }

  private changeStarts(offset: number, length: number): Change {
    this.drop(offset, offset + length);
    return this.record(offset, offset + length);
  }

  private record(start: number, end: number, blocks?: ReadonlySet<number>): Change {
    const change: Change = { start, end, blocks, startedAt: ++this.clock, finishedAt: Infinity };
    this.changes.push(change);
    return change;
  }

  /**
   * `done`, once the change's completion is on the clock; `landed` (a write filling what it wrote,
   * where no other change was in flight meanwhile) runs first if it succeeded. It runs before the
   * caller sees the write done, while the caller's buffers still hold what was written.
   */
  private changeSettles(change: Change, done: Promise<void>, landed?: () => void): Promise<void> {
    const finish = (): void => {
      change.finishedAt = ++this.clock;
      this.forget();
    };
    return done.then(
      () => {
        if (landed !== undefined) landed();
        finish();
      },
      (err: unknown) => {
        finish();
        throw err;
      },
    );
  }

  /** Caches the whole blocks that `data` (read or written at `offset`; a scatter list of parts of any size) covers. */
  private fill(offset: number, data: readonly Uint8Array[]): void {
    const bs = this.blockBytes;
    let part = 0;
    let partStart = offset;
    const end = offset + byteLength(data);
    for (let block = Math.ceil(offset / bs); (block + 1) * bs <= end; block++) {
      const slot = this.slotFor(block);
      let at = block * bs;
      let into = slot * bs;
      while (at < (block + 1) * bs) {
        while (partStart + data[part]!.byteLength <= at) partStart += data[part++]!.byteLength;
        const from = at - partStart;
        const take = Math.min(data[part]!.byteLength - from, (block + 1) * bs - at);
        this.data.set(data[part]!.subarray(from, from + take), into);
        at += take;
        into += take;
      }
      this.referenced[slot] = 1;
    }
  }

  /** Drops the cached blocks [start, end) touches, even in part. */
  private drop(start: number, end: number): void {
    if (end <= start || this.slotOf.size === 0) return;
    const bs = this.blockBytes;
    const first = Math.floor(start / bs);
    const last = Math.floor((end - 1) / bs);
    if (last - first + 1 <= this.slots) {
      for (let block = first; block <= last; block++) this.release(block);
      return;
    }
    // A range wider than the cache (a discard of the whole image): walk the slots, not the range.
    for (let slot = 0; slot < this.slots; slot++) {
      const block = this.blockOf[slot]!;
      if (block >= first && block <= last) this.release(block);
    }
  }

  private release(block: number): void {
    const slot = this.slotOf.delete(block);
    if (slot === -1) return;
    this.blockOf[slot] = -1;
    this.referenced[slot] = 0;
    this.free.push(slot);
  }

  /** A change over [start, end), other than `except`, was in flight at some moment after `startedAt`. */
  private changedSince(start: number, end: number, startedAt: number, except?: Change): boolean {
    for (const change of this.changes) {
      if (change !== except && change.finishedAt > startedAt && change.start < end && start < change.end && this.touches(change, start, end)) return true;
    }
    return false;
  }

  /** Whether `change`, whose span overlaps [start, end), has bytes there. */
  private touches(change: Change, start: number, end: number): boolean {
    const blocks = change.blocks;
    if (blocks === undefined) return true;
    const bs = this.blockBytes;
    const first = Math.floor(start / bs);
    const last = Math.floor((end - 1) / bs);
    if (last - first + 1 <= blocks.size) {
      for (let block = first; block <= last; block++) if (blocks.has(block)) return true;
      return false;
    }
    for (const block of blocks) if (block >= first && block <= last) return true;
    return false;
  }

  /** Forgets finished changes that no read or change in flight started before. */
  private forget(): void {
    if (this.changes.length === 0) return;
    let oldest = Infinity;
    for (const at of this.readsStartedAt.values()) if (at < oldest) oldest = at;
    for (const change of this.changes) if (change.finishedAt === Infinity && change.startedAt < oldest) oldest = change.startedAt;
    let kept = 0;
    for (const change of this.changes) if (change.finishedAt === Infinity || change.finishedAt > oldest) this.changes[kept++] = change;
    this.changes.length = kept;
  }
}

function byteLength(data: readonly Uint8Array[]): number {
  let length = 0;
  for (const part of data) length += part.byteLength;
  return length;
}

const CACHED_ABOVE: BlockWriteOptions = Object.freeze({ cachedAbove: true });

/** A write's options with cachedAbove set (this cache fills with what it writes); none given, nothing allocated. */
function withCachedAbove(options: BlockWriteOptions | undefined): BlockWriteOptions {
  if (options === undefined) return CACHED_ABOVE;
  return options.cachedAbove === true ? options : { ...options, cachedAbove: true };
}
