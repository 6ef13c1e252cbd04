/**
 * The bytes a connection has received and not yet parsed. Payloads leave it as lists of views
 * into the socket's own chunks (a write's data goes to the volume as a scatter list, never copied);
 * only a small header that straddles two chunks is copied to make it contiguous.
 *
 * Flow control: past `highWater` buffered bytes the source is paused, unless the parser is waiting
 * for more than is buffered (a large write payload), so a client that sends faster than the volume
 * completes is slowed by TCP rather than by our memory.
 */
import { assert } from '../../kernel/errors.js';

export interface FlowControl {
  pause(): void;
  resume(): void;
}

/** Why no more bytes will come: the peer ended the stream, or the connection failed. */
export class InputEnded extends Error {
  constructor(readonly buffered: number) {
    super('input ended');
    this.name = 'InputEnded';
  }
}

export class InputQueue {
  private readonly chunks: Buffer[] = [];
  /** Bytes of chunks[0] already consumed. */
  private head = 0;
  private buffered = 0;
  /** Bytes ever pushed: tells a client that sent nothing (a port probe) from one that gave up. */
  private total = 0;
  private ended = false;
  private paused = false;
  private waiter: { need: number; resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(
    private readonly flow: FlowControl,
    private readonly highWater: number,
  ) {}

  get length(): number {
    return this.buffered;
  }

  get received(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (this.ended || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.total += chunk.length;
    if (this.waiter && this.buffered >= this.waiter.need) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve();
    }
    if (!this.waiter && this.buffered >= this.highWater && !this.paused) {
      this.paused = true;
      this.flow.pause();
    }
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.waiter) {
      const { reject } = this.waiter;
      this.waiter = undefined;
      reject(new InputEnded(this.buffered));
    }
  }

  /** Resolves once `n` bytes are buffered; rejects with InputEnded if they never will be. */
  need(n: number): Promise<void> {
    if (this.buffered >= n) return Promise.resolve();
    if (this.ended) return Promise.reject(new InputEnded(this.buffered));
    assert(this.waiter === undefined, 'one reader at a time');
    if (this.paused) {
      this.paused = false;
      this.flow.resume();
    }
    return new Promise((resolve, reject) => {
      this.waiter = { need: n, resolve, reject };
    });
  }

  /** `n` contiguous bytes: a view when they lie in one chunk, else a copy. */
  read(n: number): Buffer {
    assert(n <= this.buffered, 'read past buffered input');
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.head >= n) {
      const view = first.subarray(this.head, this.head + n);
      this.advance(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (const view of this.take(n)) {
      out.set(view, filled);
      filled += view.length;
    }
    return out;
  }

  /** `n` bytes as views into the received chunks, in order. */
  take(n: number): Buffer[] {
    assert(n <= this.buffered, 'take past buffered input');
    const views: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const chunk = this.chunks[0]!;
      const size = Math.min(left, chunk.length - this.head);
      views.push(chunk.subarray(this.head, this.head + size));
      this.advance(size);
      left -= size;
    }
    return views;
  }

  private advance(n: number): void {
    this.head += n;
    this.buffered -= n;
    if (this.head === this.chunks[0]!.length) {
      this.chunks.shift();
      this.head = 0;
    }
    this.maybeResume();
  }

  private maybeResume(): void {
    if (this.paused && this.buffered < this.highWater) {
      this.paused = false;
      this.flow.resume();
    }
  }
}
