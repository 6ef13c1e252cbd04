/**
 * An open image: a BlockVolume whose bytes live in objects replicated by the cluster.
 * A range is split at object boundaries; the pieces go out in parallel (bounded by the image's
 * in-flight limit) and the call resolves when every piece has succeeded.
 *
 * Most I/O is one piece (a 4 KiB block inside one 4 MiB object): that case goes straight to one
 * object request, without building extent lists, closures or a Promise.all.
 *
 * writeMany takes many small writes at once (a write-back cache's dirty blocks) and sends those
 * that fall in one object as one request (WRITE_EXTENTS): a request's fixed cost at the OSD (RPC,
 * raft proposal, journal record, apply, reply) is paid per object rather than per block.
 */
import type { BlockVolume, BlockWrite, BlockWriteOptions } from '../kernel/contracts/block.js';
import type { ImageInfo } from '../kernel/contracts/cluster-map.js';
import { ErrorCode, FastblockError } from '../kernel/errors.js';
import { settleAll } from '../kernel/settle-all.js';
import { DataFlag, DataOp, MAX_DATA_LENGTH, MAX_EXTENTS } from './data-protocol.js';
import type { InFlightLimit } from './in-flight-limit.js';
import type { ObjectIo, ObjectRequest } from './object-io.js';
import { ObjectRefs, type ObjectRef } from './object-ref.js';
import { mapRange, sliceScatter, type ObjectExtent } from './striping.js';
import { WriteBarrier, type WriteGeneration } from './write-barrier.js';

const BLOCK_SIZE = 4096;

type WriteOp = typeof DataOp.WRITE | typeof DataOp.DISCARD | typeof DataOp.WRITE_ZEROES;

/**
 * A write's DataRequest flags: cachedAbove (the caller, a writeback export's read cache, keeps the
 * bytes) becomes NOCACHE, so the PG's leader does not keep them in its store's read cache.
 */
const writeFlags = (options: BlockWriteOptions | undefined): number => (options?.cachedAbove === true ? DataFlag.NOCACHE : 0);

/** The writes of a writeMany call that go to one object in one request. */
interface WriteGroup {
  readonly index: number;
  /** offset0, length0, ... inside the object, ascending; adjacent writes merged into one extent. */
  readonly extents: number[];
  readonly payload: Uint8Array[];
  length: number;
}

export class Image implements BlockVolume {
  readonly blockSize = BLOCK_SIZE;
  private closed = false;
  private readonly objects: ObjectRefs;
  /** The largest piece one object request carries. */
  private readonly pieceSize: number;
  private readonly writes = new WriteBarrier();

  constructor(
    readonly name: string,
    private current: ImageInfo,
    private readonly io: ObjectIo,
    private readonly limit: InFlightLimit,
    /** Called once the image is closed: what the client holds for it goes (its watch at the monitor). */
    private readonly onClose: () => void | Promise<void> = () => undefined,
    /** The image as the newest cluster map describes it (a resize shows here); undefined if it left the map. */
    private readonly latest: () => ImageInfo | undefined = () => undefined,
  ) {
    this.objects = new ObjectRefs(current.id);
    this.pieceSize = Math.min(current.objectSizeBytes, MAX_DATA_LENGTH);
  }

  get info(): ImageInfo {
    return this.current;
  }

  /** The size in the newest map this client holds, so a resize reaches images already open. */
  get size(): number {
    const latest = this.latest();
    if (latest !== undefined && latest !== this.current && latest.id === this.current.id) this.current = latest;
    return this.current.sizeBytes;
  }

  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    try {
      this.check(offset, length);
      const out = into ?? new Uint8Array(length);
      if (out.length < length) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'read buffer too small', { need: length, have: out.length });
      if (this.onePiece(offset, length)) return this.readPiece(offset, length, out, 0);
      return this.readPieces(offset, length, out);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  write(offset: number, data: readonly Uint8Array[], options?: BlockWriteOptions): Promise<void> {
    let length = 0;
    for (const piece of data) length += piece.length;
    return this.change(DataOp.WRITE, offset, length, data, writeFlags(options));
  }

  /** What writeMany sends together: the writes inside one object. */
  get writeGroupBytes(): number {
    return this.current.objectSizeBytes;
  }

