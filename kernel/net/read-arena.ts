/**
 * Where a socket that reads with `onread` puts its bytes, for a consumer that keeps views of what
 * it read for as long as it needs them (the NBD frontend hands a write's payload to the volume as
 * views, which may be queued on a socket to an OSD until written). Reads land one after another
 * in an arena; no byte of an arena is ever written twice: a full one is left to the views that
 * still hold it, and the garbage collector takes it when they are gone. Against Node's own way of
 * reading an accepted socket (a fresh allocation per read, pushed through a Readable stream to a
 * 'data' listener), that is one allocation per arena and no stream machinery.
 *
 * Nothing is reused, so there is no rule to get wrong; the price is that a view pins its whole
 * arena (the receive slabs of kernel/rpc/receive-slabs.ts reuse memory, for consumers that say
 * when they are done).
 */
const ARENA_BYTES = 256 * 1024;
/** A read is offered at least this much room (what Node offers a read of its own). */
const READ_ROOM_BYTES = 64 * 1024;

export class ReadArena {
  private arena = Buffer.allocUnsafeSlow(ARENA_BYTES);
  private used = 0;

  /** Where the next read lands. */
  room(): Buffer {
    if (this.arena.byteLength - this.used < READ_ROOM_BYTES) {
      this.arena = Buffer.allocUnsafeSlow(ARENA_BYTES);
      this.used = 0;
    }
    return this.arena.subarray(this.used);
  }

  /** `bytes` arrived in the room given last: a view of them, never written again. */
  filled(bytes: number): Buffer {
    const chunk = this.arena.subarray(this.used, this.used + bytes);
    this.used += bytes;
    return chunk;
  }
}
