/**
 * An open image: a BlockVolume whose bytes live in objects replicated by the cluster.
 * A range is split at object boundaries; the pieces go out in parallel (bounded by the image's
 * in-flight limit) and the call resolves when every piece has succeeded.
 *
 * Most I/O is one piece (a 4 KiB block inside one 4 MiB object): that case goes straight to one
 * object request, without building extent lists, closures or a Promise.all.
 */
import type { BlockVolume, BlockWriteOptions } from '../kernel/contracts/block.js';
import type { ImageInfo } from '../kernel/contracts/cluster-map.js';
import { ErrorCode, FastblockError } from '../kernel/errors.js';
import { DataOp, MAX_DATA_LENGTH } from './data-protocol.js';
import type { InFlightLimit } from './in-flight-limit.js';
import type { ObjectIo, ObjectRequest } from './object-io.js';
import { ObjectRefs, type ObjectRef } from './object-ref.js';
import { mapRange, sliceScatter, type ObjectExtent } from './striping.js';
import { WriteBarrier, type WriteGeneration } from './write-barrier.js';

const BLOCK_SIZE = 4096;

type WriteOp = typeof DataOp.WRITE | typeof DataOp.DISCARD | typeof DataOp.WRITE_ZEROES;

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

  write(offset: number, data: readonly Uint8Array[], _options?: BlockWriteOptions): Promise<void> {
    let length = 0;
    for (const piece of data) length += piece.length;
    return this.change(DataOp.WRITE, offset, length, data);
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
    const piece = new Piece(DataOp.READ, this.current.pool, this.objects.of(index), offset - index * objectSize, length, undefined, into, this.limit, undefined);
    return this.io.run(piece).then(() => out);
  }

  /** A write, discard or write-zeroes: counted for flush() until it settles, either way. */
  private change(op: WriteOp, offset: number, length: number, data?: readonly Uint8Array[]): Promise<void> {
    try {
      this.check(offset, length);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.onePiece(offset, length)) return this.changePiece(op, offset, length, data, this.writes.enter());
    return this.changePieces(op, offset, length, data);
  }

  private async changePieces(op: WriteOp, offset: number, length: number, data: readonly Uint8Array[] | undefined): Promise<void> {
    const generation = this.writes.enter();
    try {
      await Promise.all(
        this.pieces(offset, length).map((e) =>
          this.changePiece(op, offset + e.rangeOffset, e.length, data && sliceScatter(data, e.rangeOffset, e.length), undefined),
        ),
      );
    } finally {
      generation.leave();
    }
  }

  /** One object request of a change; `generation` (when given) is left when it settles. */
  private changePiece(op: WriteOp, offset: number, length: number, payload: readonly Uint8Array[] | undefined, generation: WriteGeneration | undefined): Promise<void> {
    if (!this.limit.tryAcquire()) return this.limit.acquire().then(() => this.changeHeld(op, offset, length, payload, generation));
    return this.changeHeld(op, offset, length, payload, generation);
  }

  private changeHeld(op: WriteOp, offset: number, length: number, payload: readonly Uint8Array[] | undefined, generation: WriteGeneration | undefined): Promise<void> {
    const objectSize = this.current.objectSizeBytes;
    const index = Math.floor(offset / objectSize);
    return this.io.run(new Piece(op, this.current.pool, this.objects.of(index), offset - index * objectSize, length, payload, undefined, this.limit, generation));
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
  ) {}

  settled(): void {
    this.limit.release();
    this.generation?.leave();
  }
}