  /**
   * Several writes that do not overlap, as one call: each is checked as write() checks it, and
   * nothing is sent unless all pass (overlapping writes are refused, INVALID_ARGUMENT). The writes
   * inside one object go as one request, a WRITE_EXTENTS (or a WRITE when they make one range);
   * a group longer than one request may be, or of more than MAX_EXTENTS extents, as several. Each
   * request takes an in-flight slot and is counted for flush() from this call on; it is retried
   * as a write is. Resolves once every request succeeded; once every request settled, rejects
   * with the first failure (the others are applied or not, each as it went). `options` as write()'s.
   */
  writeMany(writes: readonly BlockWrite[], options?: BlockWriteOptions): Promise<void> {
    let groups: WriteGroup[];
    try {
      groups = this.groupWrites(writes);
    } catch (err) {
      return Promise.reject(err);
    }
    const flags = writeFlags(options);
    if (groups.length === 1) return this.sendGroup(groups[0], this.writes.enter(), flags);
    // Every request joins the barrier now, before any waits for a slot: a flush() called once
    // this returns covers them all.
    const sent: Promise<void>[] = [];
    for (const group of groups) sent.push(this.sendGroup(group, this.writes.enter(), flags));
    // Settles once every request has: a caller that retries after a failure must not race a
    // request of the same call still in flight.
    return settleAll(sent);
  }

