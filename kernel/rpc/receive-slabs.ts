/**
 * Receive slabs and their reuse.
 *
 * A socket reads into a slab and frames are parsed where they lie, so every frame's header and
 * payload are views of it. Left to the garbage collector, each slab is a fresh allocation: at
 * 128 KiB frames that is megabytes a second of pages the kernel must zero on first touch, and an
 * external-memory churn that keeps V8 collecting. A slab whose every frame was given back is
 * therefore reused instead.
 *
 * A slab counts its holders: the decoder while it reads into it, and each frame parsed from it
 * until that frame is released. A consumer releases a frame only when it has promised not to use
 * its views any more (Frame.release()); a frame that is never released keeps its slab out of the
 * pool for good, and the slab is collected as garbage once nothing views it. So reuse is opt-in
 * per frame, and forgetting to release costs memory churn, never corrupted bytes.
 */
import { assert } from '../errors.js';

const KiB = 1024;
/** Slab sizes are powers of two in [SMALLEST, LARGEST]; a larger need gets a buffer of its own, never pooled. */
export const SMALLEST_SLAB_BYTES = 256 * KiB;
export const LARGEST_SLAB_BYTES = 4096 * KiB;
const CLASSES = Math.log2(LARGEST_SLAB_BYTES / SMALLEST_SLAB_BYTES) + 1;
/** Idle slabs a pool keeps at most, in bytes; the rest go to the garbage collector. */
const DEFAULT_IDLE_BYTES = 32 * 1024 * KiB;

export class ReceiveSlab {
  /** The decoder (until it moves on) plus one per frame parsed from the slab and not yet released. */
  private holders = 1;

  constructor(
    readonly bytes: Buffer,
    private readonly pool: ReceiveSlabPool | undefined,
  ) {}

  /** A frame now views the slab. */
  hold(): void {
    this.holders++;
  }

  /** A holder is done with its views; the last one returns the slab to its pool. */
  release(): void {
    assert(this.holders > 0, 'receive slab released more often than it was held');
    if (--this.holders === 0) this.pool?.put(this);
  }

  /** Taken from the pool again: only the taker holds it. */
  reset(): void {
    assert(this.holders === 0, 'a receive slab in use was taken from the pool');
    this.holders = 1;
  }
}

/**
 * Idle slabs by size class, shared by the decoders of one transport (one thread: no locking).
 * Holds at most `idleBytes`.
 */
export class ReceiveSlabPool {
  private readonly idle: ReceiveSlab[][] = Array.from({ length: CLASSES }, () => []);
  private idleTotal = 0;
  /** Slabs allocated and slabs reused, for tests and status. */
  allocated = 0;
  reused = 0;

  constructor(private readonly idleBytes = DEFAULT_IDLE_BYTES) {}

  /** Bytes kept in idle slabs. */
  get idleSlabBytes(): number {
    return this.idleTotal;
  }

  /** A slab of at least `bytes`, held by the caller alone. */
  take(bytes: number): ReceiveSlab {
    if (bytes > LARGEST_SLAB_BYTES) {
      this.allocated++;
      return new ReceiveSlab(Buffer.allocUnsafeSlow(bytes), undefined);
    }
    const size = Math.max(bytes, SMALLEST_SLAB_BYTES);
    const sizeClass = Math.ceil(Math.log2(size / SMALLEST_SLAB_BYTES));
    const slab = this.idle[sizeClass]!.pop();
    if (slab !== undefined) {
      this.idleTotal -= slab.bytes.byteLength;
      slab.reset();
      this.reused++;
      return slab;
    }
    this.allocated++;
    return new ReceiveSlab(Buffer.allocUnsafeSlow(SMALLEST_SLAB_BYTES << sizeClass), this);
  }

  put(slab: ReceiveSlab): void {
    const size = slab.bytes.byteLength;
    if (this.idleTotal + size > this.idleBytes) return;
    this.idle[Math.log2(size / SMALLEST_SLAB_BYTES)]!.push(slab);
    this.idleTotal += size;
  }
}
