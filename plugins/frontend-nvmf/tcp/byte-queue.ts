/**
 * The bytes a socket delivered and the parser has not consumed yet, kept as the chunks they came in.
 * Headers are small and copied out when they straddle chunks; payloads are handed on as subarrays
 * of the received chunks, so write data reaches the volume without a copy.
 */
import { assert } from '../../../kernel/errors.js';

export class ByteQueue {
  private chunks: Uint8Array[] = [];
  /** Consumed bytes at the front of chunks[0]. */
  private head = 0;
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** The byte at `offset` from the front, without consuming it. */
  byteAt(offset: number): number {
    assert(offset < this.total, 'byteAt past the end');
    let at = this.head + offset;
    for (const chunk of this.chunks) {
      if (at < chunk.length) return chunk[at]!;
      at -= chunk.length;
    }
    assert(false, 'unreachable');
  }

  /** The first n bytes as one contiguous view (a copy only when they straddle chunks). */
  peek(n: number): Uint8Array {
    assert(n <= this.total, 'peek past the end');
    const first = this.chunks[0]!;
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    const out = new Uint8Array(n);
    let filled = 0;
    let start = this.head;
    for (const chunk of this.chunks) {
      const take = Math.min(chunk.length - start, n - filled);
      out.set(chunk.subarray(start, start + take), filled);
      filled += take;
      start = 0;
      if (filled === n) break;
    }
    return out;
  }

  /** Consumes n bytes and returns them as subarrays of the received chunks. */
  take(n: number): Uint8Array[] {
    assert(n <= this.total, 'take past the end');
    const out: Uint8Array[] = [];
    let left = n;
    while (left > 0) {
      const chunk = this.chunks[0]!;
      const available = chunk.length - this.head;
      if (available <= left) {
        out.push(this.head === 0 ? chunk : chunk.subarray(this.head));
        this.chunks.shift();
        this.head = 0;
        left -= available;
      } else {
        out.push(chunk.subarray(this.head, this.head + left));
        this.head += left;
        left = 0;
      }
    }
    this.total -= n;
    return out;
  }

  skip(n: number): void {
    this.take(n);
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.total = 0;
  }
}
