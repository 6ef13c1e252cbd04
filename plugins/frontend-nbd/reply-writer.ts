/**
 * Batches what a connection sends. Replies that complete in the same turn of the event loop leave
 * in one burst: at queue depth 32 that is one system call for many replies instead of one each. A
 * reply's buffers are queued together, so a header is never separated from its payload.
 *
 * Small replies (every write's 16-byte reply, a 4 KiB read's header and data) are copied into a
 * send buffer, so a burst of them is one contiguous range handed to the socket with one write():
 * Node's stream machinery costs more per buffer queued (a request object each, a writev array)
 * than copying 4 KiB does. Larger payloads are queued as they are. The send buffer is reused from
 * its start whenever the socket has handed everything earlier to the kernel; while the kernel is
 * behind, a full buffer is left to the writes that still reference it and a new one is started.
 */
import type { Socket } from 'node:net';

/** Replies up to this size are copied into the send buffer. */
const INLINE_BYTES = 8 * 1024 + 64;
const BUFFER_MIN_BYTES = 64 * 1024;
const BUFFER_MAX_BYTES = 512 * 1024;

export class ReplyWriter {
  private buffer: Buffer | undefined;
  private used = 0;
  /** Start of the send buffer's bytes not yet moved to `parts`. */
  private cut = 0;
  /** What the next flush writes, in order: send-buffer ranges and large payloads. */
  private parts: Uint8Array[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private readonly flushNow = (): void => this.flush();

  constructor(private readonly socket: Socket) {}

  send(...buffers: Uint8Array[]): void {
    let bytes = 0;
    for (const buffer of buffers) bytes += buffer.length;
    if (bytes <= INLINE_BYTES) {
      let at = this.reserve(bytes);
      for (const buffer of buffers) {
        this.buffer!.set(buffer, at);
        at += buffer.length;
      }
      this.used = at;
    } else {
      this.cutRange();
      for (const buffer of buffers) this.parts.push(buffer);
    }
    this.scheduled ??= setImmediate(this.flushNow);
  }

  /** True while the kernel's send buffer and Node's queue are full: stop taking new requests. */
  get congested(): boolean {
    return this.socket.writableNeedDrain;
  }

  drained(): Promise<void> {
    if (!this.congested || this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** Sends what is queued now (also used before closing so no finished reply is lost). */
  flush(): void {
    if (this.scheduled) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    this.cutRange();
    const parts = this.parts;
    if (parts.length === 0) return;
    this.parts = [];
    if (this.socket.destroyed || !this.socket.writable) return;
    if (parts.length === 1) {
      this.socket.write(parts[0]!);
      return;
    }
    this.socket.cork();
    for (const part of parts) this.socket.write(part);
    this.socket.uncork();
  }

  /** Room for `bytes` in the send buffer; returns where they go. */
  private reserve(bytes: number): number {
    // Nothing of the buffer is queued here or held by the socket: start over (no new allocation).
    if (this.used > 0 && this.parts.length === 0 && this.used === this.cut && this.socket.writableLength === 0) this.used = this.cut = 0;
    if (this.buffer !== undefined && this.used + bytes <= this.buffer.length) return this.used;
    this.cutRange();
    const grown = this.buffer === undefined ? BUFFER_MIN_BYTES : Math.min(BUFFER_MAX_BYTES, this.buffer.length * 2);
    this.buffer = Buffer.allocUnsafeSlow(Math.max(grown, bytes));
    this.used = this.cut = 0;
    return 0;
  }

  private cutRange(): void {
    if (this.used === this.cut) return;
    this.parts.push(this.buffer!.subarray(this.cut, this.used));
    this.cut = this.used;
  }
}