  /** The writes checked, sorted, cut at object (and request) boundaries and grouped by object. */
  private groupWrites(writes: readonly BlockWrite[]): WriteGroup[] {
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, `image ${this.name} is closed`, { image: this.name });
    const ranges: Array<{ offset: number; length: number; data: readonly Uint8Array[] }> = [];
    for (const write of writes) {
      let length = 0;
      for (const piece of write.data) length += piece.length;
      this.check(write.offset, length);
      if (length > 0) ranges.push({ offset: write.offset, length, data: write.data });
    }
    ranges.sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < ranges.length; i++) {
      const before = ranges[i - 1];
      if (ranges[i].offset < before.offset + before.length) {
        throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `writes [${before.offset}, +${before.length}) and [${ranges[i].offset}, +${ranges[i].length}) of image ${this.name} overlap`, {
          image: this.name,
          offsets: [before.offset, ranges[i].offset],
        });
      }
    }
    const objectSize = this.current.objectSizeBytes;
    const groups: WriteGroup[] = [];
    let group: WriteGroup | undefined;
    const add = (index: number, offset: number, length: number, payload: readonly Uint8Array[]): void => {
      const n = group === undefined ? 0 : group.extents.length;
      const adjacent = n > 0 && group!.extents[n - 2] + group!.extents[n - 1] === offset;
      if (group === undefined || group.index !== index || group.length + length > this.pieceSize || (!adjacent && n === 2 * MAX_EXTENTS)) {
        group = { index, extents: [offset, length], payload: [...payload], length };
        groups.push(group);
        return;
      }
      if (adjacent) group.extents[n - 1] += length;
      else group.extents.push(offset, length);
      for (const piece of payload) group.payload.push(piece);
      group.length += length;
    };
    for (const range of ranges) {
      if (this.onePiece(range.offset, range.length)) {
        const index = Math.floor(range.offset / objectSize);
        add(index, range.offset - index * objectSize, range.length, range.data);
        continue;
      }
      for (const piece of this.pieces(range.offset, range.length)) add(piece.objectIndex, piece.offset, piece.length, sliceScatter(range.data, piece.rangeOffset, piece.length));
    }
    return groups;
  }

  /** One object request of writeMany: a WRITE for one extent, a WRITE_EXTENTS otherwise; leaves `generation` when it settles. */
  private sendGroup(group: WriteGroup, generation: WriteGeneration, flags: number): Promise<void> {
    const object = this.objects.of(group.index);
    const piece =
      group.extents.length === 2
        ? new Piece(DataOp.WRITE, this.current.pool, object, group.extents[0], group.length, group.payload, undefined, this.limit, generation, undefined, flags)
        : new Piece(DataOp.WRITE_EXTENTS, this.current.pool, object, 0, group.length, group.payload, undefined, this.limit, generation, group.extents, flags);
    if (!this.limit.tryAcquire()) return this.limit.acquire().then(() => this.io.run(piece));
    return this.io.run(piece);
  }

  /** Every acknowledged write is already durable on a majority; flush waits for those still in flight. */
  flush(): Promise<void> {
    if (this.closed) return Promise.reject(new FastblockError(ErrorCode.CLOSED, `image ${this.name} is closed`, { image: this.name }));
    return this.writes.wait();
  }

  discard(offset: number, length: number): Promise<void> {
    return this.change(DataOp.DISCARD, offset, length);
  }

  writeZeroes(offset: number, length: number, _options?: BlockWriteOptions): Promise<void> {
    return this.change(DataOp.WRITE_ZEROES, offset, length);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    await this.onClose();
  }

  private check(offset: number, length: number): void {
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, `image ${this.name} is closed`, { image: this.name });
    const size = this.size;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `range [${offset}, +${length}) is outside image ${this.name} of ${size} bytes`, {
        image: this.name,
        offset,
        length,
        size,
      });
    }
  }

  /** Whether the range fits one object request: inside one object, and not longer than a request may be. */
  private onePiece(offset: number, length: number): boolean {
    const objectSize = this.current.objectSizeBytes;
    return length <= this.pieceSize && offset + length <= (Math.floor(offset / objectSize) + 1) * objectSize;
  }

  /** The range as pieces, each inside one object and at most one request long. */
  private pieces(offset: number, length: number): ObjectExtent[] {
    const objectSize = this.current.objectSizeBytes;
    return mapRange(offset, length, objectSize).flatMap((extent) =>
      // An object larger than one request's limit is written in several requests.
      extent.length <= this.pieceSize
        ? [extent]
        : mapRange(extent.offset, extent.length, this.pieceSize).map((p) => ({ ...p, objectIndex: extent.objectIndex, rangeOffset: extent.rangeOffset + p.rangeOffset })),
    );
  }

  private async readPieces(offset: number, length: number, out: Uint8Array): Promise<Uint8Array> {
    await Promise.all(this.pieces(offset, length).map((e) => this.readPiece(offset + e.rangeOffset, e.length, out, e.rangeOffset)));
    return out;
  }

  /**
   * Reads image bytes [offset, +length), inside one piece, into out at `at`; resolves with out.
   * Promise callbacks rather than an async function: a suspended async frame per I/O was a large
   * share of the gateway's garbage (see ObjectIo.run).
   */
  private readPiece(offset: number, length: number, out: Uint8Array, at: number): Promise<Uint8Array> {
    if (!this.limit.tryAcquire()) return this.limit.acquire().then(() => this.readHeld(offset, length, out, at));
    return this.readHeld(offset, length, out, at);
  }

  /** readPiece with its in-flight slot taken; the request gives the slot back when it settles. */
  private readHeld(offset: number, length: number, out: Uint8Array, at: number): Promise<Uint8Array> {
    const objectSize = this.current.objectSizeBytes;
    const index = Math.floor(offset / objectSize);
    const into = at === 0 && out.length === length ? out : out.subarray(at, at + length);
    const piece = new Piece(DataOp.READ, this.current.pool, this.objects.of(index), offset - index * objectSize, length, undefined, into, this.limit, undefined, undefined, 0);
    return this.io.run(piece).then(() => out);
  }

  /** A write, discard or write-zeroes: counted for flush() until it settles, either way. `flags`: DataFlag bits. */
  private change(op: WriteOp, offset: number, length: number, data?: readonly Uint8Array[], flags = 0): Promise<void> {
    try {
      this.check(offset, length);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.onePiece(offset, length)) return this.changePiece(op, offset, length, data, this.writes.enter(), flags);
    return this.changePieces(op, offset, length, data, flags);
  }

  private async changePieces(op: WriteOp, offset: number, length: number, data: readonly Uint8Array[] | undefined, flags: number): Promise<void> {
    const generation = this.writes.enter();
    // A flush must cover every piece: the change leaves the barrier once the last piece settled,
    // even when an earlier one failed.
    try {
      await settleAll(this.pieces(offset, length).map((e) => this.changePiece(op, offset + e.rangeOffset, e.length, data && sliceScatter(data, e.rangeOffset, e.length), undefined, flags)));
    } finally {
      generation.leave();
    }
  }

  /** One object request of a change; `generation` (when given) is left when it settles. */
  private changePiece(op: WriteOp, offset: number, length: number, payload: readonly Uint8Array[] | undefined, generation: WriteGeneration | undefined, flags: number): Promise<void> {
    if (!this.limit.tryAcquire()) return this.limit.acquire().then(() => this.changeHeld(op, offset, length, payload, generation, flags));
    return this.changeHeld(op, offset, length, payload, generation, flags);
  }

  private changeHeld(op: WriteOp, offset: number, length: number, payload: readonly Uint8Array[] | undefined, generation: WriteGeneration | undefined, flags: number): Promise<void> {
    const objectSize = this.current.objectSizeBytes;
    const index = Math.floor(offset / objectSize);
    return this.io.run(new Piece(op, this.current.pool, this.objects.of(index), offset - index * objectSize, length, payload, undefined, this.limit, generation, undefined, flags));
  }
}

/**
 * One object request of an image, holding an in-flight slot (and, for a change, its place in the
 * write barrier) that it gives back when it settles: ObjectIo calls settled(), so a request needs
 * no promise reaction of the image's own.
 */
class Piece implements ObjectRequest {
  constructor(
    readonly op: DataOp,
    readonly pool: number,
    readonly object: ObjectRef,
    readonly offset: number,
    readonly length: number,
    readonly payload: readonly Uint8Array[] | undefined,
    readonly into: Uint8Array | undefined,
    private readonly limit: InFlightLimit,
    private readonly generation: WriteGeneration | undefined,
    readonly extents: readonly number[] | undefined,
    readonly flags: number,
  ) {}

  settled(): void {
    this.limit.release();
    this.generation?.leave();
  }
}
