/**
 * Memory for read replies. A 4 KiB read needs a 4 KiB + header buffer, just past what Node's own
 * buffer pool serves, so each would be its own ArrayBuffer (an allocation and later a GC finaliser
 * per request). Replies are carved from 1 MiB slabs instead; a slab is garbage once every reply cut
 * from it has been sent, and nothing is ever reused by hand, so a reply cannot be overwritten.
 */
const SLAB_SIZE = 1024 * 1024;
/** Larger replies get their own buffer: carving them would strand most of a slab. */
const MAX_CARVED = 128 * 1024;

export class ReplySlab {
  private slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
  private used = 0;

  take(size: number): Buffer {
    if (size > MAX_CARVED) return Buffer.allocUnsafeSlow(size);
    if (this.used + size > SLAB_SIZE) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      this.used = 0;
    }
    const buffer = this.slab.subarray(this.used, this.used + size);
    // Keep the next reply 8-byte aligned: volumes may read into it with typed arrays.
    this.used += (size + 7) & ~7;
    return buffer;
  }
}
