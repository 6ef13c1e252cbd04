/**
 * Batches what a connection sends. Replies that complete in the same turn of the event loop leave
 * in one burst: at queue depth 32 that is one system call for many replies instead of one each. A
 * reply's buffers are queued together, so a header is never separated from its payload.
 *
 * Small replies (every write's 16-byte reply, a 4 KiB read's header and data) are copied into the
 * send buffer of a SendBatch (kernel/net), so a burst of them is one contiguous range handed to the
 * socket with one write(); larger payloads are queued as they are.
 */
import type { Socket } from 'node:net';
import { SendBatch } from '../../kernel/net/send-batch.js';

/** Replies up to this size are copied into the send buffer. */
const INLINE_BYTES = 8 * 1024 + 64;

export class ReplyWriter {
  private readonly batch: SendBatch;
  private scheduled: NodeJS.Immediate | undefined;
  private readonly flushNow = (): void => this.flush();

  constructor(private readonly socket: Socket) {
    this.batch = new SendBatch(socket);
  }

  send(...buffers: Uint8Array[]): void {
    let bytes = 0;
    for (const buffer of buffers) bytes += buffer.length;
    if (bytes <= INLINE_BYTES) {
      let at = this.batch.reserve(bytes);
      const target = this.batch.buffer;
      for (const buffer of buffers) {
        target.set(buffer, at);
        at += buffer.length;
      }
      this.batch.filled(at);
    } else {
      for (const buffer of buffers) this.batch.append(buffer);
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
    this.batch.flush();
  }
}
