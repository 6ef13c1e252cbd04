/**
 * An open image: a BlockVolume whose bytes live in objects replicated by the cluster.
 * A range is split at object boundaries; the pieces go out in parallel (bounded by the image's
 * in-flight limit) and the call resolves when every piece has succeeded.
 */
import type { BlockVolume, BlockWriteOptions } from '../kernel/contracts/block.js';
import type { ImageInfo } from '../kernel/contracts/cluster-map.js';
import { ErrorCode, FastblockError } from '../kernel/errors.js';
import { DataOp, MAX_DATA_LENGTH } from './data-protocol.js';
import type { InFlightLimit } from './in-flight-limit.js';
import type { ObjectIo } from './object-io.js';
import { mapRange, objectName, sliceScatter } from './striping.js';

const BLOCK_SIZE = 4096;

export class Image implements BlockVolume {
  readonly blockSize = BLOCK_SIZE;
  readonly size: number;
  private closed = false;
  /** Writes not yet settled; flush() has nothing else to wait for (each ack is already durable). */
  private readonly pendingWrites = new Set<Promise<unknown>>();

  constructor(
    readonly name: string,
    readonly info: ImageInfo,
    private readonly io: ObjectIo,
    private readonly limit: InFlightLimit,
    private readonly onClose: () => void = () => undefined,
  ) {
    this.size = info.sizeBytes;
  }

  private extents(offset: number, length: number) {
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, `image ${this.name} is closed`, { image: this.name });
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new FastblockError(ErrorCode.INVALID_ARGUMENT, `range [${offset}, +${length}) is outside image ${this.name} of ${this.size} bytes`, {
        image: this.name,
        offset,
        length,
        size: this.size,
      });
    }
    const pieceSize = Math.min(this.info.objectSizeBytes, MAX_DATA_LENGTH);
    return mapRange(offset, length, this.info.objectSizeBytes).flatMap((extent) =>
      // An object larger than one request's limit is written in several requests.
      extent.length <= pieceSize
        ? [extent]
        : mapRange(extent.offset, extent.length, pieceSize).map((p) => ({ ...p, objectIndex: extent.objectIndex, rangeOffset: extent.rangeOffset + p.rangeOffset })),
    );
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const extents = this.extents(offset, length);
    const out = into ?? new Uint8Array(length);
    if (out.length < length) throw new FastblockError(ErrorCode.INVALID_ARGUMENT, 'read buffer too small', { need: length, have: out.length });
    await Promise.all(
      extents.map((e) =>
        this.limit.run(async () => {
          const bytes = await this.io.run({ op: DataOp.READ, pool: this.info.pool, object: objectName(this.info.id, e.objectIndex), offset: e.offset, length: e.length });
          if (bytes.length !== e.length) {
            throw new FastblockError(ErrorCode.PROTOCOL, `read of ${e.length} bytes returned ${bytes.length}`, { image: this.name, offset: offset + e.rangeOffset });
          }
          out.set(bytes, e.rangeOffset);
        }),
      ),
    );
    return out;
  }

  write(offset: number, data: readonly Uint8Array[], _options?: BlockWriteOptions): Promise<void> {
    const length = data.reduce((sum, d) => sum + d.length, 0);
    return this.track(
      this.each(offset, length, DataOp.WRITE, (rangeOffset, n) => sliceScatter(data, rangeOffset, n)),
    );
  }

  /** Every acknowledged write is already durable on a majority; flush waits for those still in flight. */
  async flush(): Promise<void> {
    if (this.closed) throw new FastblockError(ErrorCode.CLOSED, `image ${this.name} is closed`, { image: this.name });
    await Promise.allSettled([...this.pendingWrites]);
  }

  discard(offset: number, length: number): Promise<void> {
    return this.track(this.each(offset, length, DataOp.DISCARD));
  }

  writeZeroes(offset: number, length: number, _options?: BlockWriteOptions): Promise<void> {
    return this.track(this.each(offset, length, DataOp.WRITE_ZEROES));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    this.onClose();
  }

  private async each(offset: number, length: number, op: DataOp, payload?: (rangeOffset: number, n: number) => Uint8Array[]): Promise<void> {
    const extents = this.extents(offset, length);
    await Promise.all(
      extents.map((e) =>
        this.limit.run(() =>
          this.io.run({ op, pool: this.info.pool, object: objectName(this.info.id, e.objectIndex), offset: e.offset, length: e.length, payload: payload?.(e.rangeOffset, e.length) }),
        ),
      ),
    );
  }

  private track(promise: Promise<void>): Promise<void> {
    this.pendingWrites.add(promise);
    const done = () => this.pendingWrites.delete(promise);
    promise.then(done, done);
    return promise;
  }
}
