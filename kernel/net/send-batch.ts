/**
 * What a connection sends, gathered for one hand-over to its socket. Small messages are written
 * into a send buffer, so a burst of them is one contiguous range: Node's stream machinery costs
 * more per buffer queued (a request object each, a writev entry) than copying a few KiB does.
 * Large buffers queue as they are, in order behind what the send buffer holds. A flush hands
 * everything to the socket at once: one write, or one corked writev.
 *
 * The send buffer is reused from its start whenever the socket has handed everything earlier to
 * the kernel; while the kernel is behind, a full buffer is left to the writes that still reference
 * it and a new one is started. When to flush is the caller's: the transport's frame writer flushes
 * once per tick, the NBD reply writer once per turn of the event loop.
 */
import type { Socket } from 'node:net';

const BUFFER_MIN_BYTES = 64 * 1024;
const BUFFER_MAX_BYTES = 512 * 1024;

export class SendBatch {
  private sendBuffer: Buffer | undefined;
  private used = 0;
  /** Start of the send buffer's bytes not yet moved to `parts`. */
  private cut = 0;
  /** What the next flush writes, in order: send-buffer ranges and large buffers. */
  private parts: Uint8Array[] = [];
  private queued = 0;

  constructor(private readonly socket: Socket) {}

  /** Bytes queued since the last flush. */
  get queuedBytes(): number {
    return this.queued;
  }

  /** The send buffer `reserve` made room in; valid until the next `reserve`. */
  get buffer(): Buffer {
    return this.sendBuffer!;
  }

  /** Room for `bytes` at the end of the send buffer: where they go. The caller writes them, then calls `filled`. */
  reserve(bytes: number): number {
    // Nothing of the buffer is queued here or held by the socket: start over (no new allocation).
    if (this.used > 0 && this.queued === 0 && this.socket.writableLength === 0) this.used = this.cut = 0;
    if (this.sendBuffer !== undefined && this.used + bytes <= this.sendBuffer.byteLength) return this.used;
    this.cutRange();
    const grown = this.sendBuffer === undefined ? BUFFER_MIN_BYTES : Math.min(BUFFER_MAX_BYTES, this.sendBuffer.byteLength * 2);
    this.sendBuffer = Buffer.allocUnsafeSlow(Math.max(grown, bytes));
    this.used = this.cut = 0;
    return 0;
  }

  /** The reserved bytes up to `end` are written. */
  filled(end: number): void {
    this.queued += end - this.used;
    this.used = end;
  }

  /** Queues a buffer as it is (not copied): it must stay unchanged until written. */
  append(part: Uint8Array): void {
    if (part.byteLength === 0) return;
    this.cutRange();
    this.parts.push(part);
    this.queued += part.byteLength;
  }

  /**
   * Hands everything queued to the socket; `written` is called once the socket has written all of
   * it, or failed to. False (and `written` not called) when nothing was queued or the socket no
   * longer takes writes.
   */
  flush(written?: (err?: Error | null) => void): boolean {
    this.cutRange();
    const parts = this.parts;
    this.parts = [];
    this.queued = 0;
    if (parts.length === 0 || !this.socket.writable) return false;
    if (parts.length === 1) {
      this.socket.write(parts[0]!, written);
      return true;
    }
    // Corked writes complete together: the last one's callback comes when all are written.
    this.socket.cork();
    const last = parts.length - 1;
    for (let i = 0; i < last; i++) this.socket.write(parts[i]!);
    this.socket.write(parts[last]!, written);
    this.socket.uncork();
    return true;
  }

  private cutRange(): void {
    if (this.used === this.cut) return;
    this.parts.push(this.sendBuffer!.subarray(this.cut, this.used));
    this.cut = this.used;
  }
}
