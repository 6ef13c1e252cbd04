/**
 * Memory for O_DIRECT: every buffer handed to the device starts on a PAGE boundary. Buffers that
 * leave the store (read results) are carved from large aligned slabs, as Node carves small Buffers
 * from its pool: one native allocation serves many reads, and a slab is freed when the last view
 * of it is collected. Buffers the store uses internally come from a BufferPool and go back to it.
 */
import { native } from '../native.js';

export const PAGE = 4096;
const SLAB_BYTES = 1 << 20;

let slab: ArrayBuffer | undefined;
let slabUsed = 0;

function allocRaw(bytes: number): ArrayBuffer {
  return native !== undefined ? native.alignedAlloc(bytes, PAGE) : new ArrayBuffer(bytes);
}

/** A zeroed buffer of `length` bytes whose address is PAGE-aligned (when the addon is present). */
export function allocAligned(length: number): Buffer {
  const rounded = Math.max(PAGE, Math.ceil(length / PAGE) * PAGE);
  if (rounded > SLAB_BYTES / 4) return Buffer.from(allocRaw(rounded), 0, length);
  if (slab === undefined || slabUsed + rounded > SLAB_BYTES) {
    slab = allocRaw(SLAB_BYTES);
    slabUsed = 0;
  }
  const view = Buffer.from(slab, slabUsed, length);
  slabUsed += rounded;
  return view;
}

/**
 * Reusable aligned buffers in power-of-two classes from one page to `maxBytes`. acquire() returns
 * a buffer of at least the asked length (contents undefined); release() gives it back.
 */
export class BufferPool {
  private readonly classes: Buffer[][] = [];
  private readonly maxClass: number;

  constructor(
    private readonly maxBytes = 4 << 20,
    private readonly keepPerClass = 64,
  ) {
    this.maxClass = BufferPool.classOf(maxBytes);
    for (let i = 0; i <= this.maxClass; i++) this.classes.push([]);
  }

  private static classOf(length: number): number {
    return Math.max(0, Math.ceil(Math.log2(Math.max(length, PAGE) / PAGE)));
  }

  acquire(length: number): Buffer {
    if (length > this.maxBytes) return allocAligned(length);
    const cls = BufferPool.classOf(length);
    const free = this.classes[cls].pop();
    const buffer = free ?? Buffer.from(allocRaw(PAGE << cls));
    return length === buffer.length ? buffer : buffer.subarray(0, length);
  }

  release(buffer: Buffer): void {
    const full = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.buffer.byteLength - buffer.byteOffset);
    if (buffer.byteOffset !== 0 || full.length > this.maxBytes) return;
    const cls = BufferPool.classOf(full.length);
    if ((PAGE << cls) !== full.length) return;
    const list = this.classes[cls];
    if (list.length < this.keepPerClass) list.push(full);
  }
}

/** The pool of this thread (one shard per thread, so no sharing across shards). */
export const bufferPool = new BufferPool();
