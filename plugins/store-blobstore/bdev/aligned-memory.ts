/**
 * Memory for O_DIRECT: every buffer handed to the device starts on a PAGE boundary.
 *
 * Buffers are ordinary Node allocations (malloc'd, uninitialized: no zeroing, no fresh pages to
 * fault in once malloc has warmed up) from which the addon tells us the first aligned address.
 * Buffers that leave the store (read results) are carved from slabs, as Node carves small
 * Buffers from its pool; a slab is freed when the last view of it is collected. Buffers the store
 * uses internally come from a BufferPool and go back to it.
 */
import { native } from '../native.js';

export const PAGE = 4096;
const SLAB_BYTES = 1 << 20;

let slab: Buffer | undefined;
let slabUsed = 0;

/** A page-aligned buffer of at least `bytes` (when the addon is present; else just a buffer). */
function allocRaw(bytes: number): Buffer {
  if (native === undefined) return Buffer.allocUnsafeSlow(bytes);
  const raw = Buffer.allocUnsafeSlow(bytes + PAGE);
  const offset = native.alignmentOffset(raw, PAGE);
  return raw.subarray(offset, offset + bytes);
}

/** A buffer of `length` bytes whose address is PAGE-aligned. Contents undefined. */
export function allocAligned(length: number): Buffer {
  const rounded = Math.max(PAGE, Math.ceil(length / PAGE) * PAGE);
  if (rounded > SLAB_BYTES / 4) return allocRaw(rounded).subarray(0, length);
  if (slab === undefined || slabUsed + rounded > SLAB_BYTES) {
    slab = allocRaw(SLAB_BYTES);
    slabUsed = 0;
  }
  const view = slab.subarray(slabUsed, slabUsed + length);
  slabUsed += rounded;
  return view;
}

/**
 * Reusable aligned buffers in power-of-two classes from one page to `maxBytes`. acquire() returns
 * a buffer of at least the asked length (contents undefined); release() gives it back.
 */
export class BufferPool {
  private readonly classes: Buffer[][] = [];
  /** Full-size buffer of each handed-out view, so release() finds its class. */
  private readonly owners = new WeakMap<Buffer, Buffer>();

  constructor(
    private readonly maxBytes = 4 << 20,
    private readonly keepPerClass = 64,
  ) {
    for (let i = 0; i <= BufferPool.classOf(maxBytes); i++) this.classes.push([]);
  }

  private static classOf(length: number): number {
    return Math.max(0, Math.ceil(Math.log2(Math.max(length, PAGE) / PAGE)));
  }

  acquire(length: number): Buffer {
    if (length > this.maxBytes) return allocAligned(length);
    const cls = BufferPool.classOf(length);
    const full = this.classes[cls].pop() ?? allocRaw(PAGE << cls);
    if (length === full.length) return full;
    const view = full.subarray(0, length);
    this.owners.set(view, full);
    return view;
  }

  release(buffer: Buffer): void {
    const full = this.owners.get(buffer) ?? buffer;
    const cls = BufferPool.classOf(full.length);
    if (full.length > this.maxBytes || PAGE << cls !== full.length) return;
    const list = this.classes[cls];
    if (list.length < this.keepPerClass) list.push(full);
  }
}

/** The pool of this thread (one shard per thread, so no sharing across shards). */
export const bufferPool = new BufferPool();
